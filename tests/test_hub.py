"""The Hub as a registry, against a local Hub-compatible server driven by the real `huggingface_hub` client:
publish -> from_hub / index -> rank, the cache, faults, cards, untagged adapters, pushes while tuning."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from taskemb_hub import TuningConfig, tune
from taskemb_hub.cards import INDEX_TAG, TAG
from taskemb_hub.cli import main
from taskemb_hub.errors import RegistryError
from taskemb_hub.publishing import public_base_model, publish
from taskemb_hub.registries.hub import HubRegistry, embedding_from_repo
from taskemb_hub.registries.index import build_index
from taskemb_hub.ranking.selector import AutoSourceSelector


BASE = "test/tiny-bert"  # the Hub id recorded for the tests' local tiny BERT (a local path is never uploaded)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert):
    """Checkpoints of two toy tasks (and a second seed of the sentiment task) for three methods."""
    from conftest import _sentiment_rows
    from taskemb_hub.data import CLASSIFICATION, EXTRACTIVE_QA, TaskData

    import random
    rng = random.Random(5)
    qa_rows = []
    for i in range(40):  # as conftest's qa_task
        city = rng.choice(["paris", "london"])
        context = f"this city is {city} and the river is very fine"
        answerable = i % 4 != 0
        qa_rows.append({"id": str(i), "question": "where was it?" if answerable else "who was born?",
                        "context": context, "answers": {"text": [city], "answer_start": [context.index(city)]}
                        if answerable else {"text": [], "answer_start": []}})
    tasks = {"toy-sentiment": TaskData(name="toy-sentiment", task_type=CLASSIFICATION, labels=["neg", "pos"],
                                       splits={"train": _sentiment_rows(64, 0), "validation": _sentiment_rows(16, 1)}),
             "toy-qa": TaskData(name="toy-qa", task_type=EXTRACTIVE_QA, splits={"train": qa_rows, "validation": qa_rows[:8]})}
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for method in ("bitfit", "lora", "prompt"):
        for name, task in tasks.items():
            cfg = TuningConfig(method=method, base_model=tiny_bert, max_steps=20, eval_examples=0)
            out[method, name] = tune(task, cfg, root / method / name, progress=False)[-1]
        cfg = TuningConfig(method=method, base_model=tiny_bert, max_steps=20, eval_examples=0, seed=1)
        out[method, "target"] = tune(tasks["toy-sentiment"], cfg, root / method / "target", progress=False)[-1]
    return out


def _publish_all(hub, runs, method, owner="alice"):
    for name in ("toy-sentiment", "toy-qa"):
        publish(runs[method, name].path, f"{owner}/{name}-{method}", endpoint=hub.endpoint, base_model_id=BASE,
                token="hf_secret_token_value")


def _target(runs, method):
    return public_base_model(runs[method, "target"].embedding, BASE)


@pytest.mark.parametrize("method", ["bitfit", "lora", "prompt"])
def test_publish_then_from_hub_and_from_index_rank_the_own_task_first(hub, runs, method):
    _publish_all(hub, runs, method)
    selector = AutoSourceSelector.from_hub(base_model=BASE, method=method)
    assert sorted(e.name for e in selector.entries) == [f"alice/toy-qa-{method}", f"alice/toy-sentiment-{method}"]
    assert selector.skipped == [] and selector.sync_report.failed == []
    ranking = selector.rank(_target(runs, method))
    assert ranking.names[0] == f"alice/toy-sentiment-{method}"

    report = build_index("alice/taskemb-index", endpoint=hub.endpoint, base_model=BASE, method=method)
    assert report.entries == 2 and report.committed and report.failed == []
    indexed = AutoSourceSelector.from_index("alice/taskemb-index")
    again = indexed.rank(_target(runs, method))
    assert again.names == ranking.names  # float16 storage does not reorder
    assert [r["score"] for r in again] == pytest.approx([r["score"] for r in ranking], abs=2e-3)


def test_cards_round_trip_through_model_card_and_carry_the_filter_tags(hub, runs):
    from huggingface_hub import ModelCard, hf_hub_download

    _publish_all(hub, runs, "bitfit")
    card = ModelCard.load(hf_hub_download("alice/toy-sentiment-bitfit", "README.md"))
    emb = public_base_model(runs["bitfit", "toy-sentiment"].embedding, BASE)
    assert card.data.base_model == BASE and card.data.library_name == "peft"
    assert {TAG, "taskemb-method:bitfit", f"taskemb-base:{BASE}"} <= set(card.data.tags)
    assert card.data.taskemb["signature_hash"] == emb.signature_hash
    assert card.data.taskemb["recipe"]["max_steps"] == 20
    assert {f"base_model:adapter:{BASE}", f"base_model:{BASE}"} <= set(hub.state.tags("alice/toy-sentiment-bitfit"))


def test_a_card_the_user_wrote_is_merged_not_replaced(hub, runs):
    from huggingface_hub import HfApi, ModelCard, hf_hub_download

    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/mine")
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\ndatasets: [stanfordnlp/sst2]\ntags: [my-tag]\n---\n"
                                    b"# My adapter\n\nHand-written prose.\n", path_in_repo="README.md", repo_id="alice/mine")
    publish(runs["bitfit", "toy-sentiment"].path, "alice/mine", endpoint=hub.endpoint, base_model_id=BASE)
    card = ModelCard.load(hf_hub_download("alice/mine", "README.md"))
    assert card.data.license == "mit" and card.data.datasets == ["stanfordnlp/sst2"]
    assert "Hand-written prose." in card.text and "task embedding" in card.text
    assert {"my-tag", TAG} <= set(card.data.tags)


def test_no_local_path_reaches_the_hub(hub, runs, tiny_bert, tmp_path):
    run = runs["bitfit", "toy-sentiment"]
    publish(run.path, "alice/clean", endpoint=hub.endpoint, base_model_id=BASE)  # a local base model needs its Hub id
    files = hub.state.repo("alice/clean").files
    assert {"adapter_config.json", "adapter_model.safetensors", "taskemb.safetensors", "taskemb.json",
            "taskemb_checkpoint.json", "README.md"} <= set(files)
    needles = [str(tmp_path), tiny_bert, str(run.path), str(Path.cwd()), str(Path.home())]
    for name, content in files.items():
        for needle in needles:
            assert needle.encode() not in content, f"{name} uploads the local path {needle}"


def test_republishing_identical_content_makes_no_new_commit(hub, runs):
    # (safetensors wrote its metadata in hash-map order, different in every process: embedding.py now sorts it)
    first = publish(runs["lora", "toy-qa"].path, "alice/qa", endpoint=hub.endpoint, base_model_id=BASE)
    sha = hub.state.repo("alice/qa").sha
    again = publish(runs["lora", "toy-qa"].path, "alice/qa", endpoint=hub.endpoint, base_model_id=BASE)
    assert first.committed and not again.committed and hub.state.repo("alice/qa").sha == sha


def test_publish_dry_run_prints_card_and_files_and_uploads_nothing(hub, runs, capsys):
    code = main(["publish", str(runs["bitfit", "toy-qa"].path), "--repo-id", "alice/dry", "--dry-run",
                 "--base-model-id", BASE, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and "taskemb.safetensors" in out["files"] and "taskemb-hub" in out["card"]
    assert hub.stats["commit"] == 0 and hub.stats["create"] == 0


def test_cli_publish_never_prints_the_token(hub, runs, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    assert main(["publish", str(runs["bitfit", "toy-qa"].path), "--repo-id", "alice/qa", "--base-model-id", BASE]) == 0
    out = capsys.readouterr()
    assert "hf_secret_token_value" not in out.out + out.err and "published" in out.out


def test_a_malformed_repo_id_is_one_line_and_exit_2(hub, runs, capsys):
    assert main(["publish", str(runs["bitfit", "toy-qa"].path), "--repo-id", "not a repo//id"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "repo id" in err


def test_a_selector_snapshot_is_an_index_never_a_broken_entry(hub, runs):
    _publish_all(hub, runs, "bitfit")
    selector = AutoSourceSelector.from_hub()
    selector.push_to_hub("alice/selector")
    assert INDEX_TAG in hub.state.tags("alice/selector")
    again = AutoSourceSelector.from_hub()
    assert "alice/selector" not in [e.name for e in again.entries] + [n for n, _ in again.skipped]
    loaded = AutoSourceSelector.from_pretrained("alice/selector")
    target = _target(runs, "bitfit")
    assert loaded.rank(target).names == selector.rank(target).names


def test_an_unchanged_resync_downloads_nothing_and_a_change_only_its_own_files(hub, runs):
    _publish_all(hub, runs, "bitfit")
    AutoSourceSelector.from_hub()
    assert hub.stats["download"] == 4  # two repos x (taskemb.safetensors + taskemb.json)
    hub.stats.reset()
    AutoSourceSelector.from_hub()
    assert hub.stats["download"] == 0 and hub.stats["head"] == 0
    publish(runs["lora", "toy-qa"].path, "alice/toy-qa-bitfit", endpoint=hub.endpoint, base_model_id=BASE)
    hub.stats.reset()
    selector = AutoSourceSelector.from_hub()
    assert {d[1] for d in hub.stats.downloads} == {"alice/toy-qa-bitfit"}
    assert {e.embedding.method for e in selector.entries} == {"bitfit", "lora"}


def test_offline_the_last_sync_is_served_from_the_cache(hub, runs, monkeypatch):
    from huggingface_hub import constants

    _publish_all(hub, runs, "bitfit")
    online = AutoSourceSelector.from_hub(base_model=BASE)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.stats.reset()
    offline = AutoSourceSelector.from_hub(base_model=BASE)
    assert hub.stats.requests == 0 and offline.sync_report.source == "cache"
    assert [e.name for e in offline.entries] == [e.name for e in online.entries]


def test_a_listing_failure_is_one_clear_error_then_the_cache_serves(hub, runs, capsys):
    hub.faults.add(status=500, route="list", times=None)
    with pytest.raises(RegistryError, match="HTTP 500"):
        AutoSourceSelector.from_hub()
    assert main(["registry", "sync", "--hub"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    hub.faults.clear()
    _publish_all(hub, runs, "bitfit")
    AutoSourceSelector.from_hub()
    hub.faults.add(status=500, route="list", times=None)
    cached = AutoSourceSelector.from_hub()
    assert len(cached.entries) == 2 and "HTTP 500" in cached.sync_report.note


def _upload(hub, repo, files):
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub.endpoint)
    api.create_repo(repo, exist_ok=True)
    api.create_commit(repo, [CommitOperationAdd(path_in_repo=k, path_or_fileobj=v) for k, v in files.items()],
                      commit_message="test")


def _entry_files(embedding, vector=None, meta_patch=None):
    import io
    import tempfile

    from taskemb_hub.cards import build_card

    with tempfile.TemporaryDirectory() as folder:
        embedding.save(folder)
        if vector is not None:
            save_file({"embedding": vector}, str(Path(folder) / "taskemb.safetensors"))
        meta = json.loads((Path(folder) / "taskemb.json").read_text())
        meta.update(meta_patch or {})
        return {"taskemb.safetensors": (Path(folder) / "taskemb.safetensors").read_bytes(),
                "taskemb.json": json.dumps(meta).encode(), "README.md": str(build_card(embedding)).encode()}


class _QuickSleep:
    """The client's `time` module with its backoff sleeps shortened (1+2+4+8+8 s per failing file otherwise)."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    def sleep(self, seconds):
        self._module.sleep(min(seconds, 0.05))


