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
    from taskemb_hub.ranking.selector import AutoSourceSelector

    selector = AutoSourceSelector.from_embeddings([emb("a"), emb("b", (0.0, 1.0, 0.0))])
    with pytest.raises(AdapterError, match="all zeros"):
        selector.rank(emb("target", (0.0, 0.0, 0.0)))


# ---- durability: a crash mid-overwrite, leftovers, two adds at once (issue 21) ----------------------------

_CRASH = r"""
import os, sys
from pathlib import Path
import torch
from taskemb_hub import TaskEmbedding
from taskemb_hub.registries.local import LocalRegistry

root, point = Path(sys.argv[1]), sys.argv[2]
target = root / "org" / "entry"
real = os.replace

def replace(src, dst, *a, **k):
    real(src, dst, *a, **k)
    if (point == "moved-aside" and Path(src) == target) or (point == "moved-in" and Path(dst) == target):
        os._exit(3)  # killed: no finally, no cleanup

os.replace = replace
new = TaskEmbedding(vector=torch.tensor([0.0, 1.0, 2.0]), task="new", base_model="tiny", method="bitfit",
                    signature={"method": "bitfit", "dim": 3}, step=100)
LocalRegistry(root).add(new, name="org/entry", overwrite=True)
"""


@pytest.mark.parametrize("point, survivor", [("moved-aside", "old"), ("moved-in", "new")])
def test_a_crash_while_overwriting_never_hides_the_entry(tmp_path, point, survivor):
    import subprocess
    import sys

    root = tmp_path / "reg"
    LocalRegistry(root, create=True).add(emb("old"), name="org/entry")
    done = subprocess.run([sys.executable, "-c", _CRASH, str(root), point], capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    registry = LocalRegistry(root)  # opening recovers what the crash left
    assert [(e.name, e.embedding.task) for e in registry.entries()] == [("org/entry", survivor)]
    assert sorted(p.name for p in (root / "org").iterdir()) == ["entry"], "no leftover staging or backup folder"
    registry.add(emb("again"), name="org/entry", overwrite=True)  # was: a raw OSError (backup folder not empty)
    assert [e.embedding.task for e in LocalRegistry(root).entries()] == ["again"]


def test_an_entry_moved_aside_is_listed_even_where_the_registry_cannot_be_repaired(tmp_path, monkeypatch):
    root = tmp_path / "reg"
    LocalRegistry(root, create=True).add(emb("old"), name="org/entry")
    os.replace(root / "org" / "entry", root / "org" / ".entry.old")  # as a crash between the two renames leaves it
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # read-only: no repair on open
    assert [(e.name, e.embedding.task) for e in LocalRegistry(root).entries()] == [("org/entry", "old")]


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_adds_of_one_name_at_once_one_wins_and_the_other_is_told(tmp_path, monkeypatch, overwrite):
    import threading

    from taskemb_hub.registries import local

    root = tmp_path / "reg"
    LocalRegistry(root, create=True)
    both_staging = threading.Barrier(2)
    real_card = local.write_model_card

    def slow_card(*args, **kwargs):  # hold each add mid-way, so that unlocked adds overlap
        try:
            both_staging.wait(timeout=1.5)
        except threading.BrokenBarrierError:
            pass
        return real_card(*args, **kwargs)

    monkeypatch.setattr(local, "write_model_card", slow_card)
    outcomes = {}

    def add(task):
        try:
            LocalRegistry(root).add(emb(task), name="same", overwrite=overwrite)
            outcomes[task] = "added"
        except Exception as err:  # noqa: BLE001 - recorded and checked below
            outcomes[task] = err

    threads = [threading.Thread(target=add, args=(task,)) for task in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = LocalRegistry(root).entries()
    assert len(kept) == 1
    if overwrite:
        assert outcomes == {"a": "added", "b": "added"}
    else:
        winners = [t for t, o in outcomes.items() if o == "added"]
        loser = next(o for o in outcomes.values() if o != "added")
        assert len(winners) == 1 and kept[0].embedding.task == winners[0]
        assert isinstance(loser, RegistryError) and "already exists" in str(loser) and "\n" not in str(loser)
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == ["same"]


def test_a_failed_write_is_a_registry_error_not_an_oserror(tmp_path, monkeypatch):
    from taskemb_hub.registries import local

    registry = LocalRegistry(tmp_path / "reg", create=True)
    registry.add(emb("old"), name="entry")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.shutil, "copy2", full)
    monkeypatch.setattr(TaskEmbedding, "save", lambda self, folder: full())
    with pytest.raises(RegistryError, match=r"Could not write registry entry 'entry'.*No space left.*retry"):
        registry.add(emb("new"), name="entry", overwrite=True)
    assert [e.embedding.task for e in registry.entries()] == ["old"]
