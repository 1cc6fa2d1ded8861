"""The Space against hostile input (issue 21): decoding bombs, oversized or foreign Hub adapters, probes of the
server's folders, the operator's token, server paths in messages and downloads, and the API's optional files.

Each test fails on the code before the fix; after every bad input the server still answers a good query.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the Space needs the [space] extra")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from test_space import FILTERS, LIMITS, _adapter_files, _free_port, _sources, _zip, toy  # noqa: E402,F401

from gradio_client.exceptions import AppError  # noqa: E402

from taskemb_hub.ranking.selector import AutoSourceSelector  # noqa: E402
from taskemb_hub.space import SpaceConfig, UploadLimits, build_app  # noqa: E402
from taskemb_hub.space import _handlers as handlers  # noqa: E402

OPERATOR_TOKEN = "hf_operator_secret_never_sent"
# An absolute path (or file: URL) anywhere in a text; http(s) URLs are allowed.
ABSOLUTE = re.compile(r"(?<![\w.~/:-])/[\w.-]+/|[A-Za-z]:\\|file:/")
COLUMNS = {"text": "text", "text_pair": None, "label": "label"}


def _config(toy, **kwargs) -> SpaceConfig:
    limits = kwargs.pop("limits", LIMITS)
    return SpaceConfig(limits=limits, base_model_paths={toy["base_model"]: toy["tiny_bert"]},
                       work_dir=str(toy["root"] / "answers-hostile"), **kwargs)


def _state(toy) -> handlers.RegistryState:
    return handlers.RegistryState(None, "toy", AutoSourceSelector.from_local(toy["registry"]))


def _one_line_refusal(message: str) -> None:
    assert message.startswith("⚠️") and "\n" not in message and "Traceback" not in message, message


def _no_server_path(text: str, *roots) -> None:
    assert not ABSOLUTE.search(text), text
    for root in (tempfile.gettempdir(), os.getcwd(), str(Path.home()), *map(str, roots)):
        assert root not in text, (root, text)


def _parquet_bomb(path: Path, rows: int = 100_000, cell: int = 1_000_000) -> Path:
    """One dictionary-encoded column repeating a 1 MB string: ~1.5 KB on disk, `rows` MB decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * cell]))
    pq.write_table(pa.table({"text": text, "label": pa.array([0, 1] * (rows // 2))}), path, compression="zstd",
                   compression_level=22)
    return path


# ---- 1. decoded-size limits before anything is materialised ------------------------------------------------
def test_a_parquet_bomb_is_refused_from_its_dictionary_without_decoding_it(tmp_path):
    bomb = _parquet_bomb(tmp_path / "bomb.parquet")
    assert bomb.stat().st_size < 4096  # passes the file-size and row-count checks: 100,000 rows of 1 MB each
    script = textwrap.dedent(f"""
        import pyarrow as pa
        from taskemb_hub.ranking.selector import AutoSourceSelector

        def peak_kb():  # this process's own peak (ru_maxrss would carry pytest's across execve)
            return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))

        from taskemb_hub.space import _handlers as h
        from taskemb_hub.space._uploads import UploadLimits, check_data_file
        check_data_file({str(bomb)!r}, UploadLimits())
        state = h.RegistryState(None, "default", AutoSourceSelector.from_default())
        before = peak_kb()
        answer = h.rank_data(state, h.SpaceConfig(), {str(bomb)!r}, top_k=3)
        print(answer.message)
        growth = peak_kb() - before
        print(f"growth_kb={{growth}} arrow_peak={{pa.default_memory_pool().max_memory()}}")
        """)

    def limit_memory():  # the code before the fix decodes ~100 GB: let it fail fast instead of swapping
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          preexec_fn=limit_memory, cwd=tmp_path)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 2, done.stdout + done.stderr[-2000:]
    assert lines[0].startswith("⚠️ bomb.parquet decodes to more than 256 MB"), lines[0]
    growth_kb, arrow_peak = (int(x.split("=")[1]) for x in lines[1].split())
    assert growth_kb < 100 * 1024 and arrow_peak < 64 << 20, lines[1]


def test_parquet_footers_with_too_many_rows_nested_columns_or_impossible_sizes_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taskemb_hub.space._uploads import UploadError, read_rows

    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"text": [["a", "b"]] * 40, "label": [0, 1] * 20}), nested)
    with pytest.raises(UploadError, match="column 'text' holds list<element: string>, not text or numbers"):
        read_rows(nested, ["text", "label"], UploadLimits())
    declared = tmp_path / "declared.parquet"  # 3 MB of distinct text: the footer's declared size is over the limit
    pq.write_table(pa.table({"text": [f"{i:06d}" * 50 for i in range(10_000)], "label": [0, 1] * 5_000}), declared)
    with pytest.raises(UploadError, match="decodes to more than"):
        read_rows(declared, ["text", "label"], UploadLimits(max_decoded_bytes=1 << 20))
    assert read_rows(declared, ["text", "label"], UploadLimits()).num_rows == 10_000


