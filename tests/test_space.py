"""The Space: every endpoint through `gradio_client` against the app served on 127.0.0.1, bad input as
messages (the server keeps serving), a background refresh that never blocks a query, and a real browser.

The registry is three toy tasks tuned on the tiny BERT (seed 1); a target made from one of them
(its data uploaded as a CSV, or its adapter tuned with seed 0) must rank its own task first.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the Space needs the [space] extra")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from conftest import _sentiment_rows  # noqa: E402
from taskemb_hub import TuningConfig, tune  # noqa: E402
from taskemb_hub.base_model import canonical_model_id  # noqa: E402
from taskemb_hub.data import CLASSIFICATION, TaskData  # noqa: E402
from taskemb_hub.embedding import TaskEmbedding  # noqa: E402
from taskemb_hub.registries import RegistryEntry  # noqa: E402
from taskemb_hub.registries.local import LocalRegistry  # noqa: E402
from taskemb_hub.ranking.selector import AutoSourceSelector  # noqa: E402
from taskemb_hub.space import SpaceConfig, UploadLimits, build_app  # noqa: E402
from taskemb_hub.space import _handlers as handlers  # noqa: E402
from taskemb_hub.space._uploads import UploadError, check_data_file, extract_adapter_zip, read_header  # noqa: E402

LIMITS = UploadLimits(max_file_bytes=20_000, min_rows=32, max_rows=5_000)
SERVER_CAP = 2 * LIMITS.max_file_bytes  # what the server itself accepts (see space.launch)
FILTERS = ("any", "any", 3, "cosine")  # base model, method, top-k, similarity


def _city_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        rows.append({"text": f"{rng.choice(['who', 'what', 'where'])} lives in {['paris', 'london'][label]} by the "
                             "river", "label": label})
    return rows


def _write_csv(path: Path, rows: list[dict], labels=("neg", "pos")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "stars"])
        writer.writeheader()
        writer.writerows({"review": r["text"], "stars": labels[r["label"]]} for r in rows)
    return path


def _zip(path: Path, files: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)  # a symbolic link
            archive.writestr(info, "/etc/passwd")
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def _adapter_files(folder: Path) -> dict[str, bytes]:
    return {f"adapter/{p.name}": p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def toy(tiny_bert, tmp_path_factory):
    """A 3-task registry (seed 1), the sentiment task's data as a CSV, and its adapter tuned with seed 0."""
    root = tmp_path_factory.mktemp("space")
    sentiment = _sentiment_rows(80, 0)
    tasks = [
        TaskData(name="toy-sentiment", task_type=CLASSIFICATION, labels=["neg", "pos"],
                 splits={"train": sentiment[:64], "validation": sentiment[64:]}),
        TaskData(name="toy-pair", task_type=CLASSIFICATION, labels=["a", "b"], pair=True,
                 splits={"train": _sentiment_rows(48, 2, pair=True), "validation": _sentiment_rows(8, 3, pair=True)}),
        TaskData(name="toy-city", task_type=CLASSIFICATION, labels=["paris", "london"],
                 splits={"train": _city_rows(64, 4), "validation": _city_rows(16, 5)}),
    ]
    registry = LocalRegistry(root / "registry", create=True)
    for task in tasks:
        checkpoint = tune(task, TuningConfig(base_model=tiny_bert, max_steps=20, max_train_examples=1000,
                                             eval_examples=16, seed=1), root / "runs" / task.name, progress=False)[-1]
        registry.add(checkpoint.path, name=task.name)
    own = tune(tasks[0], TuningConfig(base_model=tiny_bert, max_steps=20, max_train_examples=1000, eval_examples=0,
                                      seed=0), root / "runs" / "own", progress=False)[-1]
    return {"root": root, "registry": registry.path, "csv": _write_csv(root / "reviews.csv", sentiment[:64]),
            "adapter": own.path, "base_model": canonical_model_id(tiny_bert), "tiny_bert": tiny_bert}


