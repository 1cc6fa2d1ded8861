"""What a registry refuses to store, and how it stores what it accepts (readable by the group)."""

import json
import os
import stat

import pytest
import torch

from taskemb_hub import AdapterError, RegistryError, TaskEmbedding
from taskemb_hub.registries.local import LocalRegistry


def emb(task="t", vector=(1.0, 0.5, 0.0)):
    return TaskEmbedding(vector=torch.tensor(vector), task=task, base_model="tiny", method="bitfit",
                         signature={"method": "bitfit", "dim": len(vector)}, step=100)


def test_a_zero_vector_is_refused(tmp_path):
    registry = LocalRegistry(tmp_path / "reg", create=True)
    with pytest.raises(AdapterError, match=r"all zeros.*did not move"):
        registry.add(emb(vector=(0.0, 0.0, 0.0)), name="zeros")
    assert not (tmp_path / "reg" / "zeros").exists()


def test_a_vector_made_nan_after_loading_is_refused(tmp_path):
    registry = LocalRegistry(tmp_path / "reg", create=True)
    bad = emb()
    bad.vector[1] = float("nan")
    with pytest.raises(AdapterError, match="NaN or inf"):
        registry.add(bad, name="nan")
    assert not (tmp_path / "reg" / "nan").exists()


def test_a_name_nested_inside_an_entry_is_refused(tmp_path):
    """The entry would be written inside another entry's folder, where listing never looks."""
    registry = LocalRegistry(tmp_path / "reg", create=True)
    registry.add(emb("outer"), name="org/outer")
    with pytest.raises(RegistryError, match=r"inside entry 'org/outer'.*another name"):
        registry.add(emb("inner"), name="org/outer/inner")
    assert [e.name for e in registry.entries()] == ["org/outer"]


def test_a_name_that_would_swallow_entries_is_refused_even_with_overwrite(tmp_path):
    registry = LocalRegistry(tmp_path / "reg", create=True)
    registry.add(emb("inner"), name="org/inner")
    with pytest.raises(RegistryError, match=r"holds entries \(org/inner\)"):
        registry.add(emb("org"), name="org", overwrite=True)
    assert [e.name for e in registry.entries()] == ["org/inner"], "nothing stored is lost"


def test_entries_are_readable_by_the_group(tmp_path):
    old = os.umask(0o022)
    try:
        registry = LocalRegistry(tmp_path / "reg", create=True)
        entry = registry.add(emb(), name="org/shared")
    finally:
        os.umask(old)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o755
    for file in entry.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file.name


def test_metadata_without_a_signature_is_an_adapter_error(tmp_path):
    folder = emb().save(tmp_path / "e")
    meta = json.loads((folder / "taskemb.json").read_text())
    del meta["signature"]
    (folder / "taskemb.json").write_text(json.dumps(meta))
    with pytest.raises(AdapterError, match=r"taskemb.json has no 'signature'.*taskemb-hub embed"):
        TaskEmbedding.load(folder)


def test_a_zero_target_is_refused_rather_than_ranked():
    """A zero vector has cosine 0 with everything: its 'ranking' would be an arbitrary order shown with confidence."""
    from taskemb_hub.selector import AutoSourceSelector

    selector = AutoSourceSelector.from_embeddings([emb("a"), emb("b", (0.0, 1.0, 0.0))])
    with pytest.raises(AdapterError, match="all zeros"):
        selector.rank(emb("target", (0.0, 0.0, 0.0)))