def test_a_one_line_json_array_is_parsed_only_up_to_the_row_limit(tmp_path, monkeypatch):
    from taskemb_hub.space import _uploads

    path = tmp_path / "rows.json"  # one line: the newline count says 0 rows
    path.write_text(json.dumps([{"text": f"row {i}", "label": i % 2} for i in range(50_000)]))
    limits = UploadLimits(max_rows=1_000)
    _uploads.check_data_file(path, limits)
    parsed = []
    real = _uploads._json_array_records

    def counting(text):
        for record in real(text):
            parsed.append(1)
            yield record

    monkeypatch.setattr(_uploads, "_json_array_records", counting)
    with pytest.raises(_uploads.UploadError, match="holds more than 1,000 rows"):
        _uploads.read_rows(path, ["text", "label"], limits)
    assert len(parsed) <= limits.max_rows + 1
    assert _uploads.read_header(path) == ["text", "label"]  # the header reads the first record only


def test_uploaded_files_are_read_in_memory_and_never_cached_on_disk(toy, monkeypatch, tmp_path):
    import datasets.config

    cache = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    one_label = tmp_path / "one.csv"  # read in full, then refused before tuning
    one_label.write_text("review,stars\n" + "".join(f"the movie was good {i},pos\n" for i in range(40)))
    answer = handlers.rank_data(_state(toy), _config(toy), str(one_label), text_column="review", label_column="stars")
    assert "every row has the same label" in answer.message, answer.message
    task = handlers._task_from_file(str(toy["csv"]), {"text": "review", "text_pair": None, "label": "stars"}, LIMITS)
    assert task.labels == ["neg", "pos"] and sum(map(len, task.splits.values())) == 64
    assert not cache.exists() or not any(cache.rglob("*.arrow"))  # load_dataset("csv") wrote an arrow copy here


def test_a_zip_member_that_compresses_like_a_bomb_is_refused_before_extraction(tmp_path):
    from taskemb_hub.space._uploads import UploadError, extract_adapter_zip

    bomb = tmp_path / "ratio.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("adapter/adapter_config.json", "{}")
        archive.writestr("adapter/adapter_model.safetensors", b"\0" * (4 << 20))  # within the 200 MB total
    with pytest.raises(UploadError, match="times its packed size"):
        extract_adapter_zip(bomb, tmp_path / "out", UploadLimits())
    assert not (tmp_path / "out").exists()


