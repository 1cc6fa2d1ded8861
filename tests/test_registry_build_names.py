"""`registry build`: names that cannot be entries are refused up front, and an entry that cannot be added is
recorded as failed while the build goes on (issue 21). Tuning is replaced by ready-made checkpoints."""

import json

import pytest
import torch
import yaml

from taskemb_hub import TaskEmbedding
from taskemb_hub.cli import main
from taskemb_hub.executors import registry_build
from taskemb_hub.registries.local import LocalRegistry

MODULES = {f"layer.{i}.dense": [4] for i in range(2)}


def checkpoint(task: str, vector) -> dict[str, bytes]:
    emb = TaskEmbedding(vector=torch.tensor(vector), task=task, base_model="tiny", method="bitfit",
                        signature={"method": "bitfit", "modules": MODULES, "per_module_norm": True}, step=4)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        emb.save(folder)
        return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


@pytest.fixture
def fake_tuning(monkeypatch):
    """`build_entry` without tuning: `zeros` comes back all zeros (its weights did not move), the rest fine."""
    tuned = []

    def build_entry(task, tuning):
        tuned.append(task.name)
        vector = [0.0] * 8 if task.name == "zeros" else [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
        return registry_build.BuiltEntry(name=task.name, files=checkpoint(task.name, vector), metrics={}, seconds=0.0)

    monkeypatch.setattr(registry_build, "build_entry", build_entry)
    return tuned


def spec_file(tmp_path, names):
    (tmp_path / "task").mkdir(exist_ok=True)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"path": "task", "name": n} for n in names]}))
    return path


def build(tmp_path, names, capsys):
    code = main(["registry", "build", str(spec_file(tmp_path, names)), "--registry", str(tmp_path / "reg"), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err.strip()


def test_an_entry_that_cannot_be_added_is_recorded_and_the_build_goes_on(tmp_path, fake_tuning, capsys):
    code, report, _ = build(tmp_path, ["first", "zeros", "last"], capsys)
    assert code == 1 and fake_tuning == ["first", "zeros", "last"]
    assert report["added"] == ["first", "last"]  # was: the zeros entry's AdapterError stopped the build
    (failed,) = report["failed"]
    assert failed[0] == "zeros" and "all zeros" in failed[1] and "\n" not in failed[1]
    assert [e.name for e in LocalRegistry(tmp_path / "reg").entries()] == ["first", "last"]


def test_names_nested_inside_each_other_in_the_spec_are_refused_before_tuning(tmp_path, fake_tuning, capsys):
    code, _, err = build(tmp_path, ["org", "org/inner", "other"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "'org/inner' would be inside entry 'org'" in err and "Rename" in err
    assert fake_tuning == []


def test_a_name_nested_in_an_entry_of_the_registry_is_refused_before_tuning(tmp_path, fake_tuning, capsys):
    assert build(tmp_path, ["org"], capsys)[0] == 0
    fake_tuning.clear()
    code, _, err = build(tmp_path, ["first", "org/inner"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "inside entry 'org'" in err
    assert fake_tuning == [], "nothing is tuned for a build that would fail"


@pytest.mark.parametrize("name", ["a\\b", "x" * 300])
def test_a_name_that_is_no_folder_name_is_refused_up_front(tmp_path, fake_tuning, capsys, name):
    code, _, err = build(tmp_path, [name], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "not a usable folder name" in err
    assert fake_tuning == []
