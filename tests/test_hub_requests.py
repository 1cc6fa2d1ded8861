"""The requests a Hub sync makes, counted by the local Hub-compatible server (issue 23, item 3).

A first sync takes commits and file names from the listing and sizes and etags from one paths-info request per
repo, then GETs each file: no HEAD per file (the client's `hf_hub_download` would HEAD each one first). The files
land in the HF cache where `hf_hub_download` puts them, so it finds them later without a request.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from taskemb_hub.cards import build_card
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.registries.hub import HubRegistry, embedding_from_repo


BASE = "test/tiny-bert"
N_REPOS = 4


def _files(i: int, dim: int = 64) -> dict[str, bytes]:
    vector = torch.randn(dim, generator=torch.Generator().manual_seed(i))
    embedding = TaskEmbedding(vector=vector, task=f"task-{i}", base_model=BASE, method="bitfit",
                              signature={"method": "bitfit", "synthetic_dim": dim}, step=100, train_size=1000)
    with tempfile.TemporaryDirectory() as folder:
        embedding.save(folder)
        files = {name: (Path(folder) / name).read_bytes() for name in ("taskemb.safetensors", "taskemb.json")}
    files["README.md"] = str(build_card(embedding)).encode()
    return files


@pytest.fixture
def seeded(hub):
    for i in range(N_REPOS):
        hub.state.add_repo(f"user{i}/task-{i}", _files(i))
    hub.stats.reset()
    return hub


def test_a_first_sync_heads_no_file_it_knows_and_a_resync_only_lists(seeded):
    registry = HubRegistry()
    entries = registry.entries()
    assert len(entries) == N_REPOS and registry.report.failed == []
    # 1 listing + per repo: 1 paths-info (sizes, etags) + 2 GETs. Was 4 HEADs + 2 GETs per repo.
    assert seeded.stats.as_dict()["routes"] == {"list": 1, "paths-info": N_REPOS, "download": 2 * N_REPOS}
    assert seeded.stats["head"] == 0
    seeded.stats.reset()
    again = HubRegistry()
    assert [e.name for e in again.entries()] == [e.name for e in entries]
    assert seeded.stats.as_dict()["routes"] == {"list": 1}  # the 0-download re-sync


def test_the_files_sit_where_hf_hub_download_looks_for_them(seeded):
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    HubRegistry().entries()
    repo = seeded.state.repo("user1/task-1")
    seeded.stats.reset()
    for name in ("taskemb.safetensors", "taskemb.json"):
        path = hf_hub_download("user1/task-1", name, revision=repo.sha)
        assert Path(path).read_bytes() == repo["files"][name]
        assert try_to_load_from_cache("user1/task-1", name, revision=repo.sha) == path
    assert seeded.stats.requests == 0
    hf_hub_download("user1/task-1", "taskemb.json")  # by branch: one HEAD for the commit, no download
    assert seeded.stats.as_dict()["routes"] == {"head": 1}


def test_a_cached_file_is_not_asked_for(seeded):
    from huggingface_hub import hf_hub_download

    repo = seeded.state.repo("user0/task-0")
    hf_hub_download("user0/task-0", "taskemb.json", revision=repo.sha)  # e.g. read by hand before
    seeded.stats.reset()
    HubRegistry().entries()
    downloads = {(d[1], d[3]) for d in seeded.stats.downloads}
    assert ("user0/task-0", "taskemb.json") not in downloads and ("user0/task-0", "taskemb.safetensors") in downloads
    assert seeded.stats["head"] == 0 and seeded.stats["paths-info"] == N_REPOS


def test_sizes_from_paths_info_refuse_a_large_file_unread_and_failures_keep_their_reason(seeded):
    seeded.state.add_repo("big/huge", _files(99, dim=100_000))
    seeded.faults.add(r"/api/models/user2/task-2/paths-info/", status=500, times=None)
    seeded.faults.add(r"user3/task-3/resolve/.*/taskemb\.json", status=503, times=None)
    registry = HubRegistry(max_file_bytes=100_000)
    names = {e.name for e in registry.entries()}
    reasons = dict(registry.report.failed)
    assert names == {"user0/task-0", "user1/task-1"}
    assert "over the limit" in reasons["big/huge"]
    assert "HTTP 500" in reasons["user2/task-2"]
    assert "HTTP 503" in reasons["user3/task-3"] and "taskemb.json" in reasons["user3/task-3"]
    assert not any(d[1] == "big/huge" for d in seeded.stats.downloads)  # refused before any byte
    assert seeded.stats["head"] == 0


def test_a_server_without_paths_info_is_asked_once_then_heads_each_file(seeded):
    seeded.faults.add(route="paths-info", status=404, times=None)
    registry = HubRegistry(max_workers=1)
    assert len(registry.entries()) == N_REPOS and registry.report.failed == []
    assert seeded.stats["paths-info"] == 1  # then known unsupported for the rest of the sync
    assert seeded.stats["download"] == 2 * N_REPOS and seeded.stats["head"] > 0


def test_embedding_from_repo_takes_sizes_from_model_info(seeded):
    embedding = embedding_from_repo("user1/task-1")
    assert embedding.task == "task-1"
    assert seeded.stats.as_dict()["routes"] == {"info": 1, "download": 2}