# ---- 2. a Hub dataset id reads max_rows rows, not ten times that ---------------------------------------------
def test_a_hub_split_is_read_up_to_max_rows_plus_a_small_buffer(monkeypatch):
    import datasets

    served = []

    def rows():
        for i in range(100_000):
            served.append(i)
            yield {"text": f"the movie was {'good' if i % 2 else 'bad'} {i}", "label": i % 2}

    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: datasets.IterableDataset.from_generator(rows))
    limits = UploadLimits(max_rows=2_000)
    task, note = handlers._task_from_hub("carol/big", None, "train", {"text": "text", "text_pair": None,
                                                                       "label": "label"}, limits)
    assert sum(map(len, task.splits.values())) == 2_000 and "2,000" in note
    assert len(served) <= limits.max_rows + 1 + 1_000 + 64, len(served)  # a 1,000-row buffer; was 10x max_rows


def test_a_sorted_split_read_in_part_that_misses_classes_is_refused_not_tuned_on_its_first_classes(monkeypatch):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["a", "b", "c", "d"])})

    def sorted_rows():  # 4 classes, 5,000 rows each, one class after another (as dbpedia_14's train split)
        for i in range(20_000):
            yield {"text": f"row {i}", "label": i // 5_000}

    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: datasets.IterableDataset.from_generator(sorted_rows, features=features))
    columns = {"text": "text", "text_pair": None, "label": "label"}
    with pytest.raises(handlers.DataError, match="hold 1 of its 4 classes .* Upload a shuffled sample"):
        handlers._task_from_hub("carol/sorted", None, "train", columns, UploadLimits(max_rows=2_000))
    task, _ = handlers._task_from_hub("carol/sorted", None, "train", columns, UploadLimits(max_rows=30_000))
    assert task.labels == ["a", "b", "c", "d"]  # read whole: every class, with its ClassLabel name


# ---- 3, 5, 6. adapters by Hub id, the operator's token, probes of the server's folders -------------------------
@pytest.fixture(scope="module")
def hub(toy):
    """A local Hub that records each request's Authorization header, with adapters good, foreign and huge."""
    from huggingface_hub import HfApi

    from local_hub import serve_local_hub

    with pytest.MonkeyPatch.context() as monkeypatch, serve_local_hub(monkeypatch, toy["root"] / "hub-hostile") as server:
        monkeypatch.setenv("HF_TOKEN", OPERATOR_TOKEN)  # what an operator's Space has set
        seen = []
        base = server.server.RequestHandlerClass

        class Recording(base):
            def _dispatch(self):
                seen.append((self.command, self.path, self.headers.get("Authorization")))
                return base._dispatch(self)

            do_GET = do_HEAD = do_POST = _dispatch

        server.server.RequestHandlerClass = Recording
        server.seen = seen
        api = HfApi(endpoint=server.endpoint, token="hf_uploader_token")
        files = _adapter_files(toy["adapter"])
        config = json.loads(files["adapter/adapter_config.json"])
        repos = {"alice/sentiment-adapter": config, "mallory/other-base": {**config, "base_model_name_or_path":
                                                                            "someone/other-model"},
                 "mallory/path-exists": {**config, "base_model_name_or_path": str(toy["tiny_bert"])},
                 "mallory/path-missing": {**config, "base_model_name_or_path": str(toy["root"] / "no-such-model")},
                 "mallory/huge": config}
        for repo, cfg in repos.items():
            api.create_repo(repo)
            api.upload_file(path_or_fileobj=json.dumps(cfg).encode(), path_in_repo="adapter_config.json", repo_id=repo)
            api.upload_file(path_or_fileobj=files["adapter/adapter_model.safetensors"] + (
                b" " * 4096 if repo == "mallory/huge" else b""), path_in_repo="adapter_model.safetensors", repo_id=repo)
        api.create_repo("carol/reviews", repo_type="dataset")
        api.upload_file(path_or_fileobj=str(toy["csv"]), path_in_repo="train.csv", repo_id="carol/reviews",
                        repo_type="dataset")
        yield server


def _weights_requested(hub, repo: str) -> bool:
    return any(d[1] == repo and d[3] == "adapter_model.safetensors" for d in hub.stats.downloads)


