"""An index that follows the Hub: chunked layout (an update rewrites one chunk) and the webhook receiver."""

import json

import pytest
import torch

from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.errors import RegistryError
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.index import read_index, write_index
from taskemb_hub.ranking.selector import AutoSourceSelector

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


def test_a_half_linked_chunk_never_writes_through_the_link_into_the_index_it_was_read_from(tmp_path, monkeypatch):
    import os
    import shutil

    source = write_index(_entries(600), tmp_path / "src", chunk_rows=256)
    before = _files(source)
    stamps = {p: p.stat().st_mtime_ns for p in (source / "signatures").rglob("*") if p.is_file()}
    contents = read_index(source)
    real_link, real_copy = os.link, shutil.copyfile

    def link(src, dst, *a, **k):  # the vectors link; the rows file can be neither linked nor copied
        if str(dst).endswith(".parquet"):
            raise OSError("no space left")
        return real_link(src, dst, *a, **k)

    def copy(src, dst, *a, **k):
        if str(dst).endswith(".parquet"):
            raise OSError("no space left")
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(shutil, "copyfile", copy)
    out = write_index(contents.entries, tmp_path / "out", chunk_rows=256)  # every chunk written afresh instead
    monkeypatch.undo()
    # the index read (in practice HF-cache blobs, memory-mapped by its readers) was never opened for writing
    assert _files(source) == before
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and all(p.stat().st_nlink == 1 for p in stamps)
    assert sorted(e.name for e in read_index(out).entries) == [e.name for e in _entries(600)]


def test_the_assembled_cache_is_pruned_by_bytes_too(tmp_path):
    import os

    from taskemb_hub.registries._index_layout import _prune

    folder = tmp_path / "assembled"
    folder.mkdir()
    for i, size in enumerate([100, 100, 100, 100, 50]):  # oldest first; the newest is the one just written
        path = folder / f"{i}.safetensors"
        path.write_bytes(b"x" * size)
        os.utime(path, (1000 + i, 1000 + i))
    _prune(folder, keep=folder / "4.safetensors")
    # the newest plus at most 2x its size of older assemblies: 50 + 100 (the next one would make 200 > 100)
    assert sorted(p.name for p in folder.iterdir()) == ["3.safetensors", "4.safetensors"]


# ---- the webhook receiver, end to end against the local test Hub -----------------------------------------------
import socket  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from taskemb_hub.cards import build_card  # noqa: E402

BASE = "org/base"
SECRET = "s3cret-for-tests"


def _repo_files(i: int, seed: int = 0) -> dict[str, bytes]:
    vector = torch.randn(64, generator=torch.Generator().manual_seed(1000 * seed + i)) + 1
    embedding = TaskEmbedding(vector=vector, task=f"task-{i}", base_model=BASE, method="bitfit",
                              signature={"method": "bitfit", "synthetic_dim": 64}, step=100, train_size=1000)
    with tempfile.TemporaryDirectory() as folder:
        embedding.save(folder)
        files = {name: (Path(folder) / name).read_bytes() for name in ("taskemb.safetensors", "taskemb.json")}
    files["README.md"] = str(build_card(embedding)).encode()
    return files


def _payload(hub, repo, action="update", scope="repo.content"):
    sha = hub.state.repo(repo).sha if action != "delete" else None
    return {"event": {"action": action, "scope": scope},
            "repo": {"type": "model", "name": repo, "id": "6366c000a2abcdf2fd69a080", "private": False,
                     "headSha": sha, "owner": {"id": "6366c000a2abcdf2fd69a081"}, "tags": hub.state.tags(repo),
                     "url": {"web": f"{hub.endpoint}/{repo}", "api": f"{hub.endpoint}/api/models/{repo}"}},
            "webhook": {"id": "6390e2f8a2abcdf2fd69a082", "version": 3},
            "updatedRefs": [{"ref": "refs/heads/main", "oldSha": None, "newSha": sha}]}


def _republish(hub, repo, i, seed):
    from huggingface_hub import CommitOperationAdd, HfApi

    files = _repo_files(i, seed)
    HfApi(endpoint=hub.endpoint).create_commit(repo, operations=[CommitOperationAdd(n, b) for n, b in files.items()
                                                                 if n != "README.md"], commit_message="retune")