def test_faults_in_the_middle_of_a_sync_are_reported_and_the_next_sync_works(hub, runs, monkeypatch):
    import time

    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    monkeypatch.setattr(_http, "time", _QuickSleep(time))
    good = public_base_model(runs["bitfit", "toy-sentiment"].embedding, BASE)
    for name in ("good", "err500", "rate", "hang", "trunc"):
        _upload(hub, f"alice/{name}", _entry_files(good))
    _upload(hub, "alice/wronglen", _entry_files(good, vector=torch.ones(good.dim + 3)))
    _upload(hub, "alice/nan", _entry_files(good, vector=torch.full((good.dim,), float("nan"))))
    _upload(hub, "alice/intvec", _entry_files(good, vector=torch.ones(good.dim, dtype=torch.int32)))
    other = public_base_model(runs["bitfit", "toy-sentiment"].embedding, "other/model")
    files = _entry_files(other)
    files["README.md"] = _entry_files(good)["README.md"]  # the card claims BASE, the embedding says otherwise
    _upload(hub, "alice/wrongbase", files)
    big = _entry_files(good, vector=torch.zeros(300_000), meta_patch={"dim": 300_000})
    _upload(hub, "alice/huge", big)

    hub.faults.add(r"alice/err500/resolve/.*/taskemb\.safetensors", status=500, times=None)
    hub.faults.add(r"alice/rate/resolve/.*/taskemb\.safetensors", status=429, retry_after=1, times=1)
    hub.faults.add(r"alice/hang/resolve/", hang_s=6, times=None)
    hub.faults.add(r"alice/trunc/resolve/.*/taskemb\.safetensors", truncate=True, method="GET", times=None)
    registry = HubRegistry(base_model=BASE, timeout=1, deadline=30, max_file_bytes=1_000_000)
    entries = registry.entries()
    names = {e.name for e in entries}
    reasons = dict(registry.skipped)
    assert names == {"alice/good", "alice/rate"}  # the 429 was retried after Retry-After
    assert "HTTP 500" in reasons["alice/err500"]
    assert "timed out" in reasons["alice/hang"] or "deadline" in reasons["alice/hang"]
    assert "truncated" in reasons["alice/trunc"]
    assert "does not match its signature" in reasons["alice/wronglen"]
    assert "NaN" in reasons["alice/nan"]
    assert "int32" in reasons["alice/intvec"].lower() or "I32" in reasons["alice/intvec"]
    assert "wrong base model" in reasons["alice/wrongbase"]
    assert "over the limit" in reasons["alice/huge"]
    # the ranking of the good entries is not broken by any of them
    # (a target other than `good` itself: entries with its very vector are the target and are left out)
    assert sorted(AutoSourceSelector(entries).rank(_target(runs, "bitfit")).names) == ["alice/good", "alice/rate"]
    # no broken file in the cache: every cached file is complete
    cache = Path(constants.HF_HUB_CACHE)
    assert not list(cache.rglob("*.incomplete"))
    hub.faults.clear()
    again = HubRegistry(base_model=BASE, timeout=5, max_file_bytes=1_000_000).entries()
    assert {"alice/good", "alice/rate", "alice/err500", "alice/hang", "alice/trunc"} <= {e.name for e in again}