def test_an_adapter_of_another_base_model_is_refused_before_its_weights_are_requested(toy, hub):
    config = _config(toy, hub_endpoint=hub.endpoint)
    answer = handlers.rank_adapter(_state(toy), config, "mallory/other-base", top_k=3)
    _one_line_refusal(answer.message)
    assert "tuned on 'someone/other-model'" in answer.message
    assert not _weights_requested(hub, "mallory/other-base")


def test_an_oversized_adapter_is_refused_from_the_listing_before_download(toy, hub):
    limits = UploadLimits(**{**LIMITS.__dict__, "max_adapter_bytes": len(_adapter_files(toy["adapter"])[
        "adapter/adapter_model.safetensors"]) + 100})
    answer = handlers.rank_adapter(_state(toy), _config(toy, hub_endpoint=hub.endpoint, limits=limits),
                                   "mallory/huge", top_k=3)
    _one_line_refusal(answer.message)
    assert "adapter_model.safetensors is" in answer.message and "over this Space's limit" in answer.message
    assert not _weights_requested(hub, "mallory/huge")


def test_a_hub_adapter_is_read_anonymously_into_a_temporary_folder_and_leaves_no_cache(toy, hub, monkeypatch):
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    before = set(Path(tempfile.gettempdir()).glob("taskemb-visitor-*"))
    answer = handlers.rank_adapter(_state(toy), _config(toy, hub_endpoint=hub.endpoint), "alice/sentiment-adapter",
                                   top_k=3)
    assert answer.ok and answer.ranking.names[0] == "toy-sentiment", answer.message
    assert not (cache / "models--alice--sentiment-adapter").exists()  # the old path kept up to 200 MB here
    assert set(Path(tempfile.gettempdir()).glob("taskemb-visitor-*")) == before
    missing = handlers.rank_adapter(_state(toy), _config(toy, hub_endpoint=hub.endpoint), "alice/nope", top_k=3)
    _one_line_refusal(missing.message)
    assert "was not found" in missing.message and "token" not in missing.message.lower()


def test_a_visitors_adapter_cannot_probe_which_folders_exist_on_the_server(toy, hub, tmp_path):
    config, state = _config(toy, hub_endpoint=hub.endpoint), _state(toy)
    files = _adapter_files(toy["adapter"])
    adapter_config = json.loads(files["adapter/adapter_config.json"])
    info = json.loads(files["adapter/taskemb_checkpoint.json"])
    messages = {}
    for case, base in [("exists", str(toy["tiny_bert"])), ("missing", str(toy["root"] / "no-such-model")),
                       ("relative", "../" + Path(toy["tiny_bert"]).name)]:
        for where in ("config", "checkpoint info"):
            patched = dict(files)
            if where == "config":
                patched["adapter/adapter_config.json"] = json.dumps({**adapter_config,
                                                                     "base_model_name_or_path": base}).encode()
                patched.pop("adapter/taskemb_checkpoint.json")
            else:
                patched["adapter/taskemb_checkpoint.json"] = json.dumps({**info, "base_model": base}).encode()
            path = _zip(tmp_path / f"{case}-{where.replace(' ', '-')}.zip", patched)
            message = handlers.rank_adapter(state, config, zip_path=str(path), top_k=3).message
            messages[case, where] = message.replace(path.name, "<zip>")
    for repo in ("mallory/path-exists", "mallory/path-missing"):
        messages[repo] = handlers.rank_adapter(state, config, repo, top_k=3).message.replace(repo, "<repo>")
    assert len(set(messages.values())) == 1, messages  # the same answer whether or not the folder exists
    message = next(iter(messages.values()))
    _one_line_refusal(message)
    assert "is not a Hub model id" in message
    _no_server_path(message, toy["root"])
    for repo in ("mallory/path-exists", "mallory/path-missing"):
        assert not _weights_requested(hub, repo)


