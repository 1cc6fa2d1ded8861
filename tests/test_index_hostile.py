"""A registry index is anyone's file: shard keys recomputed on read, and `index build` against a failing Hub
(issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from taskemb_hub.cli import main
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.index import IndexRegistry, read_index, write_index
from taskemb_hub.ranking.selector import AutoSourceSelector

from local_hub import repo_files


SIGNATURE = {"method": "bitfit", "synthetic": True}


def _embedding(i: int, base: str = "org/base") -> TaskEmbedding:
    vector = torch.randn(32, generator=torch.Generator().manual_seed(i))
    return TaskEmbedding(vector=vector, task=f"task-{i}", base_model=base, method="bitfit", signature=SIGNATURE,
                         step=100, train_size=1000)


def _entries(n: int, base: str = "org/base", start: int = 0) -> list[RegistryEntry]:
    return [RegistryEntry(f"{base.split('/')[0]}/task-{i}", _embedding(i, base), f"x/task-{i}@{i:040x}")
            for i in range(start, start + n)]


def _rewrite_rows(shard: Path, change) -> None:
    table = pq.read_table(shard)
    rows = table.to_pylist()
    change(rows)
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), shard)


# ---- 2. shard keys are recomputed from each row's own fields -------------------------------------------------
def test_a_row_of_another_base_model_filed_in_a_shard_is_refused_and_named(tmp_path):
    write_index(_entries(6), tmp_path / "idx")
    [shard] = (tmp_path / "idx" / "signatures").glob("*.parquet")

    def smuggle(rows):  # a third party files two rows of another base model under org/base's key
        for row in rows[:2]:
            row["base_model"] = "other/base"

    _rewrite_rows(shard, smuggle)
    registry = IndexRegistry(tmp_path / "idx")
    contents = registry.read()
    refused = dict(registry.skipped)
    assert sorted(refused) == ["org/task-0", "org/task-1"]
    assert all("'other/base'" in why and "mislabelled" in why and "\n" not in why for why in refused.values())
    assert sorted(e.name for e in contents.entries) == [f"org/task-{i}" for i in range(2, 6)]
    ranking = AutoSourceSelector.from_index(tmp_path / "idx").rank(_embedding(9))
    assert "org/task-0" not in ranking.names and len(ranking) == 4
    assert "mislabelled" in dict(ranking.skipped)["org/task-0"]


def test_a_whole_shard_filed_under_another_signatures_key_ranks_as_nothing(tmp_path):
    write_index(_entries(4, base="other/base"), tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    [(real_key, shard)] = meta["shards"].items()
    forged_key = _embedding(0).signature_hash  # org/base's key, so the rows would rank against org/base targets
    meta["shards"] = {forged_key: shard}
    (tmp_path / "idx" / "index.json").write_text(json.dumps(meta))
    for path in (tmp_path / "idx" / "signatures").iterdir():
        path.rename(path.with_name(forged_key + path.suffix))
    registry = IndexRegistry(tmp_path / "idx")
    assert registry.read().entries == []
    assert len(registry.skipped) == 4 and all("other/base" in why for _, why in registry.skipped)


def test_a_method_that_is_not_its_shards_is_refused(tmp_path):
    write_index(_entries(3), tmp_path / "idx")
    [shard] = (tmp_path / "idx" / "signatures").glob("*.parquet")
    _rewrite_rows(shard, lambda rows: rows[0].update(method="lora"))
    registry = IndexRegistry(tmp_path / "idx")
    assert [e.name for e in registry.read().entries] == ["org/task-1", "org/task-2"]
    assert "'lora'" in dict(registry.skipped)["org/task-0"]


def test_an_honest_index_refuses_nothing(tmp_path):
    write_index(_entries(3) + _entries(2, base="other/base", start=10), tmp_path / "idx")
    registry = IndexRegistry(tmp_path / "idx")
    assert len(registry.read().entries) == 5 and registry.skipped == []


# ---- 4. index build against a Hub that answers 500 on the index repo -----------------------------------------
@pytest.mark.parametrize("route", ["info", "resolve"])
def test_index_build_when_the_index_repo_answers_500_is_one_line_and_leaves_it_untouched(hub, capsys, route):
    for i in range(3):
        hub.state.add_repo(f"user{i}/task-{i}", repo_files(_embedding(i)))
    assert main(["index", "build", "--repo-id", "alice/idx", "--json"]) == 0
    capsys.readouterr()
    before = hub.state.repo("alice/idx", "dataset").sha
    hub.state.add_repo("user9/task-9", repo_files(_embedding(9)))  # a change the build would push
    hub.faults.add(r"^/(api/)?datasets/alice/idx", status=500, route=route, times=None)
    hub.stats.reset()
    assert main(["index", "build", "--repo-id", "alice/idx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert "alice/idx" in err and "HTTP 500" in err and "Traceback" not in err
    assert hub.state.repo("alice/idx", "dataset").sha == before, "the index was not rebuilt nor pushed"
    assert hub.stats["commit"] == 0
    hub.faults.clear()
    assert main(["index", "build", "--repo-id", "alice/idx", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["entries"] == 4 and report["reused"] == 3 and report["fetched"] == 1


def test_from_index_of_a_repo_that_answers_500_is_one_line(hub, capsys):
    hub.faults.add(r"^/api/datasets/alice/idx", status=500, times=None)
    assert main(["rank", "--registry", "index:alice/idx", "--target", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "alice/idx" in err and "HTTP 500" in err
