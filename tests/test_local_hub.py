"""tests/local_hub.py behaves like the Hub where our code depends on it, as seen by the real `huggingface_hub` client."""

import threading
from pathlib import Path
import time
import types

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import get_hf_file_metadata, hf_hub_url

from local_hub import git_blob_oid, local_hub_fixture

README = b"---\ntags: [taskemb, sentiment]\nlibrary_name: peft\nbase_model: org/bert\nlicense: mit\n---\n# card\n"


@pytest.fixture
def paged_hub(monkeypatch, tmp_path):
    yield from local_hub_fixture(monkeypatch, tmp_path, page_size=2)


@pytest.fixture
def backoff_sleeps(monkeypatch):
    """The client's retry sleeps, recorded instead of slept (its backoff is 1, 2, 4, 8, 8 s)."""
    import huggingface_hub.file_download as file_download
    from huggingface_hub.utils import _http

    sleeps = []
    fake_time = types.SimpleNamespace(sleep=sleeps.append)
    monkeypatch.setattr(_http, "time", fake_time)
    monkeypatch.setattr(file_download, "time", fake_time)
    return sleeps


def make_folder(root, files):
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_model_and_dataset_repos_round_trip_through_the_client(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/model")
    api.create_repo("alice/data", repo_type="dataset")
    api.upload_folder(repo_id="alice/model", folder_path=make_folder(tmp_path / "m", {
        "README.md": README, "adapter_config.json": b"{}", "sub/weights.safetensors": b"w" * 100}))
    api.upload_folder(repo_id="alice/data", repo_type="dataset", folder_path=make_folder(tmp_path / "d", {
        "README.md": b"---\nlicense: cc\n---\n", "train.jsonl": b'{"x": 1}\n', "test.jsonl": b'{"x": 2}\n'}))

    assert hub.state.repos["alice/model"]["files"]["sub/weights.safetensors"] == b"w" * 100
    assert "alice/data" not in hub.state.repos  # datasets live apart, as on the Hub
    assert set(hub.state.repo("alice/data", repo_type="dataset").files) == {
        ".gitattributes", "README.md", "train.jsonl", "test.jsonl"}
    assert open(hf_hub_download("alice/model", "sub/weights.safetensors"), "rb").read() == b"w" * 100
    assert open(hf_hub_download("alice/data", "train.jsonl", repo_type="dataset"), "rb").read() == b'{"x": 1}\n'
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("alice/model", "train.jsonl")  # same name, other repo type

    folder = snapshot_download("alice/data", repo_type="dataset", allow_patterns=["*.jsonl"])
    assert sorted(p.name for p in Path(folder).iterdir()) == ["test.jsonl", "train.jsonl"]

    info = api.dataset_info("alice/data")
    assert info.sha == hub.state.repo("alice/data", "dataset").sha and "license:cc" in info.tags
    assert sorted(api.list_repo_files("alice/model")) == [
        ".gitattributes", "README.md", "adapter_config.json", "sub/weights.safetensors"]
    assert [d.id for d in api.list_datasets()] == ["alice/data"]


def test_listing_follows_link_pages_and_filters_on_all_tags(paged_hub):
    api = HfApi(endpoint=paged_hub.endpoint)
    for i in range(5):
        api.create_repo(f"alice/m{i}")
        tags = "[taskemb, even]" if i % 2 == 0 else "[taskemb]"
        api.upload_file(path_or_fileobj=f"---\ntags: {tags}\n---\n".encode(), path_in_repo="README.md",
                        repo_id=f"alice/m{i}")
    api.create_repo("bob/m5")
    paged_hub.stats.reset()

    assert [m.id for m in api.list_models(filter="taskemb", author="alice")] == [f"alice/m{i}" for i in range(5)]
    assert paged_hub.stats["list"] == 3  # pages of 2, 2 and 1, chained by Link headers
    assert [m.id for m in api.list_models(filter=["taskemb", "even"])] == ["alice/m0", "alice/m2", "alice/m4"]
    assert [m.id for m in api.list_models(search="m5")] == ["bob/m5"]
    paged_hub.stats.reset()
    assert len(list(api.list_models(limit=3))) == 3
    assert paged_hub.stats["list"] == 2  # the client stops paging once it has `limit` items


def test_listing_expands_only_what_is_asked(hub):
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/a")
    api.upload_file(path_or_fileobj=README, path_in_repo="README.md", repo_id="alice/a")

    plain = next(iter(api.list_models()))
    assert plain.siblings is None and plain.card_data is None and plain.sha == hub.state.repos["alice/a"].sha
    fields = ["sha", "siblings", "cardData", "tags", "lastModified", "library_name", "private"]
    model = next(iter(api.list_models(expand=fields)))
    assert [s.rfilename for s in model.siblings] == [".gitattributes", "README.md"]
    assert model.card_data.base_model == "org/bert" and model.library_name == "peft"
    assert model.last_modified is not None and model.private is False
    assert model.downloads is None  # not asked for, not sent
    full = next(iter(api.list_models(full=True)))
    assert [s.rfilename for s in full.siblings] == [".gitattributes", "README.md"] and full.card_data is None
    with pytest.raises(HfHubHTTPError, match="expand"):
        list(api.list_models(expand=["no-such-property"]))


def test_tags_are_derived_from_the_card_and_files_like_the_hub(hub):
    api = HfApi(endpoint=hub.endpoint)
    card = b"---\ntags: [taskemb]\nbase_model: org/bert\ndatasets: [imdb]\nlicense: mit\n---\n"
    for repo, files in {"alice/adapter": {"README.md": card, "adapter_config.json": b"{}"},
                        "alice/finetune": {"README.md": card}}.items():
        api.create_repo(repo)
        for name, content in files.items():
            api.upload_file(path_or_fileobj=content, path_in_repo=name, repo_id=repo)

    assert hub.state.tags("alice/adapter") == [
        "taskemb", "dataset:imdb", "base_model:org/bert", "base_model:adapter:org/bert", "license:mit"]
    assert "base_model:finetune:org/bert" in hub.state.tags("alice/finetune")
    assert [m.id for m in api.list_models(filter="base_model:adapter:org/bert")] == ["alice/adapter"]
    assert [m.id for m in api.list_models(filter=["base_model:org/bert", "dataset:imdb"])] == [
        "alice/adapter", "alice/finetune"]


def test_reuploading_an_unchanged_folder_makes_no_commit(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/a")
    folder = make_folder(tmp_path / "f", {"README.md": README, "a.json": b"{}"})
    first = api.upload_folder(repo_id="alice/a", folder_path=folder)
    hub.stats.reset()

    again = api.upload_folder(repo_id="alice/a", folder_path=folder)
    assert again.oid == first.oid == hub.state.repos["alice/a"].sha
    assert hub.stats["preupload"] == 1 and hub.stats["commit"] == 0  # preupload oids let the client skip it all

    (folder / "a.json").write_bytes(b'{"changed": true}')
    changed = api.upload_folder(repo_id="alice/a", folder_path=folder)
    assert changed.oid != first.oid
    assert [c.commit_id for c in api.list_repo_commits("alice/a")][:2] == [changed.oid, first.oid]


def test_branches_hold_their_own_commits(hub):
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/a")
    v1 = api.upload_file(path_or_fileobj=b"v1", path_in_repo="x.txt", repo_id="alice/a").oid
    api.create_branch("alice/a", branch="dev")
    dev = api.upload_file(path_or_fileobj=b"v2", path_in_repo="x.txt", repo_id="alice/a", revision="dev").oid

    assert hub.state.repos["alice/a"].sha == v1  # main did not move
    assert open(hf_hub_download("alice/a", "x.txt"), "rb").read() == b"v1"
    assert open(hf_hub_download("alice/a", "x.txt", revision="dev"), "rb").read() == b"v2"
    assert open(hf_hub_download("alice/a", "x.txt", revision=v1), "rb").read() == b"v1"
    assert api.model_info("alice/a", revision="dev").sha == dev
    assert {b.name: b.target_commit for b in api.list_repo_refs("alice/a").branches} == {"main": v1, "dev": dev}
    with pytest.raises(HfHubHTTPError) as err:
        api.create_branch("alice/a", branch="dev")
    assert err.value.response.status_code == 409
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/a", "x.txt", revision="nope")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/missing")


def test_file_metadata_headers_match_the_hub(hub):
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/a")
    sha = api.upload_file(path_or_fileobj=b"hello", path_in_repo="x.txt", repo_id="alice/a").oid
    hub.stats.reset()

    meta = get_hf_file_metadata(hf_hub_url("alice/a", "x.txt"))
    assert (meta.etag, meta.commit_hash, meta.size) == (git_blob_oid(b"hello"), sha, 5)
    # no body sent (bytes_sent may count the client's one-off per-process probe answer, a small JSON 404)
    assert hub.stats["head"] == 1 and hub.stats["download"] == 0 and hub.stats.bytes_sent < 500
    ranged = httpx2.get(hf_hub_url("alice/a", "x.txt"), headers={"Range": "bytes=1-"})
    assert (ranged.status_code, ranged.content, ranged.headers["Content-Range"]) == (206, b"ello", "bytes 1-4/5")


def test_tree_listing_pages_and_folders(paged_hub, tmp_path):
    api = HfApi(endpoint=paged_hub.endpoint)
    api.create_repo("alice/a")
    api.upload_folder(repo_id="alice/a", folder_path=make_folder(tmp_path / "f", {
        "a.txt": b"a", "b.txt": b"b", "sub/c.txt": b"c", "sub/deep/d.txt": b"d"}))
    paged_hub.stats.reset()

    assert sorted(api.list_repo_files("alice/a")) == [".gitattributes", "a.txt", "b.txt", "sub/c.txt",
                                                      "sub/deep/d.txt"]
    assert paged_hub.stats["tree"] >= 3
    top = {e.path: type(e).__name__ for e in api.list_repo_tree("alice/a", path_in_repo="sub")}
    assert top == {"sub/c.txt": "RepoFile", "sub/deep": "RepoFolder"}
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree("alice/a", path_in_repo="nowhere"))


