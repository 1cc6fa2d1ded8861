"""A local registry of Hub-repo-shaped entries, ranked by `AutoSourceSelector`."""

import json

import pytest
import torch
from huggingface_hub import metadata_load

from taskemb_hub import RegistryError, TaskEmbedding, TuningConfig, tune
from taskemb_hub.cards import TAG
from taskemb_hub.registries.local import LocalRegistry
from taskemb_hub.ranking.selector import AutoSourceSelector


def synthetic(task, vector, method="lora", base="tiny", signature=None, step=100):
    return TaskEmbedding(vector=torch.tensor(vector, dtype=torch.float32), task=task, base_model=base, method=method,
                         signature=signature or {"method": method, "dim": len(vector)}, step=step,
                         metrics={"accuracy": 0.5})


@pytest.fixture
def registry(tmp_path):
    reg = LocalRegistry(tmp_path / "reg", create=True)
    reg.add(synthetic("close", [1.0, 0.1, 0.0]), name="org/close")
    reg.add(synthetic("middle", [0.6, 0.6, 0.0]), name="org/middle")
    reg.add(synthetic("far", [0.0, 0.1, 1.0]), name="far")
    reg.add(synthetic("prompt-task", [1.0, 0.0, 0.0], method="prompt"), name="prompt-task")
    reg.add(synthetic("other-base", [1.0, 0.0, 0.0], base="bert-base-uncased"), name="other-base")
    return reg


def test_entries_are_hub_repo_shaped_with_a_tagged_card(registry):
    entry = registry.path / "org" / "close"
    assert {"taskemb.safetensors", "taskemb.json", "README.md"} <= {p.name for p in entry.iterdir()}
    meta = metadata_load(entry / "README.md")
    assert TAG in meta["tags"] and meta["taskemb"]["task"] == "close" and meta["base_model"] == "tiny"


def test_rank_orders_by_similarity_and_skips_incompatible_entries(registry):
    ranking = AutoSourceSelector.from_local(registry.path).rank(synthetic("target", [1.0, 0.0, 0.0]))
    assert ranking.names == ["org/close", "org/middle", "far"]
    assert ranking[0]["score"] > ranking[1]["score"] > ranking[2]["score"]
    reasons = dict(ranking.skipped)
    assert "method 'prompt' differs from 'lora'" in reasons["prompt-task"]
    assert "base model 'bert-base-uncased' differs from 'tiny'" in reasons["other-base"]


def test_results_as_table_json_and_dataframe(registry):
    ranking = AutoSourceSelector.from_local(registry.path).rank(synthetic("target", [1.0, 0.0, 0.0]), top_k=2)
    assert len(ranking) == 2
    text = str(ranking)
    assert "org/close" in text and "Skipped 2" in text
    data = json.loads(ranking.to_json())
    assert data["ranking"][0]["source"] == "org/close" and len(data["skipped"]) == 2
    frame = ranking.to_pandas()
    assert list(frame["source"]) == ["org/close", "org/middle"] and frame["rank"].tolist() == [1, 2]


def test_an_entry_name_as_target_ranks_leave_one_out(registry):
    ranking = AutoSourceSelector.from_local(registry.path).rank("org/middle")
    assert "org/middle" not in ranking.names and set(ranking.names) == {"org/close", "far"}


def test_unknown_target_name_lists_the_entries(registry):
    with pytest.raises(RegistryError, match="neither a folder nor an entry.*org/close"):
        AutoSourceSelector.from_local(registry.path).rank("nope")


def test_no_compatible_entry_says_why(registry):
    target = synthetic("t", [1.0, 0.0], method="ia3")
    with pytest.raises(RegistryError, match="No registry entry is comparable.*method 'lora' differs from 'ia3'"):
        AutoSourceSelector.from_local(registry.path).rank(target)


def _scores_by(selector, target, similarity):
    return {r["source"]: r["score"] for r in selector.rank(target, similarity=similarity, ranker="peft").rows}


def test_centred_similarity_removes_the_shared_direction():
    shared = [10.0, 0, 0, 0]
    offsets = {"a": [0, 1.0, 0, 0], "b": [0, 0, 1.0, 0], "c": [0, 0, 0, 1.0]}
    selector = AutoSourceSelector.from_embeddings(
        [synthetic(n, [x + y for x, y in zip(shared, o)]) for n, o in offsets.items()])
    target = synthetic("t", [10.0, 0.1, 0, 1.0])
    raw, centred = _scores_by(selector, target, "cosine"), _scores_by(selector, target, "centered")
    assert min(raw.values()) > 0.98, "raw cosines are all near 1: the shared direction dominates"
    assert max(centred, key=centred.get) == "c" and max(centred.values()) - min(centred.values()) > 0.5
    # the two-mat-vec formula equals centring explicitly
    matrix = torch.stack([selector.entries[i].embedding.vector for i in range(3)]).double()
    mu = matrix.mean(0)
    explicit = torch.nn.functional.cosine_similarity(matrix - mu, (target.vector.double() - mu)[None], dim=1)
    assert [centred[n] for n in offsets] == pytest.approx(explicit.tolist(), abs=1e-5)  # scores: 6 decimals