def test_nothing_a_visitor_triggers_sends_the_operators_token(toy, hub):
    assert os.environ["HF_TOKEN"] == OPERATOR_TOKEN
    config, state = _config(toy, hub_endpoint=hub.endpoint), _state(toy)
    first = len(hub.seen)
    assert handlers.rank_adapter(state, config, "alice/sentiment-adapter", top_k=3).ok
    handlers.rank_adapter(state, config, "alice/nope", top_k=3)
    assert handlers.dataset_info("carol/reviews")["columns"] == ["review", "stars"]
    answer = handlers.rank_data(state, config, dataset_id="carol/reviews", text_column="review",
                                label_column="stars", top_k=3)
    assert answer.ok, answer.message
    from taskemb_hub.space import app as space_app

    # What the app refreshes with (the code before the fix used the CLI's loader, with the operator's token).
    load = space_app.registry_loader("hub", hub.endpoint)
    refreshable = handlers.RegistryState(load, "hub", selector=state.selector)
    handlers.refresh_registry(refreshable)
    refreshable.wait(60)
    assert "token" not in (refreshable.last_error or "").lower()
    requests = hub.seen[first:]
    assert any("/api/models" in path for _, path, _ in requests)  # the refresh listed the Hub
    assert any("/datasets/carol/reviews" in path for _, path, _ in requests)
    sent = [(method, path) for method, path, auth in requests if auth]
    assert not sent, sent  # no Authorization header at all, so never the operator's token


# ---- 4. an unknown registry name costs no vectors ------------------------------------------------------------
def test_an_unknown_name_on_an_index_registry_materialises_no_vector(tmp_path, toy):
    from test_index import _entries

    from taskemb_hub.registries.index import write_index

    write_index(_entries(300, 64), tmp_path / "idx")
    selector = AutoSourceSelector.from_index(tmp_path / "idx")
    state = handlers.RegistryState(None, "index", selector)
    state.derived(selector)

    def loaded() -> int:
        return sum(entry._embedding is not None for entry in selector.entries)

    before = loaded()
    answer = handlers.rank_registry(state, _config(toy), "org/no-such-task", top_k=3)
    _one_line_refusal(answer.message)
    assert "'org/no-such-task' is not an entry of this registry" in answer.message
    assert loaded() == before <= 1  # the old code loaded every entry's vector to compare task names


# ---- 7 and 8, through the served app: server paths, optional files, and the server keeps serving -------------
@pytest.fixture(scope="module")
def served(toy, hub):
    from gradio_client import Client

    app = build_app(config=_config(toy, hub_endpoint=hub.endpoint), state=_state(toy))
    port = _free_port()
    app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
               max_file_size=2 * LIMITS.max_file_bytes)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(toy["root"] / "downloads-hostile"))
    yield client
    app.close()


def test_the_api_lists_the_upload_parameters_as_optional_and_a_call_may_omit_them(served):
    endpoints = served.view_api(print_info=False, return_format="dict")["named_endpoints"]
    optional = {p["parameter_name"]: p["parameter_has_default"] for name in ("/rank_data", "/rank_adapter")
                for p in endpoints[name]["parameters"]}
    assert optional["data_file"] and optional["adapter_zip"], optional
    result = served.predict(dataset_id="carol/reviews", text_column="review", label_column="stars", top_k=3,
                            api_name="/rank_data")
    assert _sources(result)[0] == "toy-sentiment", result[0]
    adapter = served.predict(repo_id="alice/sentiment-adapter", top_k=3, api_name="/rank_adapter")
    assert _sources(adapter)[0] == "toy-sentiment", adapter[0]