def test_a_resync_downloads_nothing(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/a")
    api.upload_folder(repo_id="alice/a", folder_path=make_folder(tmp_path / "f", {"a.bin": b"a" * 10, "b.bin": b"b"}))
    snapshot_download("alice/a")
    assert hub.stats["download"] == 3 and len(hub.stats.downloads) == 3  # .gitattributes, a.bin, b.bin
    hub.stats.reset()

    snapshot_download("alice/a")
    assert hub.stats["download"] == 0 and hub.stats["head"] == 0 and hub.stats["info"] == 1
    assert hub.stats.as_dict()["routes"] == {"info": 1}


# -- faults --------------------------------------------------------------------------------------------------------


def _repo_with_file(hub, content=b"x" * 1000):
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/a")
    api.upload_file(path_or_fileobj=content, path_in_repo="w.safetensors", repo_id="alice/a")
    hub.stats.reset()
    return api


def test_a_5xx_is_retried_with_backoff_then_raised(hub, backoff_sleeps, tmp_path):
    api = _repo_with_file(hub)
    flaky = hub.faults.add(r"alice/a/resolve/.*/w\.safetensors", status=500, times=2, method="HEAD")
    assert open(hf_hub_download("alice/a", "w.safetensors"), "rb").read() == b"x" * 1000
    # The first HEAD is not retried (fast fallback to the cache); with nothing cached the client retries with backoff.
    assert flaky.hits == 2 and hub.stats["head"] == 3 and backoff_sleeps == [1]

    hub.faults.add(route="list", status=503, times=None)
    with pytest.raises(HfHubHTTPError) as err:
        list(api.list_models())
    assert err.value.response.status_code == 503
    assert hub.stats["list"] == 6 and backoff_sleeps[1:] == [1, 2, 4, 8, 8]  # 1 try + 5 retries

    hub.faults.clear()
    backoff_sleeps.clear()
    hub.stats.reset()
    hub.faults.add(route="resolve", status=500, times=None)
    with pytest.raises(LocalEntryNotFoundError):  # not HfHubHTTPError: a failed HEAD falls back to the cache
        hf_hub_download("alice/a", "w.safetensors", cache_dir=tmp_path / "empty-cache")
    assert hub.stats["head"] == 7 and backoff_sleeps == [1, 2, 4, 8, 8]  # 1 quick try, then 1 try + 5 retries


def test_a_429_waits_for_retry_after(hub, backoff_sleeps):
    api = _repo_with_file(hub)
    hub.faults.add(route="list", status=429, retry_after=3)
    assert [m.id for m in api.list_models()] == ["alice/a"]
    assert backoff_sleeps == [4]  # Retry-After + 1 s


def test_a_hanging_request_times_out_in_the_client_while_the_server_keeps_serving(hub, backoff_sleeps,
                                                                                   monkeypatch):
    from huggingface_hub import constants

    api = _repo_with_file(hub)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.2)
    hub.faults.add(r"w\.safetensors", method="GET", hang_s=1, times=None)
    hung = threading.Thread(target=lambda: httpx2.get(hf_hub_url("alice/a", "w.safetensors"), timeout=5))
    hung.start()
    started = time.monotonic()
    assert [m.id for m in api.list_models()] == ["alice/a"]
    assert time.monotonic() - started < 1  # served while another request hangs

    with pytest.raises(httpx2.ReadTimeout):
        hf_hub_download("alice/a", "w.safetensors")  # every GET hangs: 1 try + 5 resumes, then it gives up
    assert backoff_sleeps == [1] * 5
    hub.faults.clear()
    hub.faults.add(r"w\.safetensors", method="GET", hang_s=1, times=1)
    assert open(hf_hub_download("alice/a", "w.safetensors"), "rb").read() == b"x" * 1000  # one hang, then fine
    hung.join()