def test_principal_component_removal_ignores_the_direction_every_source_moves_along():
    # A hub: every source varies mostly along one axis (axis 0), so centred cosine is decided by that axis
    # whatever the target; removing the registry's top principal direction leaves what tells tasks apart.
    gen = torch.Generator().manual_seed(0)
    hub = torch.tensor([1.0] + [0.0] * 7)
    vectors = {f"s{i}": 5 * (i - 3.5) * hub + 0.3 * torch.randn(8, generator=gen) for i in range(8)}
    vectors["relative"] = vectors["s0"].clone()
    vectors["relative"][1:] = torch.tensor([0, 0, 0, 0, 0, 0, 2.0])
    selector = AutoSourceSelector.from_embeddings([synthetic(n, v.tolist()) for n, v in vectors.items()])
    target = synthetic("t", (25 * hub + torch.tensor([0, 0, 0, 0, 0, 0, 0, 2.0])).tolist())
    centred, pcr = _scores_by(selector, target, "centered"), _scores_by(selector, target, "pcr-1")
    assert max(centred, key=centred.get) == "s7", "centred: the source furthest along the hub axis wins"
    assert max(pcr, key=pcr.get) == "relative", "pcr-1: the source that shares the target's own direction wins"
    # equal to projecting explicitly (the product computes it from one product per row)
    from taskemb_hub.ranking.similarity import SIMILARITY_FUNCTIONS
    names = list(vectors)
    explicit = SIMILARITY_FUNCTIONS["pcr-1"](target.vector.double().numpy(),
                                             torch.stack([vectors[n] for n in names]).double().numpy())
    assert [pcr[n] for n in names] == pytest.approx(explicit.tolist(), abs=1e-4)  # float32 products


def test_leave_one_out_recomputes_the_principal_direction_without_the_target():
    gen = torch.Generator().manual_seed(1)
    embeddings = [synthetic(f"e{i}", torch.randn(12, generator=gen).tolist()) for i in range(10)]
    selector = AutoSourceSelector.from_embeddings(embeddings)
    alone = AutoSourceSelector.from_embeddings(embeddings[1:])
    left_out = selector.rank("e0", similarity="pcr-2", ranker="peft")
    assert left_out.rows == alone.rank(embeddings[0], similarity="pcr-2", ranker="peft").rows
    assert left_out.similarity == "pcr-2"


def test_a_registry_too_small_for_principal_directions_ranks_by_cosine_and_says_so(registry):
    ranking = AutoSourceSelector.from_local(registry.path).rank(synthetic("target", [1.0, 0.0, 0.0]))
    assert ranking.similarity == "cosine" and "needs at least 8 compatible entries" in ranking.why


def test_selector_snapshot_round_trips_with_from_pretrained(registry, tmp_path):
    selector = AutoSourceSelector.from_local(registry.path, similarity="centered")
    selector.save_pretrained(tmp_path / "snap")
    again = AutoSourceSelector.from_pretrained(tmp_path / "snap")
    target = synthetic("target", [1.0, 0.0, 0.0])
    assert again.similarity == "centered"
    assert again.rank(target).rows == selector.rank(target).rows


def test_tuned_checkpoints_rank_their_own_task_first(tiny_bert, sentiment_task, qa_task, tmp_path):
    # The default method (BitFit) needs more than a handful of steps on this random-init toy: measured,
    # the sentiment target's cosine to sentiment / QA is 0.14 / 0.39 after 4 steps, 0.34 / 0.23 after 20.
    reg = LocalRegistry(tmp_path / "reg", create=True)
    for task in (sentiment_task, qa_task):
        cp = tune(task, TuningConfig(base_model=tiny_bert, max_steps=20, eval_examples=0, seed=0), tmp_path / task.name,
                  progress=False)[-1]
        reg.add(cp.path, name=task.name)
    target = tune(sentiment_task, TuningConfig(base_model=tiny_bert, max_steps=20, eval_examples=0, seed=1), None,
                  progress=False)[-1].embedding
    ranking = AutoSourceSelector.from_local(reg.path).rank(target)
    assert ranking.names[0] == sentiment_task.name
