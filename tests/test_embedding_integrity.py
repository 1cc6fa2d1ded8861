"""A saved embedding is tied to the adapter bytes it was computed from (issue 21): the sha256 of
`adapter_model.safetensors` is recorded in both `taskemb.safetensors`' header and `taskemb.json`, checked
on load; a stale vector is re-embedded (`load_embedding`) or refused with the fix (`TaskEmbedding.load`)."""

import dataclasses
import hashlib
import json
import warnings

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from taskemb_hub import TuningConfig, tune
from taskemb_hub import embedding as embedding_module
from taskemb_hub.cli import main
from taskemb_hub.embedding import StaleEmbeddingError, TaskEmbedding, load_embedding
from taskemb_hub.registries.local import LocalRegistry


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_bert):
    from conftest import _sentiment_rows
    from taskemb_hub.data import CLASSIFICATION, TaskData

    task = TaskData(name="toy-sentiment", task_type=CLASSIFICATION, labels=["neg", "pos"],
                    splits={"train": _sentiment_rows(64, 0), "validation": _sentiment_rows(16, 1)})
    cfg = TuningConfig(method="bitfit", base_model=tiny_bert, max_steps=6, eval_examples=0)
    return tune(task, cfg, tmp_path_factory.mktemp("run"), progress=False)[-1].path


@pytest.fixture
def folder(checkpoint, tmp_path):
    import shutil

    return shutil.copytree(checkpoint, tmp_path / "adapter")


def _resave_adapter_with_other_weights(folder):
    """What re-tuning into the same folder does: new adapter bytes, the old embedding files left beside them."""
    weights = load_file(str(folder / "adapter_model.safetensors"))
    torch.manual_seed(1)
    save_file({k: torch.randn_like(v) for k, v in weights.items()}, str(folder / "adapter_model.safetensors"))


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_both_files_record_the_hash_of_the_adapter_bytes(folder):
    with safe_open(str(folder / "taskemb.safetensors"), framework="pt") as handle:
        header = handle.metadata()
    meta = json.loads((folder / "taskemb.json").read_text())
    assert header["adapter_sha256"] == meta["adapter_sha256"] == _sha256(folder / "adapter_model.safetensors")
    assert TaskEmbedding.load(folder).adapter_sha256 == meta["adapter_sha256"]


def test_a_resaved_adapter_is_never_served_its_stale_vector(folder):
    stale = TaskEmbedding.load(folder).vector
    _resave_adapter_with_other_weights(folder)
    fresh = TaskEmbedding.from_adapter(folder).vector
    with pytest.warns(UserWarning, match="computed now"):
        served = load_embedding(folder)
    assert torch.equal(served.vector, fresh) and not torch.equal(served.vector, stale)
    assert served.adapter_sha256 == _sha256(folder / "adapter_model.safetensors")
    with pytest.raises(StaleEmbeddingError, match=r"adapter_model.safetensors beside it.*taskemb-hub embed"):
        TaskEmbedding.load(folder)


def test_a_registry_add_and_a_rank_of_a_stale_folder_use_the_adapter_as_it_is_now(folder, tmp_path):
    from taskemb_hub.ranking.selector import AutoSourceSelector

    _resave_adapter_with_other_weights(folder)
    fresh = TaskEmbedding.from_adapter(folder)
    with pytest.warns(UserWarning, match="computed now"):
        entry = LocalRegistry(tmp_path / "reg", create=True).add(folder, name="mine")
    assert torch.equal(TaskEmbedding.load(entry).vector, fresh.vector)  # the entry's copy is tied and fresh
    selector = AutoSourceSelector.from_embeddings([dataclasses.replace(fresh, task="other")])
    with pytest.warns(UserWarning, match="computed now"):
        ranking = selector.rank(folder)
    assert ranking.rows[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_taskemb_hub_embed_is_the_fix_the_error_names(folder, capsys):
    _resave_adapter_with_other_weights(folder)
    assert main(["embed", str(folder)]) == 0
    assert torch.equal(TaskEmbedding.load(folder).vector, TaskEmbedding.from_adapter(folder).vector)


@pytest.mark.parametrize("replaced", ["taskemb.json", "taskemb.safetensors"])
def test_a_vector_and_a_json_of_two_different_saves_are_refused(folder, tmp_path, replaced):
    import shutil

    other = shutil.copytree(folder, tmp_path / "other")
    _resave_adapter_with_other_weights(other)
    TaskEmbedding.from_adapter(other).save(other)
    shutil.copy(other / replaced, folder / replaced)  # e.g. a crash between the two writes of a re-embed
    with pytest.raises(StaleEmbeddingError, match="come from different saves.*taskemb-hub embed"):
        TaskEmbedding.load(folder)
    with pytest.warns(UserWarning, match="computed now"):
        assert torch.equal(load_embedding(folder).vector, TaskEmbedding.from_adapter(folder).vector)


def test_a_stale_pair_with_no_adapter_beside_it_is_one_clear_error(folder, tmp_path):
    import shutil

    entry = tmp_path / "entry"
    entry.mkdir()
    shutil.copy(folder / "taskemb.safetensors", entry)
    meta = json.loads((folder / "taskemb.json").read_text())
    (entry / "taskemb.json").write_text(json.dumps({**meta, "adapter_sha256": "0" * 64}))
    with pytest.raises(StaleEmbeddingError, match="different saves"):
        load_embedding(entry)


def test_old_files_without_a_hash_stay_readable_with_one_warning(folder, monkeypatch):
    emb = TaskEmbedding.load(folder)
    meta = json.loads((folder / "taskemb.json").read_text())
    meta.pop("adapter_sha256")
    (folder / "taskemb.json").write_text(json.dumps(meta))
    save_file({"embedding": emb.vector}, str(folder / "taskemb.safetensors"),
              metadata={"format": "taskemb-hub/1", "signature_hash": emb.signature_hash})
    monkeypatch.setattr(embedding_module, "_WARNED_UNTIED", set())
    with pytest.warns(UserWarning, match="predates adapter hashes.*taskemb-hub embed"):
        old = TaskEmbedding.load(folder)
    assert torch.equal(old.vector, emb.vector) and old.adapter_sha256 is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process, not once per entry of a registry
        TaskEmbedding.load(folder)


def test_the_packaged_registry_loads_without_a_warning():
    from taskemb_hub.default_registry import default_registry_path

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        entries = LocalRegistry(default_registry_path()).entries()
    assert len(entries) == 16 and all(e.embedding.adapter_sha256 is None for e in entries)