def _config(toy, **kwargs) -> SpaceConfig:
    return SpaceConfig(limits=LIMITS, base_model_paths={toy["base_model"]: toy["tiny_bert"]},
                       work_dir=str(toy["root"] / "answers"), **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def hub(toy):
    """A local Hub holding a plain PEFT adapter (no taskemb files) and a repo that is not an adapter."""
    from huggingface_hub import HfApi

    from local_hub import serve_local_hub

    with pytest.MonkeyPatch.context() as monkeypatch, serve_local_hub(monkeypatch, toy["root"] / "hub") as server:
        api = HfApi(endpoint=server.endpoint, token="hf_space_test_token")
        api.create_repo("alice/sentiment-adapter")
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            api.upload_file(path_or_fileobj=str(toy["adapter"] / name), path_in_repo=name,
                            repo_id="alice/sentiment-adapter")
        api.create_repo("carol/reviews", repo_type="dataset")  # the sentiment task's rows as a Hub dataset
        api.upload_file(path_or_fileobj=str(toy["csv"]), path_in_repo="train.csv", repo_id="carol/reviews",
                        repo_type="dataset")
        api.create_repo("bob/just-a-readme")
        api.upload_file(path_or_fileobj=b"# not an adapter\n", path_in_repo="README.md", repo_id="bob/just-a-readme")
        yield server


@pytest.fixture(scope="module")
def served(toy, hub):
    """The app on 127.0.0.1 (registry read from the folder, refreshable), with a gradio_client."""
    from taskemb_hub.space._handlers import RegistryState

    state = RegistryState(lambda: AutoSourceSelector.from_local(toy["registry"]), str(toy["registry"].name))
    app = build_app(config=_config(toy, hub_endpoint=hub.endpoint), state=state)
    port = _free_port()
    app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
               max_file_size=SERVER_CAP)
    url = f"http://127.0.0.1:{port}/"
    client = Client(url, verbose=False, download_files=str(toy["root"] / "downloads"))
    yield {"app": app, "client": client, "url": url, "state": state}
    app.close()


def _table(result) -> list[list]:
    return result[1]["data"]


def _sources(result) -> list[str]:
    return [row[1] for row in _table(result)]


def _rank_data(client, path, text="review", label="stars", dataset_id="", filters=FILTERS):
    return client.predict(handle_file(str(path)) if path else None, dataset_id, None, "train", text, "", label,
                          *filters, api_name="/rank_data")


# ---- the API lists the three ways to ask and the registry endpoints ---------------------------------
def test_the_api_names_every_endpoint(served):
    endpoints = served["client"].view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/rank_data", "/rank_adapter", "/rank_registry", "/registry_status", "/refresh_registry",
                              "/downloads"}
    # an answer carries no file: its downloads are one more call, with no parameter (the session's last answer)
    assert [len(endpoints[name]["returns"]) for name in ("/rank_data", "/rank_adapter", "/rank_registry")] == [5, 5, 5]
    assert endpoints["/downloads"]["parameters"] == []
    assert [r["component"] for r in endpoints["/downloads"]["returns"]] == ["File", "File", "File"]
    names = [p["parameter_name"] for p in endpoints["/rank_data"]["parameters"]]
    assert names == ["data_file", "dataset_id", "dataset_config", "dataset_split", "text_column", "text_pair_column",
                     "label_column", "base_model", "method", "top_k", "similarity", "ranker", "hide_flagged"]
    assert [p["parameter_name"] for p in endpoints["/rank_adapter"]["parameters"]] == [
        "repo_id", "adapter_zip", "base_model", "method", "top_k", "similarity", "ranker", "hide_flagged"]
    assert [p["parameter_name"] for p in endpoints["/rank_registry"]["parameters"]] == [
        "entry", "base_model", "method", "top_k", "similarity", "ranker", "hide_flagged"]


def test_keyword_arguments_as_in_the_readme(served, toy):
    result = served["client"].predict(data_file=handle_file(str(toy["csv"])), text_column="review",
                                      label_column="stars", top_k=2, api_name="/rank_data")
    assert len(_table(result)) == 2 and _sources(result)[0] == "toy-sentiment", result[0]
    adapter = served["client"].predict(repo_id="alice/sentiment-adapter", adapter_zip=None, api_name="/rank_adapter")
    assert _sources(adapter)[0] == "toy-sentiment", adapter[0]
    registry = served["client"].predict(entry="toy-pair", top_k=1, api_name="/rank_registry")
    assert len(_table(registry)) == 1 and _sources(registry)[0] != "toy-pair"


