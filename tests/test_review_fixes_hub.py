"""Review fixes (issue 21) on the Hub side: a saved vector must match the repo's adapter weights as they are now,
entries carried at an unchanged commit survive a failed re-read, and parse keys do not depend on the machine."""

from __future__ import annotations

import hashlib

import pytest

from taskemb_hub.registries.hub import HubRegistry, RepoRef, parse_key_of
from taskemb_hub.ranking.selector import AutoSourceSelector

from local_hub import repo_files
from test_hub_hostile import _embedding

WEIGHTS_A, WEIGHTS_B = b"adapter weights as embedded" * 40, b"adapter weights pushed later" * 40


def _repo_files(weights: bytes, embedded_from: bytes, i: int = 0) -> dict[str, bytes]:
    embedding = _embedding(i)
    embedding.adapter_sha256 = hashlib.sha256(embedded_from).hexdigest()
    return {**repo_files(embedding), "adapter_model.safetensors": weights}


def test_a_repo_whose_adapter_was_re_pushed_after_its_vector_is_refused_with_the_fix():
    """The Hub's paths-info states an LFS file's sha256 (`RepoFile.lfs.sha256`); the vector records the sha256 of the
    weights it came from. (The local test Hub stores every file as a plain git file, so this reads a `RepoRef` as
    the real Hub's answer fills it.)"""
    from taskemb_hub.registries.hub import EntryFailure, _check_tied_to_weights

    embedding = _embedding(0)
    embedding.adapter_sha256 = hashlib.sha256(WEIGHTS_A).hexdigest()
    ref = RepoRef("bob/stale", "b" * 40, ["taskemb.safetensors", "taskemb.json", "adapter_model.safetensors"])
    ref.meta["adapter_model.safetensors"] = (len(WEIGHTS_B), hashlib.sha256(WEIGHTS_B).hexdigest())
    with pytest.raises(EntryFailure, match="computed from other adapter weights.*taskemb-hub publish"):
        _check_tied_to_weights(embedding, ref)
    ref.meta["adapter_model.safetensors"] = (len(WEIGHTS_A), hashlib.sha256(WEIGHTS_A).hexdigest())
    _check_tied_to_weights(embedding, ref)  # the weights it came from: an entry


def test_a_repo_with_its_adapter_beside_its_vector_is_still_an_entry(hub):
    hub.state.add_repo("alice/fresh", _repo_files(WEIGHTS_A, WEIGHTS_A, 0))
    selector = AutoSourceSelector.from_hub(endpoint=hub.endpoint, token=False)
    assert [e.name for e in selector.entries] == ["alice/fresh"]


def test_a_saved_vector_needs_no_embedding_code_version_and_old_rows_without_a_key_are_reused():
    registry = HubRegistry(endpoint="http://127.0.0.1:9")
    saved = RepoRef("alice/x", "a" * 40, ["taskemb.safetensors", "taskemb.json"])
    adapter = RepoRef("bob/y", "b" * 40, ["adapter_config.json", "adapter_model.safetensors"], tagged=False)

    class Old:  # an index row parsed before parse keys existed
        name, info = "alice/x", type("Info", (), {"extra": {}})()

    assert parse_key_of(Old) is None
    assert registry.reusable(Old, saved)  # a saved vector is read as it is, whatever the code's version
    assert not registry.reusable(Old, adapter)  # an adapter embedded by older code is embedded again


def test_the_parse_key_of_an_adapter_does_not_depend_on_what_this_machine_can_read(monkeypatch):
    from taskemb_hub import base_model

    adapter = RepoRef("bob/y", "b" * 40, ["adapter_config.json", "adapter_model.safetensors"], tagged=False)
    here = HubRegistry(endpoint="http://127.0.0.1:9", base_model="test/tiny-bert").parse_key(adapter)

    def unreadable(*args, **kwargs):
        raise OSError("not cached on this machine")

    monkeypatch.setattr(base_model, "read_base_model_config", unreadable)
    elsewhere = HubRegistry(endpoint="http://127.0.0.1:9", base_model="test/tiny-bert").parse_key(adapter)
    assert here == elsewhere


def test_an_entry_carried_at_its_commit_survives_a_failed_re_read():
    """An index build that re-reads a repo for newer embedding code and fails (a 5xx, the deadline) keeps the row
    it carried at that very commit, rather than pushing an index without it."""
    ref = RepoRef("bob/y", "b" * 40, ["adapter_config.json", "adapter_model.safetensors"], tagged=False)
    carried = object()
    registry = HubRegistry(endpoint="http://127.0.0.1:9", known={"bob/y": ("b" * 40, carried)})
    failed = [("bob/y", "timed out"), ("carol/z", "HTTP 500")]
    with pytest.warns(UserWarning, match="kept as the index had them"):
        assert registry._kept_on_failure([ref], failed) == [carried]
    assert failed == [("carol/z", "HTTP 500")]
    moved = RepoRef("bob/y", "c" * 40, ref.files, tagged=False)  # a new commit: the old row is no longer it
    assert registry._kept_on_failure([moved], [("bob/y", "timed out")]) == []


def test_index_build_waits_for_every_repo_by_default(monkeypatch, tmp_path):
    import math

    from taskemb_hub.registries import hub as hub_module
    from taskemb_hub.registries.index import build_index

    seen = {}

    class Stop(Exception):
        pass

    def registry(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(hub_module, "HubRegistry", registry)
    with pytest.raises(Stop):
        build_index(folder=tmp_path / "index", endpoint="http://127.0.0.1:9")
    assert seen["deadline"] == math.inf
    with pytest.raises(Stop):
        build_index(folder=tmp_path / "index", endpoint="http://127.0.0.1:9", deadline=30)
    assert 0 < seen["deadline"] <= 30


def test_a_checkpoint_records_its_tasks_local_folder_as_local_never_as_a_relative_path(tiny_bert, tmp_path,
                                                                                       monkeypatch):
    """`taskemb-hub embed` from another directory must not read `data/my_task` as a Hub dataset id."""
    import json

    from conftest import _sentiment_rows
    from taskemb_hub import TuningConfig, tune

    folder = tmp_path / "data" / "my_task"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n"
                                                                for r in _sentiment_rows(40, 0)))
    monkeypatch.chdir(tmp_path)
    checkpoint = tune("data/my_task/train.csv", TuningConfig(base_model=tiny_bert, max_steps=2, eval_examples=0),
                      tmp_path / "run", progress=False)[-1]
    info = json.loads((checkpoint.path / "taskemb_checkpoint.json").read_text())
    assert info["source"] == "local:train.csv"


def test_a_datasets_edit_made_on_the_hub_survives_the_next_publish_of_a_generated_folder_card():
    from taskemb_hub.cards import merge_cards

    repo = "---\ndatasets:\n- carol/reviews-cleaned\nlanguage: en\n---\n# My adapter\n"
    folder = "---\ndatasets:\n- carol/reviews\nlicense: mit\ntags:\n- taskemb-hub\n---\n# generated\n"
    merged = merge_cards(repo, folder)
    assert "carol/reviews-cleaned" in merged and "- carol/reviews\n" not in merged
    assert "license: mit" in merged  # what the repo's card lacks is filled in
    written = "---\nlanguage: fr\n---\n# Written in the folder after the first publish\n"
    assert "language: fr" in merge_cards(repo, written)  # a key tune never writes: the folder's wins