def _bad_uploads(root: Path, toy) -> dict[str, tuple[str, Path]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    (root / "header-only.csv").write_text("review,stars\n")
    rows = "".join(f"the movie was good {i},{label}\n" for i, label in enumerate(["pos", 1, 0.5, "neg"] * 10))
    (root / "mixed.csv").write_text("review,stars\n" + rows)
    (root / "object.json").write_text('{"review": "x", "stars": 1}\n[1, 2]\n')
    (root / "broken.jsonl").write_text('{"review": "x", "stars": 1}\n{"review": \n')
    pq.write_table(pa.table({"review": [["a"]] * 40, "stars": [0, 1] * 20}), root / "nested.parquet")
    (root / "damaged.parquet").write_bytes(b"PAR1" + b"\0" * 100 + b"PAR1")
    files = _adapter_files(toy["adapter"])
    return {
        "header only": ("data", root / "header-only.csv"),
        "mixed labels": ("data", root / "mixed.csv"),
        "json not objects": ("data", root / "object.json"),
        "broken jsonl": ("data", root / "broken.jsonl"),
        "nested parquet": ("data", root / "nested.parquet"),
        "damaged parquet": ("data", root / "damaged.parquet"),
        "parquet bomb": ("data", _parquet_bomb(root / "bomb.parquet", rows=4_000)),
        "absolute entry": ("adapter", _zip(root / "abs.zip", {**files, "/tmp/abs/adapter_config.json": b"{}"})),
        "traversal": ("adapter", _zip(root / "evil.zip", {**files, "../../outside.json": b"{}"})),
        "symlink": ("adapter", _zip(root / "link.zip", files, symlinks=("adapter/link.json",))),
        "path base model": ("adapter", _zip(root / "path.zip", {**files, "adapter/taskemb_checkpoint.json":
                                                                json.dumps({"base_model": str(toy["tiny_bert"])}).encode()})),
        "no config": ("adapter", _zip(root / "noconfig.zip", {"adapter/notes.txt": b"hi"})),
    }


def test_no_message_or_download_shows_a_server_path_and_the_server_keeps_serving(served, toy):
    from gradio_client import handle_file

    root = toy["root"] / "gradio-uploads" / "0123456789abcdef"  # where Gradio would keep an upload
    for case, (kind, path) in _bad_uploads(root, toy).items():
        if kind == "data":
            result = served.predict(handle_file(str(path)), "", None, "train", "review", "", "stars", *FILTERS,
                                    api_name="/rank_data")
        else:
            result = served.predict("", handle_file(str(path)), *FILTERS, api_name="/rank_adapter")
        _one_line_refusal(result[0])
        _no_server_path(result[0], toy["root"])
        with pytest.raises(AppError, match="No ranking to download: this session has no answer"):  # no download for a refusal
            served.predict(api_name="/downloads")
    good = served.predict(handle_file(str(toy["csv"])), "", None, "train", "review", "", "stars", *FILTERS,
                          api_name="/rank_data")
    assert _sources(good)[0] == "toy-sentiment", good[0]
    message, table, _, _, _ = good
    csv_path, json_path, embedding_zip = served.predict(api_name="/downloads")
    _no_server_path(message + json.dumps(table), toy["root"])
    _no_server_path(Path(csv_path).read_text() + Path(json_path).read_text(), toy["root"])
    with zipfile.ZipFile(embedding_zip) as archive:
        meta = archive.read("taskemb.json").decode()
    _no_server_path(meta, toy["root"], toy["tiny_bert"])
    assert json.loads(meta)["extra"]["source"] == "reviews.csv"


@pytest.mark.parametrize("text, scrubbed", [
    ("hf://datasets/me/x", "hf://datasets/me/x"), ("https://huggingface.co/a/b", "https://huggingface.co/a/b"),
    ("taskemb-hub-registry", "taskemb-hub-registry"), ("50%/50%", "50%/50%"), ("carol/reviews", "carol/reviews"),
    ("N/A", "N/A"), ("see /tmp/abc/def.csv.", "see <path>."), ("../shared/data/tasks/x", "<path>"),
    ("file:///etc/passwd", "<path>"), ("~/data/x.csv", "<path>"), ("tmpab12cd34", "<path>")])
def test_scrubbing_replaces_paths_and_keeps_urls_ids_and_words(text, scrubbed):
    from taskemb_hub.space._uploads import scrub_paths

    assert scrub_paths(text) == scrubbed