# ---- 1. your data ------------------------------------------------------------------------------------
def _answer_folders(toy) -> set[str]:
    folder = toy["root"] / "answers"  # SpaceConfig.work_dir of the served app
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_uploaded_csv_is_tuned_with_the_registry_recipe_and_ranks_its_own_task_first(served, toy):
    before = _answer_folders(toy)
    result = _rank_data(served["client"], toy["csv"])
    message, table, bar, emb_map, heatmap = result
    assert _answer_folders(toy) == before  # the answer wrote no file: the downloads are written when asked
    csv_path, json_path, embedding_zip = served["client"].predict(api_name="/downloads")
    assert len(_answer_folders(toy) - before) == 1
    assert [Path(p).name for p in (csv_path, json_path, embedding_zip)] == [
        "ranking-reviews.csv", "ranking-reviews.json", "taskemb-reviews.zip"]
    assert "3 sources" in message and "the recipe of the registry's entries" in message, message
    assert _sources(result)[0] == "toy-sentiment"  # the same task tuned with another seed
    assert [row[0] for row in table["data"]] == [1, 2, 3]
    scores = [row[3] for row in table["data"]]
    assert scores == sorted(scores, reverse=True)
    assert table["data"][0][4].startswith("accuracy ") and table["data"][0][5] == 64  # metric, train size
    # figures are data drawn in the browser (native plots), not images rendered on the server
    assert bar["mark"] == "bar" and [r[bar["columns"].index("name")] for r in bar["data"]] == _sources(result)
    assert emb_map["mark"] == "point" and {"x", "y", "kind", "name"} <= set(emb_map["columns"])
    kinds = [r[emb_map["columns"].index("kind")] for r in emb_map["data"]]
    assert kinds.count("target") == 1 and kinds.count("top source") == 3, kinds
    assert heatmap["headers"][1:] == ["▶ reviews", *_sources(result)] and len(heatmap["data"]) == 4
    assert all(cell.startswith("background-color: #") for row in heatmap["metadata"]["styling"] for cell in row[1:])
    with open(csv_path, newline="", encoding="utf-8") as handle:
        downloaded = list(csv.DictReader(handle))
    assert [r["source"] for r in downloaded] == _sources(result)
    payload = json.loads(Path(json_path).read_text())
    assert payload["target"] == "reviews" and [r["source"] for r in payload["ranking"]] == _sources(result)
    assert all(f"⚠️ {w}" in message for w in payload["warnings"])  # the ranking's warnings reach the page
    with zipfile.ZipFile(embedding_zip) as archive, archive.open("taskemb.json") as meta:
        assert sorted(archive.namelist()) == ["taskemb.json", "taskemb.safetensors"]
        recorded = json.load(meta)
    assert recorded["extra"]["source"] == "reviews.csv"  # the visitor's file name, never a server path
    assert recorded["extra"]["recipe"]["max_steps"] == 20  # the registry's recipe, not the CLI's default


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_jsonl_and_parquet_files_rank_like_the_csv(toy, tmp_path, suffix):
    import pandas as pd

    frame = pd.read_csv(toy["csv"])
    path = tmp_path / f"reviews.{suffix}"
    frame.to_json(path, orient="records", lines=True) if suffix == "jsonl" else frame.to_parquet(path)
    state = handlers.RegistryState(None, "toy", AutoSourceSelector.from_local(toy["registry"]))
    answer = handlers.rank_data(state, _config(toy), str(path), text_column="review", label_column="stars", top_k=3)
    assert answer.ok and answer.ranking.names[0] == "toy-sentiment", answer.message


