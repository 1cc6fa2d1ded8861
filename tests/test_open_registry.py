"""`registries.open_registry(spec)` + `AutoSourceSelector.from_registry`: every `--registry` form gives the selector
the old constructors give, and the typos the same one-line errors (issue 20)."""

from __future__ import annotations

import pytest
import torch

from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.errors import RegistryError
from taskemb_hub.registries import LocalRegistry, PackagedRegistry, open_registry
from taskemb_hub.registries.hub import HubRegistry
from taskemb_hub.registries.index import IndexRegistry, build_index
from taskemb_hub.ranking.selector import AutoSourceSelector

from local_hub import repo_files

BASE = "test/tiny-bert"
SIGNATURE = {"method": "bitfit", "synthetic_dim": 64}


def _embedding(i: int, method: str = "bitfit") -> TaskEmbedding:
    vector = torch.randn(64, generator=torch.Generator().manual_seed(i))
    return TaskEmbedding(vector=vector, task=f"task-{i}", base_model=BASE, method=method,
                         signature=SIGNATURE | {"method": method}, step=100, train_size=1000)


@pytest.fixture
def seeded(hub):
    for i in range(4):
        hub.state.add_repo(f"user{i}/task-{i}", repo_files(_embedding(i, "bitfit" if i < 3 else "lora")))
    return hub


def _same(a: AutoSourceSelector, b: AutoSourceSelector) -> None:
    assert [e.name for e in a.entries] == [e.name for e in b.entries]
    assert a.similarity == b.similarity and a.skipped == b.skipped
    assert (a.text_selector is None) == (b.text_selector is None)
    if a.text_selector is not None:
        _same(a.text_selector, b.text_selector)


def test_default_is_the_packaged_registry_with_its_textemb_side():
    registry = open_registry("default")
    assert isinstance(registry, PackagedRegistry) and registry.textemb is not None
    for similarity in (None, "cosine"):
        new = AutoSourceSelector.from_registry(open_registry("default"), similarity=similarity)
        _same(new, AutoSourceSelector.from_default(**({"similarity": similarity} if similarity else {})))
    assert new.text_selector.similarity == "centered"


def test_a_folder_is_a_local_registry_and_a_saved_selector_is_that_selector(tmp_path):
    folder = tmp_path / "reg"
    local = LocalRegistry(folder, create=True)
    for i in range(3):
        local.add(_embedding(i), name=f"task-{i}")
    registry = open_registry(str(folder))
    assert type(registry) is LocalRegistry
    _same(AutoSourceSelector.from_registry(registry), AutoSourceSelector.from_local(folder))
    snapshot = tmp_path / "snap"
    AutoSourceSelector.from_local(folder, similarity="centered").save_pretrained(snapshot)
    loaded = AutoSourceSelector.from_registry(open_registry(str(snapshot)), similarity=None)
    _same(loaded, AutoSourceSelector.from_local(snapshot))
    assert loaded.similarity == "centered"


def test_hub_and_hub_tag_take_the_filters_and_times(seeded):
    registry = open_registry("hub", method="bitfit", author=None, base_model=None, timeout=3, deadline=30)
    assert isinstance(registry, HubRegistry) and registry.method == "bitfit" and registry.author is None
    assert registry.timeout == 3 and registry.deadline == 30
    new = AutoSourceSelector.from_registry(registry)
    _same(new, AutoSourceSelector.from_hub(method="bitfit"))
    assert len(new.entries) == 3 and new.sync_report is registry.report
    assert open_registry("hub:other-tag").tag == "other-tag" and open_registry("hub:").tag == "taskemb-hub"
    assert open_registry("hub", token=False, endpoint=seeded.endpoint).endpoint == seeded.endpoint


def test_index_is_read_memory_mapped_as_from_index(seeded, tmp_path):
    build_index("alice/taskemb-index", endpoint=seeded.endpoint)
    registry = open_registry("index:alice/taskemb-index", timeout=5)
    assert isinstance(registry, IndexRegistry) and registry.timeout == 5
    new = AutoSourceSelector.from_registry(registry)
    _same(new, AutoSourceSelector.from_index("alice/taskemb-index"))
    assert new._groups  # the index's matrices, not vectors stacked again
    folder = tmp_path / "idx"
    build_index(folder=folder, push=False, endpoint=seeded.endpoint)
    _same(AutoSourceSelector.from_registry(open_registry(f"index:{folder}")), AutoSourceSelector.from_index(folder))


@pytest.mark.parametrize("spec, message", [
    ("index:./no-such-folder", "Index folder ./no-such-folder does not exist. Check the path, or pass a Hub dataset "
                               "repo id (owner/name)."),
    ("index:bad//id", "'bad//id' is neither an index folder nor a valid Hub repo id. Pass an existing folder or a "
                      "dataset repo id like owner/taskemb-index."),
])
def test_index_typos_are_the_old_one_line_errors(spec, message):
    with pytest.raises(RegistryError) as err:
        open_registry(spec)
    assert str(err.value) == message


def test_a_file_and_a_missing_folder_are_the_old_one_line_errors(tmp_path):
    file = tmp_path / "entries.json"
    file.write_text("{}")
    with pytest.raises(RegistryError) as err:
        open_registry(str(file))
    assert str(err.value) == (f"{file} is a file, not a registry folder. Pass the folder that `taskemb-hub registry "
                              "add` wrote, 'default', 'hub' or 'index:<repo id or folder>'.")
    with pytest.raises(RegistryError) as err:
        open_registry(str(tmp_path / "missing"))
    with pytest.raises(RegistryError) as old:
        AutoSourceSelector.from_local(tmp_path / "missing")
    assert str(err.value) == str(old.value) and "\n" not in str(err.value)


def test_an_empty_folder_names_the_folder_as_it_was_spelled(tmp_path):
    (tmp_path / "empty").mkdir()
    spelled = f"{tmp_path / 'empty'}/"
    with pytest.raises(RegistryError) as err:
        AutoSourceSelector.from_registry(open_registry(spelled))
    with pytest.raises(RegistryError) as old:
        AutoSourceSelector.from_local(spelled)
    assert str(err.value) == str(old.value) and f"Registry {spelled} is empty" in str(err.value)