def test_a_truncated_body_is_never_cached(hub, backoff_sleeps, tmp_path):
    _repo_with_file(hub)
    hub.faults.add(r"w\.safetensors", method="GET", truncate=True, times=None)
    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download("alice/a", "w.safetensors")
    # six half bodies (bytes_sent may also count a small JSON answer, e.g. the client's one-off probe per process)
    assert hub.stats["download"] == 6 and 6 * 500 <= hub.stats.bytes_sent < 6 * 500 + 1000
    blobs = list((tmp_path / "hf-cache").glob("models--alice--a/blobs/*"))
    assert blobs == [] and not list((tmp_path / "hf-cache").glob("models--alice--a/snapshots/*/*"))

    hub.faults.clear()
    hub.faults.add(r"w\.safetensors", method="GET", truncate=True, times=1)
    assert open(hf_hub_download("alice/a", "w.safetensors"), "rb").read() == b"x" * 1000  # restarted, complete



# -- README metadata validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata, complaint", [
    ("tags: [1, 2]", '"tags" must be an array of strings'),
    ("license: 3", '"license" must be a string'),
    ("base_model: [1]", '"base_model" must be a string or an array of strings'),
    ("datasets: {imdb: yes}", '"datasets" must be a string or an array of strings'),
])
def test_model_card_validate_rejects_metadata_the_hub_refuses(hub, metadata, complaint):
    from huggingface_hub import ModelCard

    ModelCard("---\ntags: [taskemb]\nbase_model: [org/a, org/b]\ndatasets: imdb\nlicense: mit\n---\n").validate()
    with pytest.raises(ValueError, match=complaint):
        ModelCard(f"---\n{metadata}\n---\n# card\n").validate()
    assert hub.stats["validate"] == 2
    # (`tags: taskemb` never reaches the server as a string: ModelCard rewrites it as a one-item list.)