def test_one_tuning_runs_at_a_time_and_the_next_waits_in_the_queue_with_its_position(served, toy, monkeypatch):
    from gradio_client.utils import Status

    real, spans = handlers._target_from_data(), []

    def recording(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spans.append((started, time.perf_counter()))

    monkeypatch.setattr(handlers, "_target_from_data", lambda: recording)
    # The first tuning is held at its first optimizer step (its bar open) until the test has seen the other job
    # wait in the queue and the live bar: what is observed does not depend on how fast the machine tunes.
    import accelerate

    tuning, release = threading.Event(), threading.Event()
    backward = accelerate.Accelerator.backward

    def held_backward(self, loss, **kwargs):
        if not tuning.is_set():
            tuning.set()
            release.wait(300)
        return backward(self, loss, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "backward", held_backward)
    client = served["client"]
    jobs = [client.submit(handle_file(str(toy["csv"])), "", None, "train", "review", "", "stars", *FILTERS,
                          api_name="/rank_data") for _ in range(2)]
    positions, progress = set(), set()
    try:
        while not all(job.done() for job in jobs):
            for job in jobs:
                status = job.status()
                if status.code == Status.IN_QUEUE and status.rank is not None:
                    positions.add(status.rank)
                progress |= {p.desc or "" for p in status.progress_data or []}
            if tuning.is_set() and positions and any(d.startswith("tune reviews (bitfit)") for d in progress):
                release.set()  # both seen: let the first tuning go on
            time.sleep(0.05)  # between polls of the statuses: what is seen no longer depends on it
    finally:
        release.set()
    assert [_sources(job.result())[0] for job in jobs] == ["toy-sentiment", "toy-sentiment"]
    (_, first_end), (second_start, _) = sorted(spans)
    assert first_end <= second_start  # never two tunings at once
    assert positions, "the waiting job never reported its place in the queue"
    assert any(desc.startswith("tune reviews (bitfit)") for desc in progress), progress  # the live tuning bar


def test_hub_dataset_id_is_loaded_with_datasets_and_ranks_its_own_task_first(served):
    info = handlers.dataset_info("carol/reviews")
    assert info == {"configs": ["default"], "splits": ["train"], "columns": ["review", "stars"]}
    result = _rank_data(served["client"], None, dataset_id="carol/reviews")
    assert _sources(result)[0] == "toy-sentiment", result[0]
    assert "**reviews**" in result[0]
    missing = _rank_data(served["client"], None, dataset_id="carol/no-such-dataset")
    assert missing[0].startswith("⚠️ Could not load split 'train' of Hub dataset 'carol/no-such-dataset'"), missing[0]


# ---- 2. your adapter ---------------------------------------------------------------------------------
def test_adapter_zip_ranks_its_own_task_first(served, toy):
    path = _zip(toy["root"] / "own-adapter.zip", _adapter_files(toy["adapter"]))
    result = served["client"].predict("", handle_file(str(path)), *FILTERS, api_name="/rank_adapter")
    assert _sources(result)[0] == "toy-sentiment", result[0]
    assert "toy-sentiment" in result[0]


def test_adapter_from_a_hub_repo_ranks_its_own_task_first(served):
    result = served["client"].predict("alice/sentiment-adapter", None, *FILTERS, api_name="/rank_adapter")
    assert _sources(result)[0] == "toy-sentiment", result[0]
    assert "alice/sentiment-adapter" in result[0]


# ---- 3. a registry task ------------------------------------------------------------------------------
def test_registry_task_ranks_the_other_entries(served):
    result = served["client"].predict("toy-pair", *FILTERS, api_name="/rank_registry")
    assert sorted(_sources(result)) == ["toy-city", "toy-sentiment"]  # leave-one-out
    assert "1 entry of the same task left out" in result[0]
    centered = served["client"].predict("toy-pair", "any", "any", 1, "centered", api_name="/rank_registry")
    assert len(_table(centered)) == 1 and "centered" in centered[0]


def test_registry_status_lists_entries_and_signatures(served, toy):
    text, table = served["client"].predict(api_name="/registry_status")
    assert "**3 entries** in 1 signature group(s)" in text and "last sync" in text
    [[signature, count, method, base, dim]] = table["data"]
    assert (count, method, base) == (3, "bitfit", toy["base_model"]) and dim > 0


# ---- bad input: a message on the page, and the server keeps serving ----------------------------------
def _bad_files(root: Path) -> dict[str, tuple[Path, str]]:
    rows = _sentiment_rows(40, 9)
    big = _write_csv(root / "big.csv", _sentiment_rows(700, 10))
    assert LIMITS.max_file_bytes < big.stat().st_size < SERVER_CAP
    latin = root / "latin1.csv"
    latin.write_bytes("review,stars\n".encode() + "".join(f"très {r['text']},pos\n" for r in rows).encode("latin-1"))
    (root / "empty.csv").write_bytes(b"")
    return {
        "empty file": (root / "empty.csv", "empty.csv is empty"),
        "three rows": (_write_csv(root / "three.csv", rows[:3]), "has 3 labelled row(s); at least 32"),
        "one label": (_write_csv(root / "one.csv", [{**r, "label": 1} for r in rows]), "every row has the same label"),
        "not UTF-8": (latin, "latin1.csv is not UTF-8"),
        "over the Space's limit": (big, "over this Space's limit of 20,000 bytes"),
    }


@pytest.mark.parametrize("case", ["empty file", "three rows", "one label", "not UTF-8", "over the Space's limit"])
def test_bad_data_files_get_a_message(served, toy, case):
    path, expected = _bad_files(toy["root"])[case]
    result = _rank_data(served["client"], path)
    assert result[0].startswith("⚠️") and expected in result[0], result[0]
    assert _table(result) == [] and len(result) == 5
    with pytest.raises(AppError, match="No ranking to download: this session has no answer"):  # not the files of an earlier answer either
        served["client"].predict(api_name="/downloads")


def test_missing_column_and_bad_dataset_id_get_a_message(served, toy):
    missing = _rank_data(served["client"], toy["csv"], text="body")
    assert "text column 'body' not found; the columns are ['review', 'stars']" in missing[0]
    for bad_id in ("../../etc", "/etc/passwd", "https://example.com/data.csv"):
        result = _rank_data(served["client"], None, dataset_id=bad_id)
        shown = "<path>" if bad_id.startswith(("/", "..")) else bad_id  # no path is ever echoed (issue 21)
        assert f"{shown!r} is not a Hub dataset id" in result[0]


def test_bad_adapters_get_a_message(served, toy):
    root, client = toy["root"], served["client"]
    files = _adapter_files(toy["adapter"])
    config = json.loads(files["adapter/adapter_config.json"])
    # A plain peft adapter (no taskemb files) whose config names another base model.
    other_base = {"adapter/adapter_model.safetensors": files["adapter/adapter_model.safetensors"],
                  "adapter/adapter_config.json": json.dumps({**config, "base_model_name_or_path":
                                                             "someone/other-model"}).encode()}
    cases = {
        "traversal": (_zip(root / "evil.zip", {**files, "../../outside.json": b"{}"}), "points outside the folder"),
        "absolute": (_zip(root / "abs.zip", {"/tmp/abs.json": b"{}"}), "points outside the folder"),
        "symlink": (_zip(root / "link.zip", files, symlinks=("adapter/link.json",)), "is a symbolic link"),
        "pickle": (_zip(root / "pickle.zip", {**files, "adapter/adapter_model.bin": b"\x80\x04K\x01."}),
                   "is a pickle-format file"),
        "no config": (_zip(root / "noconfig.zip", {"adapter/notes.txt": b"hi"}), "holds no adapter_config.json"),
        "other base model": (_zip(root / "other.zip", other_base), "tuned on 'someone/other-model'"),
        "not a zip": (_copy(toy["csv"], root / "reviews.zip"), "reviews.zip is not a zip file"),
    }
    for case, (path, expected) in cases.items():
        result = client.predict("", handle_file(str(path)), *FILTERS, api_name="/rank_adapter")
        assert result[0].startswith("⚠️") and expected in result[0], (case, result[0])
        assert str(root) not in result[0]  # the server's folders are never shown
    assert not (root / "outside.json").exists() and not Path("/tmp/abs.json").exists()
    for repo, expected in [("alice/does-not-exist", "was not found"), ("bob/just-a-readme", "not usable"),
                           ("not a repo id", "is not a Hub repo id")]:
        result = client.predict(repo, None, *FILTERS, api_name="/rank_adapter")
        assert result[0].startswith("⚠️") and expected in result[0], (repo, result[0])
    both = client.predict("alice/sentiment-adapter", handle_file(str(cases["pickle"][0])), *FILTERS,
                          api_name="/rank_adapter")
    assert "either a Hub repo id" in both[0]


def test_bad_registry_queries_get_a_message(served):
    assert "'nope' is not an entry of this registry" in served["client"].predict("nope", *FILTERS,
                                                                                 api_name="/rank_registry")[0]
    with pytest.raises(Exception, match="less than minimum value 1"):  # the slider's own bounds, checked by gradio
        served["client"].predict("toy-pair", "any", "any", 0, "cosine", api_name="/rank_registry")
    assert _sources(served["client"].predict("toy-pair", *FILTERS, api_name="/rank_registry"))


def _own_client(served, toy, name: str) -> Client:
    """A gradio_client of its own: a session of its own on the server."""
    return Client(served["url"], verbose=False, download_files=str(toy["root"] / name))


def test_a_refusal_after_an_answer_leaves_nothing_to_download(served, toy):
    client = _own_client(served, toy, "downloads-refusal")
    assert _sources(client.predict("toy-pair", *FILTERS, api_name="/rank_registry"))
    assert json.loads(Path(client.predict(api_name="/downloads")[1]).read_text())["target"] == "toy-pair"
    refused = client.predict("nope", *FILTERS, api_name="/rank_registry")
    assert refused[0].startswith("⚠️")
    with pytest.raises(AppError, match="No ranking to download: this session has no answer"):  # not toy-pair's files under the refusal
        client.predict(api_name="/downloads")


def test_each_session_downloads_its_own_last_answer(served, toy):
    first, second = _own_client(served, toy, "downloads-a"), _own_client(served, toy, "downloads-b")
    first.predict("toy-pair", *FILTERS, api_name="/rank_registry")
    with pytest.raises(AppError, match="No ranking to download: this session has no answer"):  # the other session's answer is not its own
        second.predict(api_name="/downloads")
    second.predict("toy-city", *FILTERS, api_name="/rank_registry")
    targets = [json.loads(Path(c.predict(api_name="/downloads")[1]).read_text())["target"] for c in (first, second)]
    assert targets == ["toy-pair", "toy-city"]


def test_asking_on_the_page_forgets_the_previous_answer_at_the_click(toy):
    """While a new question waits or tunes, Prepare downloads must not write the previous answer's files: each ask
    button first empties the file boxes and the session's answer (unqueued), and only then runs its question, chained
    (two listeners of one click would race, and a late clearing would erase the new answer)."""
    app = build_app(config=_config(toy), state=handlers.RegistryState(
        lambda: AutoSourceSelector.from_local(toy["registry"]), "toy"))
    config = app.get_config_file()
    by_id = {c["id"]: c for c in config["components"]}
    dependencies = {d["id"]: d for d in config["dependencies"]}
    prepare = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "prepare-downloads")
    [downloads] = [d for d in dependencies.values() if d["targets"][0][0] == prepare]
    answer_state, file_boxes = downloads["inputs"][0], set(downloads["outputs"])
    assert by_id[answer_state]["type"] == "state" and len(file_boxes) == 3
    asks = [d for d in dependencies.values() if d.get("api_name") in ("rank_data", "rank_adapter", "rank_registry")]
    assert len(asks) == 3 and all(answer_state in d["outputs"] for d in asks)
    for ask in asks:
        assert ask["targets"][0][1] == "then"  # runs after the clearing, never beside it
        clear = dependencies[ask["trigger_after"]]
        assert clear["targets"][0][1] == "click" and not clear["queue"]
        assert set(clear["outputs"]) == file_boxes | {answer_state}
    app.close()


