"""The Hub registry against stale caches, hung repos and the user's own published adapter (issue 21), on the local
Hub-compatible server driven by the real `huggingface_hub` client."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from taskemb_hub import embedding as embedding_code
from taskemb_hub.cli import main
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.errors import RegistryError
from taskemb_hub.registries import hub as hub_module
from taskemb_hub.registries.hub import HubRegistry, embedding_from_repo
from taskemb_hub.registries.index import build_index
from taskemb_hub.ranking.selector import AutoSourceSelector

from local_hub import repo_files


BASE = "test/tiny-bert"
SIGNATURE = {"method": "bitfit", "synthetic_dim": 64}


def _embedding(i: int) -> TaskEmbedding:
    vector = torch.randn(64, generator=torch.Generator().manual_seed(i))
    return TaskEmbedding(vector=vector, task=f"task-{i}", base_model=BASE, method="bitfit", signature=SIGNATURE,
                         step=100, train_size=1000)


@pytest.fixture
def seeded(hub):
    for i in range(4):
        hub.state.add_repo(f"user{i}/task-{i}", repo_files(_embedding(i)))
    hub.stats.reset()
    return hub


# ---- 1. parsed entries are reused only under the same embedding code ---------------------------------------
@pytest.fixture(scope="module")
def lora_adapter(tmp_path_factory, tiny_bert):
    from conftest import _sentiment_rows
    from taskemb_hub import TuningConfig, tune
    from taskemb_hub.data import CLASSIFICATION, TaskData

    task = TaskData(name="toy", task_type=CLASSIFICATION, labels=["neg", "pos"],
                    splits={"train": _sentiment_rows(32, 0), "validation": _sentiment_rows(8, 1)})
    cfg = TuningConfig(method="lora", base_model=tiny_bert, max_steps=3, eval_examples=0)
    return tune(task, cfg, tmp_path_factory.mktemp("lora"), progress=False)[-1].path


def _plain_adapter(folder: Path) -> dict[str, bytes]:
    """An untagged PEFT adapter of BASE, as someone else publishes one (no taskemb files)."""
    config = json.loads((folder / "adapter_config.json").read_text()) | {"base_model_name_or_path": BASE}
    return {"adapter_config.json": json.dumps(config).encode(),
            "README.md": f"---\nbase_model: {BASE}\nlibrary_name: peft\n---\n# a LoRA\n".encode(),
            "adapter_model.safetensors": (folder / "adapter_model.safetensors").read_bytes()}


def test_a_new_embedding_code_version_re_embeds_what_older_code_embedded(hub, lora_adapter, monkeypatch):
    hub.state.add_repo("carol/plain-lora", _plain_adapter(lora_adapter))
    real = hub_module.embed_adapter_folder

    def older_code(folder, **kwargs):  # what an older version embedded: another vector for the same bytes
        embedding = real(folder, **kwargs)
        embedding.vector = embedding.vector.flip(0)
        return embedding

    monkeypatch.setattr(hub_module, "embed_adapter_folder", older_code)
    first = HubRegistry(base_model=BASE, include_untagged=True)
    [stale] = first.entries()
    assert first.report.fetched == 1
    monkeypatch.setattr(hub_module, "embed_adapter_folder", real)
    hub.stats.reset()
    same_code = HubRegistry(base_model=BASE, include_untagged=True)
    [kept] = same_code.entries()
    assert same_code.report.cached == 1 and same_code.report.fetched == 0  # unchanged code: reused, nothing read
    assert hub.stats["download"] == 0 and hub.stats["paths-info"] == 0
    assert torch.equal(kept.embedding.vector, stale.embedding.vector)

    monkeypatch.setattr(embedding_code, "EMBEDDING_CODE_VERSION", embedding_code.EMBEDDING_CODE_VERSION + 1)
    new_code = HubRegistry(base_model=BASE, include_untagged=True)
    [fresh] = new_code.entries()
    assert new_code.report.fetched == 1 and new_code.report.cached == 0, "a new version re-embeds the adapter"
    assert hub.stats["download"] == 0  # from the files in the HF cache: only the parse was stale
    expected = TaskEmbedding.from_adapter(lora_adapter)  # what the current code embeds
    assert torch.allclose(fresh.embedding.vector, expected.vector)
    again = HubRegistry(base_model=BASE, include_untagged=True)
    again.entries()
    assert again.report.cached == 1 and again.report.fetched == 0


def test_an_index_carries_rows_over_only_under_the_same_embedding_code(seeded, monkeypatch, lora_adapter):
    """Saved vectors are read as they are, whatever the code's version (review fix: re-reading them all for a new
    version re-fetched every repo and, under a deadline, pushed partial indexes); an adapter embedded here is read
    again under newer embedding code."""
    seeded.state.add_repo("dave/plain-lora", _plain_adapter(lora_adapter))
    first = build_index("alice/idx", base_model=BASE, include_untagged=True)
    assert first.fetched == 5 and first.committed
    unchanged = build_index("alice/idx", base_model=BASE, include_untagged=True)
    assert unchanged.reused == 5 and unchanged.fetched == 0 and not unchanged.committed
    monkeypatch.setattr(embedding_code, "EMBEDDING_CODE_VERSION", embedding_code.EMBEDDING_CODE_VERSION + 1)
    newer = build_index("alice/idx", base_model=BASE, include_untagged=True)
    assert newer.fetched == 1 and newer.reused == 4, "the embedded adapter is read again, the saved vectors carried"
    keys = {e.name: e.info.extra["hub_parse_key"] for e in AutoSourceSelector.from_index("alice/idx").entries}
    assert len(set(keys.values())) == 5  # one key per repo and commit, recorded in the rows for the next build


# ---- 3. a finite deadline and a bounded request on every Hub read ---------------------------------------------
def test_a_hung_repo_costs_one_request_timeout_not_the_clients_minutes_of_retries(seeded):
    seeded.faults.add(r"user1/task-1/resolve/", hang_s=60, times=None)
    start = time.monotonic()
    selector = AutoSourceSelector.from_hub(timeout=1)  # no deadline given: the default applies
    elapsed = time.monotonic() - start
    assert elapsed < 15, f"one hung repo held the sync {elapsed:.0f} s"
    assert sorted(e.name for e in selector.entries) == ["user0/task-0", "user2/task-2", "user3/task-3"]
    assert "timed out" in dict(selector.skipped)["user1/task-1"]


def test_a_small_deadline_returns_in_time_with_the_other_entries_and_names_the_hung_repo(seeded):
    seeded.faults.add(r"user2/task-2/resolve/", hang_s=60, times=None)
    start = time.monotonic()
    selector = AutoSourceSelector.from_hub(deadline=2)
    assert time.monotonic() - start < 2 + 3
    assert sorted(e.name for e in selector.entries) == ["user0/task-0", "user1/task-1", "user3/task-3"]
    assert "deadline" in dict(selector.sync_report.failed)["user2/task-2"]


def test_the_default_deadline_is_finite_and_bounds_a_default_from_hub(seeded, monkeypatch):
    from taskemb_hub.registries import _fetch

    assert HubRegistry().deadline == _fetch.DEFAULT_DEADLINE_S < float("inf")
    monkeypatch.setitem(_fetch._defaults, "deadline", 2.0)  # as `taskemb-hub space --deadline 2` sets it
    seeded.faults.add(r"user3/task-3/resolve/", hang_s=60, times=None)
    start = time.monotonic()
    selector = AutoSourceSelector.from_hub()
    assert time.monotonic() - start < 2 + 3
    assert "user3/task-3" in dict(selector.skipped)


def test_a_hung_index_repo_is_one_clear_error_within_the_deadline(seeded):
    build_index("alice/idx", base_model=BASE)
    seeded.faults.add(r"datasets/alice/idx/resolve/", hang_s=60, times=None)
    start = time.monotonic()
    with pytest.raises(RegistryError, match="alice/idx.*(timed out|deadline)"):
        AutoSourceSelector.from_index("alice/idx", timeout=1, deadline=4)
    assert time.monotonic() - start < 4 + 3


def test_a_hung_repo_named_as_the_target_is_bounded_too(seeded):
    seeded.faults.add(r"user0/task-0/resolve/", hang_s=60, times=None)
    start = time.monotonic()
    with pytest.raises(RegistryError, match="user0/task-0.*(timed out|deadline)"):
        embedding_from_repo("user0/task-0", timeout=1, deadline=3)
    assert time.monotonic() - start < 3 + 3


@pytest.mark.parametrize("command", [["rank"], ["registry", "sync"], ["registry", "list"], ["index", "build"],
                                     ["space"]])
def test_every_command_that_reads_the_hub_takes_deadline_and_timeout(command, capsys):
    with pytest.raises(SystemExit) as done:
        main(command + ["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--deadline SECONDS" in out and "--timeout SECONDS" in out


def test_a_bad_deadline_is_one_line_and_exit_2(capsys):
    assert main(["rank", "--registry", "hub", "--target", "x", "--deadline", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "--deadline" in err


def test_cli_sync_and_rank_pass_the_deadline_through(seeded, capsys, tmp_path):
    seeded.faults.add(r"user1/task-1/resolve/", hang_s=60, times=None)
    start = time.monotonic()
    assert main(["registry", "sync", "--hub", "--deadline", "2", "--json"]) == 0
    assert time.monotonic() - start < 2 + 4
    report = json.loads(capsys.readouterr().out)
    assert [f["repo"] for f in report["failed"]] == ["user1/task-1"]
    target = tmp_path / "target"
    _embedding(7).save(target)
    start = time.monotonic()
    assert main(["rank", "--registry", "hub", "--target", str(target), "--timeout", "1", "--json"]) == 0
    assert time.monotonic() - start < 15
    ranked = json.loads(capsys.readouterr().out)
    assert "user1/task-1" in [s["source"] for s in ranked["skipped"]]


# ---- 5. the user's own published adapter is not its own best source -------------------------------------------
def test_a_target_read_from_a_hub_repo_leaves_that_repo_out(seeded):
    selector = AutoSourceSelector.from_hub()
    target = embedding_from_repo("user1/task-1")
    ranking = selector.rank(target)
    assert "user1/task-1" not in ranking.names and len(ranking) == 3
    assert "user1/task-1" in ranking.why and "target itself" in ranking.why


def test_the_published_folder_as_target_leaves_its_repo_out(seeded, tmp_path, capsys):
    _embedding(2).save(tmp_path / "mine")  # the folder user2/task-2 was published from
    ranking = AutoSourceSelector.from_hub().rank(tmp_path / "mine")
    assert "user2/task-2" not in ranking.names and "identical vector" in ranking.why
    build_index("alice/idx")
    from_index = AutoSourceSelector.from_index("alice/idx").rank(str(tmp_path / "mine"))  # float16 rows, same print
    assert "user2/task-2" not in from_index.names and len(from_index) == 3
    assert main(["rank", "--registry", "hub", "--target", str(tmp_path / "mine"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "user2/task-2" not in [r["source"] for r in out["ranking"]] and "user2/task-2" in out["why"]
    other = AutoSourceSelector.from_hub().rank(_embedding(9))  # anything else ranks every entry
    assert len(other) == 4 and "target itself" not in other.why


# ---- 6. a pushed selector snapshot reads through from_index --------------------------------------------------
def test_from_index_reads_a_pushed_selector_snapshot(seeded, capsys):
    selector = AutoSourceSelector.from_hub(similarity="centered")
    selector.push_to_hub("alice/selector")
    loaded = AutoSourceSelector.from_index("alice/selector")
    target = _embedding(9)
    assert loaded.similarity == "centered"
    assert loaded.rank(target).names == selector.rank(target).names
    assert main(["rank", "--registry", "index:alice/selector", "--target", "task-0", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["ranking"]) == 3


def test_a_model_repo_that_is_no_selector_is_one_line_naming_the_fix(seeded, capsys):
    assert main(["rank", "--registry", "index:user0/task-0", "--target", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "user0/task-0" in err and "from_pretrained" in err


def test_space_sets_the_servers_deadline_and_timeout_for_every_hub_read(monkeypatch):
    import taskemb_hub.space as space
    from taskemb_hub.registries import _fetch

    monkeypatch.setattr(_fetch, "_defaults", dict(_fetch._defaults))  # restored after the test
    launched = []
    monkeypatch.setattr(space, "launch", lambda registry, **kwargs: launched.append(registry))
    assert main(["space", "--registry", "hub", "--deadline", "30", "--timeout", "3"]) == 0
    assert launched == ["hub"]
    assert HubRegistry().deadline == 30 and HubRegistry().timeout == 3  # registry (re)loads and visitors' repo ids


@pytest.mark.parametrize("change, reason", [({"step": "five"}, "step"), ({"metrics": [1, 2]}, "metrics"),
                                            ({"task": "t" * 100_000}, "task"), ({"method": "not-a-method"}, "method"),
                                            ({"pad": "x" * (2 << 20)}, "bytes")])
def test_one_repo_with_malformed_metadata_is_skipped_and_never_breaks_an_index_build(seeded, change, reason):
    files = repo_files(_embedding(5))
    files["taskemb.json"] = json.dumps(json.loads(files["taskemb.json"]) | change).encode()
    seeded.state.add_repo("mallory/bad", files)
    report = build_index("alice/idx")  # one index table for every repo: a string step once broke all of it
    assert report.entries == 4 and report.committed
    [(repo, why)] = report.failed
    assert repo == "mallory/bad" and reason in why and "\n" not in why