def test_untagged_adapters_of_the_base_model_are_found_and_ranked_others_are_not(hub, runs):
    sentiment = runs["lora", "toy-sentiment"].path

    def adapter_files(base):
        config = json.loads((sentiment / "adapter_config.json").read_text()) | {"base_model_name_or_path": base}
        card = f"---\nbase_model: {base}\nlibrary_name: peft\n---\n# someone's LoRA\n".encode()
        return {"adapter_config.json": json.dumps(config).encode(), "README.md": card,
                "adapter_model.safetensors": (sentiment / "adapter_model.safetensors").read_bytes()}

    _upload(hub, "carol/plain-lora", adapter_files(BASE))
    _upload(hub, "carol/other-base-lora", adapter_files("other/model"))
    _upload(hub, "carol/pickle-only", {"adapter_config.json": b"{}", "adapter_model.bin": b"\x80\x04.",
                                       "README.md": f"---\nbase_model: {BASE}\nlibrary_name: peft\n---\n".encode()})
    _publish_all(hub, runs, "lora")
    selector = AutoSourceSelector.from_hub(base_model=BASE, include_untagged=True)
    names = [e.name for e in selector.entries]
    assert "carol/plain-lora" in names and "carol/other-base-lora" not in names
    assert "pickle" in dict(selector.skipped)["carol/pickle-only"]
    ranking = selector.rank(_target(runs, "lora"))
    assert ranking.names.index("carol/plain-lora") < ranking.names.index("alice/toy-qa-lora")
    tagged_only = AutoSourceSelector.from_hub(base_model=BASE)
    assert "carol/plain-lora" not in [e.name for e in tagged_only.entries]