@pytest.fixture
def receiver(hub):
    """Three tagged entries, their index pushed, the receiver served on a free port."""
    import httpx

    from taskemb_hub.registries._webhooks import IndexUpdater, serve
    from taskemb_hub.registries.index import build_index

    for i in range(3):
        hub.state.add_repo(f"user{i}/task-{i}", _repo_files(i))
    assert build_index("alice/idx", endpoint=hub.endpoint).committed
    updater = IndexUpdater("alice/idx", endpoint=hub.endpoint, debounce_s=0.5, retry_s=0.1)
    updater.prime()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve(updater, SECRET, port=port, block=False)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def post(body, secret=SECRET):
        return client.post("/webhooks/index", json=body, headers={"X-Webhook-Secret": secret} if secret else {})

    hub.stats.reset()
    yield hub, updater, post
    client.close()
    server.fastapi_app  # noqa: B018 - served until the process ends (gradio's thread is a daemon)
    import gradio as gr

    gr.close_all()


def _index_commits(hub) -> int:
    return len(hub.state.repo("alice/idx", "dataset").commits)


def _index(hub):
    from taskemb_hub.registries.index import IndexRegistry

    return IndexRegistry("alice/idx", endpoint=hub.endpoint).read()


def test_one_update_is_one_repo_read_and_one_index_commit_and_a_replay_is_refused(receiver):
    hub, updater, post = receiver
    before = hub.state.repo("alice/idx", "dataset").sha
    _republish(hub, "user0/task-0", 0, seed=1)
    new_sha = hub.state.repo("user0/task-0").sha
    hub.stats.reset()
    answer = post(_payload(hub, "user0/task-0"))
    assert answer.status_code == 202, answer.text
    updater.wait()
    assert hub.stats["commit"] == 1 and hub.state.repo("alice/idx", "dataset").sha != before
    model_reads = {d[1] for d in hub.stats.downloads if d[0] == "model"}
    assert model_reads == {"user0/task-0"}  # one repo read, at its new commit
    assert all(d[2] == new_sha for d in hub.stats.downloads if d[0] == "model")
    assert _index(hub).shas["user0/task-0"] == new_sha
    hub.stats.reset()
    replay = post(_payload(hub, "user0/task-0"))
    assert replay.status_code == 409 and "replay" in replay.json()["error"]
    updater.wait()
    assert hub.stats["commit"] == 0


def test_a_deletion_removes_the_entry_and_a_burst_is_one_commit(receiver):
    hub, updater, post = receiver
    from huggingface_hub import HfApi

    commits = _index_commits(hub)
    deletion = _payload(hub, "user1/task-1", action="delete")
    HfApi(endpoint=hub.endpoint).delete_repo("user1/task-1")
    assert post(deletion).status_code == 202
    updater.wait()
    assert "user1/task-1" not in _index(hub).shas and _index_commits(hub) == commits + 1
    answer = post(deletion)  # a repeated deletion: nothing to do, not an error
    assert answer.status_code == 200 and "not an entry" in answer.json()["message"]
    for i, repo in ((0, "user0/task-0"), (2, "user2/task-2")):
        _republish(hub, repo, i, seed=2)
        assert post(_payload(hub, repo)).status_code == 202
    hub.state.add_repo("user3/task-3", _repo_files(3))  # a new tagged adapter
    assert post(_payload(hub, "user3/task-3", scope="repo")).status_code == 202
    updater.wait()
    assert _index_commits(hub) == commits + 2  # the burst of three events: one commit
    shas = _index(hub).shas
    assert {r: shas[r] for r in ("user0/task-0", "user2/task-2", "user3/task-3")} == \
        {r: hub.state.repo(r).sha for r in ("user0/task-0", "user2/task-2", "user3/task-3")}
    # the deleted repo is re-created, indexed again, and deleted again: its deletion is applied, not refused forever
    hub.state.add_repo("user1/task-1", _repo_files(1, seed=4))
    assert post(_payload(hub, "user1/task-1")).status_code == 202
    updater.wait()
    assert _index(hub).shas["user1/task-1"] == hub.state.repo("user1/task-1").sha
    HfApi(endpoint=hub.endpoint).delete_repo("user1/task-1")
    assert post(deletion).status_code == 202
    updater.wait()
    assert "user1/task-1" not in _index(hub).shas


