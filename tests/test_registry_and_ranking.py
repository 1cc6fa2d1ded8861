"""A local registry of Hub-repo-shaped entries, ranked by `AutoSourceSelector`."""

import json

import pytest
import torch

from taskemb_hub import RegistryError, TaskEmbedding, TuningConfig, tune
from taskemb_hub.cards import TAG, read_card_metadata
from taskemb_hub.registries.local import LocalRegistry
from taskemb_hub.selector import AutoSourceSelector, _scores


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
    meta = read_card_metadata(entry)
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


def test_centred_similarity_removes_the_shared_direction():
    shared = torch.tensor([10.0, 0, 0, 0])
    sources = {"a": shared + torch.tensor([0, 1.0, 0, 0]), "b": shared + torch.tensor([0, 0, 1.0, 0]),
               "c": shared + torch.tensor([0, 0, 0, 1.0])}
    target = shared + torch.tensor([0, 0.1, 0, 1.0])
    matrix = torch.stack(list(sources.values())).double()
    raw = _scores(target.double(), matrix, (matrix ** 2).sum(1), "cosine")
    centred = _scores(target.double(), matrix, (matrix ** 2).sum(1), "centered")
    assert raw.min() > 0.98, "raw cosines are all near 1: the shared direction dominates"
    assert centred.argmax() == 2 and centred.max() - centred.min() > 0.5
    # the two-mat-vec formula equals centring explicitly
    mu = matrix.mean(0)
    explicit = torch.nn.functional.cosine_similarity(matrix - mu, (target.double() - mu)[None], dim=1)
    assert torch.allclose(centred, explicit, atol=1e-9)


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