def test_embedding_from_repo_names_what_is_wrong(hub, runs):
    from taskemb_hub.errors import AdapterError

    _publish_all(hub, runs, "bitfit")
    emb = embedding_from_repo("alice/toy-qa-bitfit", base_model=BASE)
    assert emb.task == "toy-qa"
    with pytest.raises(RegistryError, match="not found"):
        embedding_from_repo("alice/missing")
    with pytest.raises(AdapterError, match="wrong base model"):
        embedding_from_repo("alice/toy-qa-bitfit", base_model="other/model")
    with pytest.raises(RegistryError, match="repo id"):
        embedding_from_repo("not a repo id")


def test_index_build_is_incremental_and_pushes_one_commit_only_on_change(hub, runs, capsys):
    _publish_all(hub, runs, "bitfit")
    assert main(["index", "build", "--repo-id", "alice/idx", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["entries"] == 2 and first["fetched"] == 2 and first["committed"]
    hub.stats.reset()
    assert main(["index", "build", "--repo-id", "alice/idx", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["reused"] == 2 and second["fetched"] == 0 and not second["committed"]
    assert not [d for d in hub.stats.downloads if d[0] == "model"]
    publish(runs["bitfit", "target"].path, "alice/toy-sentiment-bitfit", endpoint=hub.endpoint, base_model_id=BASE)
    assert main(["index", "build", "--repo-id", "alice/idx", "--json"]) == 0
    third = json.loads(capsys.readouterr().out)
    assert third["reused"] == 1 and third["fetched"] == 1 and third["committed"]
    assert main(["rank", "--registry", "index:alice/idx", "--target", "toy-qa", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in ranked["ranking"]] == ["alice/toy-sentiment-bitfit"]


def test_tune_pushes_each_checkpoint_to_a_branch_and_the_last_to_main(hub, tiny_bert, sentiment_task, tmp_path):
    cfg = TuningConfig(method="bitfit", base_model=tiny_bert, max_steps=4, save_steps=[2, 4], eval_examples=0,
                       push_to_hub="alice/pushed", hub_base_model_id=BASE)
    tune(sentiment_task, cfg, tmp_path / "run", progress=False)
    repo = hub.state.repo("alice/pushed")
    assert {"main", "step-2", "step-4"} <= set(repo.branches)
    step = lambda rev: json.loads(repo.resolve(rev).files["taskemb.json"])["step"]
    assert step("step-2") == 2 and step("step-4") == 4 and step("main") == 4
    with pytest.raises(RegistryError, match="repo id"):
        TuningConfig(push_to_hub="no good id//")


def test_from_hub_with_an_index_reads_only_the_repos_newer_than_it(hub, runs):
    _publish_all(hub, runs, "bitfit")
    build_index("alice/idx", endpoint=hub.endpoint)
    publish(runs["bitfit", "target"].path, "bob/newer", endpoint=hub.endpoint, base_model_id=BASE)
    hub.stats.reset()
    selector = AutoSourceSelector.from_hub(index="alice/idx")
    assert sorted(e.name for e in selector.entries) == ["alice/toy-qa-bitfit", "alice/toy-sentiment-bitfit", "bob/newer"]
    assert {d[1] for d in hub.stats.downloads if d[0] == "model"} == {"bob/newer"}
    assert selector.sync_report.reused == 2 and selector.sync_report.fetched == 1


def test_a_server_that_is_down_is_one_clear_error(monkeypatch, tmp_path, capsys):
    import socket

    from huggingface_hub import constants

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    import time

    from huggingface_hub.utils import _http
    monkeypatch.setattr(_http, "time", _QuickSleep(time))
    with pytest.raises(RegistryError, match="cannot connect|Cannot list"):
        AutoSourceSelector.from_hub()
    assert main(["rank", "--registry", "hub", "--target", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_an_unreadable_metadata_file_is_reported_with_its_reason(hub, runs):
    good = public_base_model(runs["bitfit", "toy-sentiment"].embedding, BASE)
    files = _entry_files(good)
    _upload(hub, "alice/good", files)
    _upload(hub, "alice/badjson", files | {"taskemb.json": b"{not json"})
    _upload(hub, "alice/nosig", files | {"taskemb.json": json.dumps({"task": "x", "method": "bitfit"}).encode()})
    selector = AutoSourceSelector.from_hub()
    reasons = dict(selector.skipped)
    assert [e.name for e in selector.entries] == ["alice/good"]
    assert "not valid JSON" in reasons["alice/badjson"] and "no signature" in reasons["alice/nosig"]


def test_a_failed_push_never_stops_training(hub, tiny_bert, sentiment_task, tmp_path):
    hub.faults.add(status=403, route="create", times=None)
    cfg = TuningConfig(method="bitfit", base_model=tiny_bert, max_steps=4, save_steps=[2, 4], eval_examples=0,
                       push_to_hub="alice/refused", hub_base_model_id=BASE)
    with pytest.warns(UserWarning, match="Could not push"):
        checkpoints = tune(sentiment_task, cfg, tmp_path / "run", progress=False)
    assert [c.step for c in checkpoints] == [2, 4] and (tmp_path / "run" / "run.json").is_file()
    errors = json.loads((tmp_path / "run" / "push_errors.json").read_text())
    assert [e["revision"] for e in errors] == ["step-2", "step-4", "main"] and "HTTP 403" in errors[0]["reason"]


def test_merging_a_card_keeps_the_users_results_and_is_idempotent(runs):
    from taskemb_hub.cards import build_card

    user = ("---\nlicense: mit\nwidget:\n- text: I read /r/python daily\nmodel-index:\n- name: my-model\n  results:\n"
            "  - task: {type: text-classification}\n    dataset: {name: rte, type: rte}\n"
            "    metrics:\n    - {type: accuracy, value: 0.61}\n---\n# Mine\n\nMy words.\n")
    emb = public_base_model(runs["bitfit", "toy-sentiment"].embedding, BASE)
    once = build_card(emb, existing=user)
    assert build_card(emb, existing=once) == once
    import yaml
    meta = yaml.safe_load(once.split("---", 2)[1])
    assert [m["name"] for m in meta["model-index"]][0] == "my-model"
    assert meta["widget"] == [{"text": "I read /r/python daily"}] and meta["license"] == "mit"
    assert "My words." in once


def test_rank_from_the_hub_reads_only_entries_the_target_can_be_compared_with(hub, runs, capsys, tmp_path):
    _publish_all(hub, runs, "bitfit")
    _publish_all(hub, runs, "lora")
    target = tmp_path / "target"
    _target(runs, "bitfit").save(target)  # the target's embedding names the public base model id
    hub.stats.reset()
    assert main(["rank", "--registry", "hub", "--target", str(target), "--json"]) == 0
    ranked = [row["source"] for row in json.loads(capsys.readouterr().out)["ranking"]]
    assert ranked == ["alice/toy-sentiment-bitfit", "alice/toy-qa-bitfit"]
    downloaded = {repo for _, repo, _, _ in hub.stats.downloads}
    assert downloaded and all(repo.endswith("-bitfit") for repo in downloaded), "LoRA entries were never fetched"