@pytest.mark.parametrize("readme, complaint", [
    ("---\n- a\n- b\n---\n", "must be a mapping"),
    ("---\ntags: [a\n---\n", "not valid YAML"),
    ("---\nmodel-index:\n  - name: m\n    results:\n      - task: {type: text-classification}\n---\n",
     "dataset needs"),
    ("---\nmodel-index: {name: m}\n---\n", '"model-index" must be an array'),
])
def test_uploading_an_invalid_readme_raises_and_leaves_the_repo_alone(hub, readme, complaint):
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/a")
    before = hub.state.repos["alice/a"].sha
    with pytest.raises(ValueError, match=complaint):  # the client's own validate-yaml call, before any upload
        api.upload_file(path_or_fileobj=readme.encode(), path_in_repo="README.md", repo_id="alice/a")
    assert hub.state.repos["alice/a"].sha == before and hub.stats["commit"] == 0


def test_a_commit_with_invalid_metadata_is_refused_even_without_client_validation(hub, monkeypatch):
    from huggingface_hub.errors import BadRequestError

    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/a")
    before = hub.state.repos["alice/a"].sha
    monkeypatch.setattr(HfApi, "_validate_yaml", lambda self, content, **kwargs: None)
    with pytest.raises(BadRequestError, match='"tags" must be an array of strings'):
        api.upload_file(path_or_fileobj=b"---\ntags: oops\n---\n", path_in_repo="README.md", repo_id="alice/a")
    assert hub.state.repos["alice/a"].sha == before and hub.stats["commit"] == 1


def test_benchmarks_can_seed_repos_without_http(hub):
    from local_hub import MetadataError

    for i in range(3):
        hub.state.add_repo(f"alice/r{i}", {"README.md": b"---\ntags: [taskemb]\n---\n", "w.safetensors": b"w"})
    hub.state.add_repo("alice/d", {"train.jsonl": b"{}"}, repo_type="dataset")
    with pytest.raises(MetadataError, match="tags"):
        hub.state.add_repo("alice/bad", {"README.md": b"---\ntags: 3\n---\n"})
    assert hub.stats.requests == 0

    api = HfApi(endpoint=hub.endpoint)
    assert [m.id for m in api.list_models(filter="taskemb")] == ["alice/r0", "alice/r1", "alice/r2"]
    assert "alice/bad" not in hub.state.repos and [d.id for d in api.list_datasets()] == ["alice/d"]
    assert open(hf_hub_download("alice/r1", "w.safetensors"), "rb").read() == b"w"


def test_create_repo_exist_ok_returns_the_url_like_the_hub(hub):
    api = HfApi(endpoint=hub.endpoint)
    first = api.create_repo("alice/a")
    assert api.create_repo("alice/a", exist_ok=True) == first == f"{hub.endpoint}/alice/a"
    assert api.create_repo("alice/d", repo_type="dataset").endswith("/datasets/alice/d")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("alice/a")
    assert err.value.response.status_code == 409