def test_a_deletion_delivered_after_the_repo_was_re_created_keeps_it(receiver):
    hub, updater, post = receiver
    late_delete = _payload(hub, "user1/task-1", action="delete")
    _republish(hub, "user1/task-1", 1, seed=5)  # (deleted and) re-created: the repo exists at a new head
    assert post(late_delete).status_code == 202
    updater.wait()
    assert _index(hub).shas["user1/task-1"] == hub.state.repo("user1/task-1").sha


def test_a_wrong_secret_a_bad_payload_and_a_failing_read_change_nothing(receiver):
    hub, updater, post = receiver
    _republish(hub, "user2/task-2", 2, seed=3)
    commits = _index_commits(hub)
    assert post(_payload(hub, "user2/task-2"), secret=None).status_code == 401
    assert post(_payload(hub, "user2/task-2"), secret="wrong").status_code == 403
    bad = _payload(hub, "user2/task-2")
    del bad["event"]
    answer = post(bad)
    assert answer.status_code == 422 and "event" in answer.json()["error"]
    no_sha = _payload(hub, "user2/task-2")
    no_sha["repo"]["headSha"], no_sha["updatedRefs"] = "main", None
    assert post(no_sha).status_code == 422
    untagged = _payload(hub, "user2/task-2")
    untagged["repo"]["name"], untagged["repo"]["tags"] = "someone/unrelated", ["text-classification"]
    assert post(untagged).status_code == 200
    before = hub.state.repo("alice/idx", "dataset").sha
    fault = hub.faults.add(r"/api/models/user2/task-2", status=500, times=None)  # the repo never reads
    assert post(_payload(hub, "user2/task-2")).status_code == 202
    updater.wait()
    assert _index_commits(hub) == commits and hub.state.repo("alice/idx", "dataset").sha == before
    assert fault.hits == updater.attempts  # tried again a bounded number of times, then given up
    assert [r.retrying for r in updater.reports[-updater.attempts:]] == [["user2/task-2"]] * (updater.attempts - 1) + [[]]
    assert updater.reports[-1].failed and updater.reports[-1].failed[0][0] == "user2/task-2"
    assert "\n" not in updater.reports[-1].failed[0][1]
    hub.faults.clear()
    hub.faults.add(r"/api/models/user2/task-2", status=503)  # once: the retry reads it
    _republish(hub, "user2/task-2", 2, seed=6)
    assert post(_payload(hub, "user2/task-2")).status_code == 202
    updater.wait()
    assert _index(hub).shas["user2/task-2"] == hub.state.repo("user2/task-2").sha


def test_a_late_delivery_never_rolls_an_entry_back_and_a_restart_keeps_replays_refused(receiver):
    from taskemb_hub.registries._webhooks import IndexUpdater

    hub, updater, post = receiver
    _republish(hub, "user0/task-0", 0, seed=1)
    push_a = _payload(hub, "user0/task-0")
    _republish(hub, "user0/task-0", 0, seed=2)
    push_b = _payload(hub, "user0/task-0")
    head = hub.state.repo("user0/task-0").sha
    assert post(push_b).status_code == 202
    updater.wait()
    commits = _index_commits(hub)
    hub.stats.reset()
    assert post(push_a).status_code == 202  # a retried delivery of the older push, after the newer one
    updater.wait()
    assert _index(hub).shas["user0/task-0"] == head and _index_commits(hub) == commits
    assert updater.reports[-1].unchanged == ["user0/task-0"] and not updater.reports[-1].committed
    assert not [d for d in hub.stats.downloads if d[0] == "model"]  # the head is the commit indexed: nothing read
    # both pushes in one burst, the older delivered last: the index holds the head
    _republish(hub, "user2/task-2", 2, seed=1)
    old = _payload(hub, "user2/task-2")
    _republish(hub, "user2/task-2", 2, seed=2)
    assert post(_payload(hub, "user2/task-2")).status_code == 202 and post(old).status_code == 202
    updater.wait()
    assert _index(hub).shas["user2/task-2"] == hub.state.repo("user2/task-2").sha
    # a restarted receiver refuses a replay from what the index records, not from its lost memory
    restarted = IndexUpdater("alice/idx", endpoint=hub.endpoint, debounce_s=0.1)
    restarted.prime()
    status, message = restarted.submit(push_b)
    assert status == 409 and "replay" in message and not restarted.pending
    restarted.recent_limit = 2  # the in-memory set of recent events stays bounded
    restarted._requeue({f"r/{i}": _queued(f"{i:040x}") for i in range(5)},
                       set(), type(updater.reports[0])())
    assert len(restarted.recent) == 2