def test_method_filter_without_entries_gets_a_message(served, toy):
    result = _rank_data(served["client"], toy["csv"], filters=("any", "lora", 3, "cosine"))
    assert "has no entry with base model 'any' and method 'lora'" in result[0]


def test_upload_over_the_server_cap_is_refused_and_the_server_keeps_serving(served, toy):
    huge = _write_csv(toy["root"] / "huge.csv", _sentiment_rows(3000, 11))
    assert huge.stat().st_size > SERVER_CAP
    with pytest.raises(Exception, match="(?i)too large|exceed|size"):
        _rank_data(served["client"], huge)
    assert _sources(served["client"].predict("toy-pair", *FILTERS, api_name="/rank_registry"))


def test_an_unexpected_exception_is_logged_and_shown(served, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("plotting backend exploded")

    monkeypatch.setattr(handlers, "_answer", broken)
    with caplog.at_level(logging.ERROR, logger="taskemb_hub.space"):
        result = served["client"].predict("toy-pair", *FILTERS, api_name="/rank_registry")
    assert result[0].startswith("⚠️ Unexpected error (RuntimeError: plotting backend exploded). It was logged")
    assert any("unexpected error in rank_registry" in r.message and r.exc_info for r in caplog.records)
    monkeypatch.undo()
    assert _sources(served["client"].predict("toy-pair", *FILTERS, api_name="/rank_registry"))


def test_hub_entries_link_to_their_repo_and_dataset_and_local_paths_are_never_shown(toy):
    local = AutoSourceSelector.from_local(toy["registry"])
    entries = []
    for entry in local.entries:
        embedding = TaskEmbedding.load(toy["registry"] / entry.name)
        if entry.name == "toy-city":  # as read from the Hub: location repo@sha, data from a Hub dataset
            embedding.extra["source"] = "carol/cities"
            entries.append(RegistryEntry("alice/toy-city", embedding, "alice/toy-city@" + "0" * 40))
        else:
            entries.append(RegistryEntry(entry.name, embedding, str(toy["registry"] / entry.name)))
    state = handlers.RegistryState(None, "mixed", AutoSourceSelector(entries))
    answer = handlers.rank_registry(state, _config(toy, hub_endpoint="https://hub.example"), "toy-pair", top_k=5)
    by_source = {row[1]: row for row in answer.rows}
    linked = by_source["[alice/toy-city](https://hub.example/alice/toy-city)"]
    assert linked[2] == "[carol/cities](https://hub.example/datasets/carol/cities)"
    assert by_source["toy-sentiment"][2] == "toy-sentiment"  # a local entry: plain names, no server path
    assert str(toy["root"]) not in json.dumps(answer.rows) + Path(answer.downloads.write(_config(toy))[0]).read_text()


# ---- registry refresh: in the background, queries never wait ------------------------------------------
def test_refresh_builds_a_new_registry_in_the_background_while_queries_use_the_old_one(toy):
    release = threading.Event()
    loads = []

    def slow_load():
        loads.append(time.time())
        if len(loads) > 1:  # the refresh, not the first load
            assert release.wait(30)
            extra = TaskEmbedding.load(toy["registry"] / "toy-city")
            extra.task = "toy-city-copy"
            return AutoSourceSelector(AutoSourceSelector.from_local(toy["registry"]).entries
                                      + [RegistryEntry("toy-city-copy", extra, "memory")])
        return AutoSourceSelector.from_local(toy["registry"])

    state = handlers.RegistryState(slow_load, "slow")
    config = _config(toy)
    assert "Refresh started in the background" in handlers.refresh_registry(state)
    assert "already running" in handlers.refresh_registry(state)
    started = time.perf_counter()
    answer = handlers.rank_registry(state, config, "toy-pair", top_k=5)
    assert answer.ok and time.perf_counter() - started < 10
    assert sorted(r["source"] for r in answer.ranking.rows) == ["toy-city", "toy-sentiment"]  # the old registry
    assert "A refresh is running" in handlers.registry_status(state)[0]
    release.set()
    state.wait(30)
    status, rows = handlers.registry_status(state)
    assert "**4 entries**" in status and rows[0][1] == 4 and "refresh is running" not in status
    assert "toy-city-copy" in [r["source"] for r in handlers.rank_registry(state, config, "toy-pair", top_k=5).ranking]


def test_a_failed_refresh_keeps_serving_the_old_registry(toy):
    calls = []

    def load():
        calls.append(1)
        if len(calls) > 1:
            raise OSError("Hub unreachable")
        return AutoSourceSelector.from_local(toy["registry"])

    state = handlers.RegistryState(load, "flaky")
    state.refresh()
    state.wait(30)
    status, _ = handlers.registry_status(state)
    assert "**3 entries**" in status and "The last refresh failed (OSError: Hub unreachable)" in status


def test_the_registry_can_refresh_itself_on_a_timer(toy):
    loads = []
    third = threading.Event()  # set by the third load: the test waits for it, not for the clock

    def load():
        loads.append(time.time())
        if len(loads) >= 3:
            third.set()
        return AutoSourceSelector.from_local(toy["registry"])

    state = handlers.RegistryState(load, "timer")
    stop = state.refresh_every(0.2)
    third.wait(30)
    stop.set()
    assert len(loads) >= 3 and "**3 entries**" in handlers.registry_status(state)[0]


def test_refresh_endpoint_through_the_client(toy):
    folder = toy["root"] / "refreshable"
    shutil.copytree(toy["registry"], folder)
    app = build_app(registry=str(folder), config=_config(toy))
    port = _free_port()
    app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        shutil.copytree(folder / "toy-city", folder / "toy-city-2")
        assert "Refresh started" in client.predict(api_name="/refresh_registry")
        app.space_state.wait(30)
        assert "**4 entries**" in client.predict(api_name="/registry_status")[0]
    finally:
        app.close()


# ---- upload helpers, without a server --------------------------------------------------------------
def test_headers_are_read_from_every_supported_format(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"review": ["good", "bad"], "stars": [1, 0]})
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    frame.to_json(tmp_path / "a.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "a.parquet")
    for suffix in ("csv", "tsv", "jsonl", "parquet"):
        assert read_header(check_data_file(tmp_path / f"a.{suffix}", LIMITS)) == ["review", "stars"]
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(UploadError, match="unsupported file type '.txt'"):
        check_data_file(tmp_path / "a.txt", LIMITS)


def test_a_zip_bomb_is_refused_before_it_is_written(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("adapter/adapter_config.json", "{}")
        archive.writestr("adapter/adapter_model.safetensors", b"\0" * (3 * 1024 * 1024))
    assert bomb.stat().st_size < 20_000
    with pytest.raises(UploadError, match="unpacks to more than"):
        extract_adapter_zip(bomb, tmp_path / "out", UploadLimits(max_unzipped_bytes=1024 * 1024))
    assert not (tmp_path / "out" / "adapter" / "adapter_model.safetensors").exists()


# ---- a real browser --------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_a_browser_uploads_a_csv_and_reads_the_ranking_from_the_page(served, toy, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) to run it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [test] extra)")
    screenshot = Path(os.environ.get("TASKEMB_SPACE_SCREENSHOT") or tmp_path / "space.png")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            # not "networkidle": a page with session state (the answer's downloads, gr.State) keeps gradio's
            # heartbeat stream open, so its network is never idle; the file input appears once the app has rendered
            page.goto(served["url"], wait_until="load")
            page.wait_for_selector("#data-file input[type=file]", state="attached", timeout=30_000)
            page.set_input_files("#data-file input[type=file]", str(toy["csv"]))
            # The pickers fill from the file's header (review -> text, stars -> label).
            page.wait_for_function("document.querySelector('#message')?.innerText.includes('Columns of the file')",
                                   timeout=30_000)
            page.click("#rank-data")
            page.wait_for_function("document.querySelector('#message')?.innerText.includes('sources')",
                                   timeout=60_000)
            # Gradio's table renders each body row as a div[role=row] of div[role=gridcell] (virtualised).
            rows = page.eval_on_selector_all(
                "#ranking .virtual-row[role=row]",
                "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))")
            files_before = page.inner_text("body").count("ranking-reviews")
            page.click("#prepare-downloads")  # the answer came without files: they are written now
            page.wait_for_function("document.body.innerText.includes('taskemb-reviews')", timeout=30_000)
            shown = page.inner_text("body")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert [r[0] for r in rows] == ["1", "2", "3"], rows  # rank, source, dataset, score, metric, size, step, method
    assert rows[0][1] == "toy-sentiment" and rows[0][7] == "bitfit", rows
    scores = [float(r[3]) for r in rows]
    assert scores == sorted(scores, reverse=True) and rows[0][4].startswith("accuracy"), rows
    assert files_before == 0 and shown.count("ranking-reviews") == 2, shown[-600:]  # CSV and JSON (stem, suffix apart)
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


# ---- launching and documentation -------------------------------------------------------------
def test_cli_space_with_a_missing_registry_exits_2_with_the_reason(capsys, tmp_path):
    from taskemb_hub.cli import main

    assert main(["space", "--registry", str(tmp_path / "nowhere"), "--port", str(_free_port())]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_readme_states_the_spaces_limits_and_recipe():
    from taskemb_hub.space.app import _recipe_text

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    limits = UploadLimits()
    assert f"{limits.max_file_bytes // 2**20} MB per file, {limits.min_rows}–{limits.max_rows:,} rows" in readme
    packaged = handlers.RegistryState(None, "default", AutoSourceSelector.from_default())
    assert _recipe_text(packaged) == "bitfit, 100 steps, 1,000 rows"
    assert "BitFit, 100 steps, 1,000 rows" in readme


def test_the_ranker_filter_fuses_on_the_packaged_registry_and_explains_itself_elsewhere(toy):
    config = _config(toy)
    packaged = handlers.RegistryState(None, "default", AutoSourceSelector.from_default())
    fused = handlers.rank_registry(packaged, config, "fever", top_k=3)
    assert fused.ranking.ranker == "fusion" and "ranked by fusion, pcr-1 similarity" in fused.message
    alone = handlers.rank_registry(packaged, config, "fever", top_k=3, ranker="peft")
    assert alone.ranking.ranker == "peft" and alone.ranking.names != fused.ranking.names
    toy_state = handlers.RegistryState(None, "toy", AutoSourceSelector.from_local(toy["registry"]))
    refused = handlers.rank_registry(toy_state, config, "toy-pair", top_k=3, ranker="textemb")
    assert refused.message.startswith("⚠️") and "needs a registry with TextEmb vectors" in refused.message
    assert handlers.rank_registry(toy_state, config, "toy-pair", top_k=3).rows  # and the next query is answered
