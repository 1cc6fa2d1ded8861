"""An index that follows the Hub: chunked layout (an update rewrites one chunk) and the webhook receiver."""

import json

import pytest
import torch

from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.errors import RegistryError
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.index import read_index, write_index
from taskemb_hub.selector import AutoSourceSelector

SIGNATURE = {"method": "bitfit", "synthetic": True}


@pytest.fixture(autouse=True)
def _assembled_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKEMB_HUB_INDEX_CACHE", str(tmp_path / "assembled"))


def _emb(i, vector):
    return TaskEmbedding(vector=vector, task=f"t{i}", base_model="org/base", method="bitfit", signature=SIGNATURE,
                         step=100, train_size=1000, metrics={"accuracy": 0.5})


def _entries(n, dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [RegistryEntry(f"org/t{i:04d}", _emb(i, torch.randn(dim, generator=g) + 2), f"org/t{i:04d}@{i:040x}")
            for i in range(n)]


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in (folder / "signatures").rglob("*") if p.is_file()}


# ---- layout ---------------------------------------------------------------------------------------------------
def test_a_large_signature_is_chunked_and_reads_back_as_one_group(tmp_path):
    entries = _entries(1500)
    folder = write_index(entries, tmp_path / "idx", chunk_rows=256)
    meta = json.loads((folder / "index.json").read_text())
    [shard] = meta["shards"].values()
    assert meta["format"] == "taskemb-hub-index/2" and 6 <= len(shard["chunks"]) <= 16
    assert all(c["rows"] <= 256 for c in shard["chunks"])
    contents = read_index(folder)
    assert sorted(e.name for e in contents.entries) == [e.name for e in entries]
    single = write_index(entries, tmp_path / "single", chunk_rows=10_000)  # the same float16 rows in one file
    target = _emb("q", torch.randn(32) + 2)
    for similarity in ("cosine", "centered"):
        got = AutoSourceSelector.from_index(folder).rank(target, top_k=20, similarity=similarity)
        want = AutoSourceSelector.from_index(single).rank(target, top_k=20, similarity=similarity)
        assert got.names == want.names and [r["score"] for r in got] == [r["score"] for r in want]
    # the viewer's config names the chunk files
    assert "signatures/*/*.parquet" in (folder / "README.md").read_text()


def test_one_changed_entry_rewrites_only_its_chunk(tmp_path):
    folder = write_index(_entries(1500), tmp_path / "idx", chunk_rows=256)
    before = _files(folder)
    contents = read_index(folder)
    changed = RegistryEntry("org/t0007", _emb(7, torch.randn(32) + 5), f"org/t0007@{'f' * 40}")
    write_index([e for e in contents.entries if e.name != "org/t0007"] + [changed], folder, chunk_rows=256)
    after = _files(folder)
    assert len(set(after) - set(before)) == 2 and len(set(before) - set(after)) == 2  # one chunk's two files
    assert all(after[name] == before[name] for name in set(after) & set(before))
    # a fresh build of the same entries writes the very same files (the chunks depend on the names alone)
    fresh = write_index([e for e in _entries(1500) if e.name != "org/t0007"] + [changed], tmp_path / "fresh",
                        chunk_rows=256)
    assert _files(fresh) == after
    assert read_index(folder).shas["org/t0007"] == "f" * 40


def test_a_format_1_index_still_reads_and_a_forged_chunk_id_is_refused_in_one_line(tmp_path):
    folder = write_index(_entries(10), tmp_path / "small")
    meta = json.loads((folder / "index.json").read_text())
    assert meta["format"] == "taskemb-hub-index/1"  # nothing chunked: readable by older versions too
    assert len(read_index(folder).entries) == 10
    folder = write_index(_entries(600), tmp_path / "big", chunk_rows=256)
    meta = json.loads((folder / "index.json").read_text())
    [shard] = meta["shards"].values()
    shard["chunks"][0]["id"] = "../../etc/passwd"
    (folder / "index.json").write_text(json.dumps(meta))
    with pytest.raises(RegistryError, match="not 32 hex digits") as err:
        read_index(folder)
    assert "\n" not in str(err.value)