def _queued(sha):
    from taskemb_hub.registries._webhooks import _Queued

    return _Queued(sha, 0.0)


def test_an_index_built_for_one_author_ignores_other_authors(hub):
    from taskemb_hub.registries._webhooks import IndexUpdater
    from taskemb_hub.registries.index import build_index

    for i in range(3):
        hub.state.add_repo(f"user{i}/task-{i}", _repo_files(i))
    assert build_index("alice/idx", endpoint=hub.endpoint, author="user0").committed
    updater = IndexUpdater("alice/idx", endpoint=hub.endpoint, debounce_s=0.1)
    assert updater.prime() == 1
    status, _ = updater.submit(_payload(hub, "user1/task-1"))
    assert status == 200
    updater.wait()
    hub.state.add_repo("user0/task-9", _repo_files(9))
    assert updater.submit(_payload(hub, "user0/task-9"))[0] == 202
    updater.wait()
    assert sorted(_index(hub).shas) == ["user0/task-0", "user0/task-9"]
    assert updater._hub().author == "user0"


def test_a_failed_commit_is_queued_again_and_applied(receiver):
    hub, updater, post = receiver
    _republish(hub, "user0/task-0", 0, seed=7)
    hub.faults.add(r"alice/idx", status=500, route="commit")
    assert post(_payload(hub, "user0/task-0")).status_code == 202
    updater.wait()
    assert updater.reports[0].error and updater.reports[0].retrying == ["user0/task-0"]
    assert updater.reports[-1].committed
    assert _index(hub).shas["user0/task-0"] == hub.state.repo("user0/task-0").sha


def test_a_steady_stream_of_events_is_applied_within_the_maximum_wait(receiver):
    import time

    hub, updater, post = receiver
    updater.debounce_s, updater.max_wait_s = 1.0, 1.5
    _republish(hub, "user0/task-0", 0, seed=8)
    payload = _payload(hub, "user0/task-0")
    start = time.monotonic()
    for i in range(12):  # an event every 0.25 s for 3 s: never a quiet second
        payload["repo"]["headSha"] = payload["updatedRefs"][0]["newSha"] = f"{i + 1:040x}"
        assert updater.submit(payload)[0] == 202
        time.sleep(0.25)
        if updater.reports:
            break
    assert updater.reports and time.monotonic() - start < 2.5
    updater.wait()
    assert _index(hub).shas["user0/task-0"] == hub.state.repo("user0/task-0").sha


def test_an_unchanged_index_makes_no_commit(hub, tmp_path):
    from taskemb_hub.registries._webhooks import _commit_changes
    from taskemb_hub.registries.index import IndexRegistry, build_index

    for i in range(3):
        hub.state.add_repo(f"user{i}/task-{i}", _repo_files(i))
    assert build_index("alice/idx", endpoint=hub.endpoint).committed
    folder = IndexRegistry("alice/idx", endpoint=hub.endpoint).folder(use_cache=False, selectors=False)
    contents = read_index(folder)
    failures = [(f["repo"], f["reason"]) for f in contents.meta["failures"]]
    out = write_index(contents.entries, tmp_path / "same", source=contents.meta["source"], failures=failures)
    hub.stats.reset()
    assert _commit_changes(out, folder, "alice/idx", folder.name, endpoint=hub.endpoint, token=None, message="x") == ""
    assert hub.stats["commit"] == 0


def test_serve_webhooks_without_a_secret_is_one_line_exit_2(monkeypatch, capsys):
    from taskemb_hub.cli import main

    monkeypatch.delenv("TASKEMB_TEST_NO_SECRET", raising=False)
    assert main(["index", "serve-webhooks", "--index", "me/idx", "--secret-env", "TASKEMB_TEST_NO_SECRET"]) == 2
    err = capsys.readouterr().err.strip()
    assert "TASKEMB_TEST_NO_SECRET is empty" in err and "\n" not in err


def test_serve_webhooks_without_gradio_is_one_line_naming_the_extra(monkeypatch, capsys):
    import importlib.util

    from taskemb_hub.cli import main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else find_spec(name, *a))
    monkeypatch.setenv("TASKEMB_TEST_SECRET", "s3cret")
    assert main(["index", "serve-webhooks", "--index", "me/idx", "--secret-env", "TASKEMB_TEST_SECRET"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install "taskemb-hub[space]"' in err
