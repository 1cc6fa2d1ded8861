"""`--executor ray`: the transfer grid and registry builds as Ray tasks, written by the driver only.

One local Ray (2 CPUs) is started for the whole module (about 10 s); the tests that need it skip,
saying so, when the `ray` extra is not installed (`pip install -e ".[test,ray]"`). The grid is 3x3
(three tiny-BERT tasks, each a source and a target: 3 base cells + 6 transfer cells).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from taskemb_hub.cli import main
from taskemb_hub.evaluation.transfer import BASE, TransferConfig, load_transfer_results

import ray_hold
from conftest import _sentiment_rows

TASKS = ["alpha", "beta", "gamma"]
KILLED_CELL = "cell:beta->alpha:seed0"


@pytest.fixture(scope="module")
def hooks(tmp_path_factory) -> Path:
    """Where the workers log which task ran in which process, and where a test holds a cell (tests/ray_hold.py)."""
    return tmp_path_factory.mktemp("ray-hooks")


@pytest.fixture(scope="module")
def ray_cluster(hooks):
    """A local Ray with 2 CPUs, shared by every test of the module; its address for drivers that join it."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e \".[test,ray]\")")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=300 * 1024 * 1024, runtime_env=ray_hold.runtime_env(hooks))
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory) -> Path:
    """Three toy tasks of 192 training rows: a cell (2 epochs, 24 steps) takes about a second, long enough to watch."""
    root = tmp_path_factory.mktemp("ray-grid")
    for i, name in enumerate(TASKS):
        folder = root / "tasks" / name
        folder.mkdir(parents=True)
        (folder / "task.json").write_text(json.dumps({"type": "text-classification", "labels": ["neg", "pos"],
                                                      "name": name}))
        for split, n in (("train", 192), ("test", 16)):
            with gzip.open(folder / f"{split}.jsonl.gz", "wt") as handle:
                handle.write("\n".join(json.dumps(r) for r in _sentiment_rows(n, 10 * i + len(split))))
    return root


def grid_config(tiny_bert, grid_dir) -> TransferConfig:
    # The CLI's recipe (no flags for rows or epochs): a driver started by `taskemb-hub` writes the same rows.
    return TransferConfig(tasks=TASKS, data_dir=str(grid_dir / "tasks"), base_model=tiny_bert)


def kill_when_held(hooks: Path, cell: str) -> threading.Thread:
    """Kill the worker of `cell` while it runs (held mid-run), then let the re-run go on."""
    (hooks / "hold" / cell).touch()

    def kill():
        try:
            os.kill(ray_hold.wait_for_hold(hooks, cell), signal.SIGKILL)
        finally:  # released even when it never held: the grid goes on and the test fails, it does not hang
            (hooks / "hold" / cell).unlink()

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def assert_one_whole_line_per_cell(results: Path, expected: int) -> list[dict]:
    lines = results.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line parses: none is torn
    cells = [(r["source"], r["target"], r["seed"]) for r in rows]
    assert len(cells) == len(set(cells)) == expected, "each cell exactly once"
    return rows


@pytest.fixture(scope="module")
def killed_grid(ray_cluster, hooks, tiny_bert, grid_dir):
    """The 3x3 grid on Ray, with the worker running beta -> alpha killed mid-run; which pids ran which task."""
    from taskemb_hub.executors.ray import run_ray_grid

    cfg = grid_config(tiny_bert, grid_dir)
    results, work = grid_dir / "grid.jsonl", grid_dir / "work"
    killer = kill_when_held(hooks, KILLED_CELL)
    report = run_ray_grid(cfg, results, work, log=lambda _: None)
    killer.join(timeout=5)
    return cfg, results, work, report, ray_hold.runs(hooks)


def test_the_grid_runs_every_cell_once_with_sources_trained_once(killed_grid):
    cfg, results, work, report, seen = killed_grid
    assert (report.submitted, report.finished, report.failed, report.skipped) == (9, 9, [], 0)
    rows = assert_one_whole_line_per_cell(results, 9)
    assert sorted((r["source"], r["target"]) for r in rows) == sorted(
        (s, t) for t in TASKS for s in [BASE] + [x for x in TASKS if x != t])
    assert all(r["recipe"] == cfg.recipe() and 0 <= r["score"] <= 1 for r in rows), "the local runner's row format"
    sources = sorted(name for name in seen if name.startswith("source:"))
    assert sources == [f"source:{t}:seed0" for t in TASKS] and all(len(seen[name]) == 1 for name in sources)
    trained = sorted(name for name in seen if name.startswith("train "))
    assert trained == [f"train {t} in source:{t}:seed0" for t in TASKS], "each body fine-tuned once, by its source task"
    ran = sorted(name for name in seen if name.startswith("cell:"))
    assert ran == sorted(f"cell:{r['source']}->{r['target']}:seed0" for r in rows), "the workers ran the 9 cells"
    assert sorted(p.name for p in (work / "sources").glob("*/*.safetensors")) == [f"{t}-seed0.safetensors" for t in TASKS]


def test_a_killed_worker_reruns_only_its_own_cell(killed_grid):
    _, results, _, report, seen = killed_grid
    assert len(seen[KILLED_CELL]) == len(set(seen[KILLED_CELL])) == 2, "Ray ran the killed cell again, in a new worker"
    rerun = sorted(name for name, pids in seen.items() if len(pids) > 1)
    assert rerun == [KILLED_CELL], "no other cell or source ran twice"
    assert report.failed == [] and ("beta", "alpha", 0) in {(r["source"], r["target"], r["seed"])
                                                           for r in load_transfer_results(results)}


def test_the_source_cache_is_where_the_local_runner_looks(killed_grid):
    from taskemb_hub.executors.ray import source_cache_path

    cfg, _, work, _, _ = killed_grid
    assert all(source_cache_path(cfg, t, 0, work).is_file() for t in TASKS)


def test_a_restart_after_the_driver_was_killed_runs_only_the_missing_cells(killed_grid, ray_cluster, hooks, tiny_bert,
                                                                           grid_dir):
    from taskemb_hub.executors.ray import run_ray_grid

    cfg, _, work, _, _ = killed_grid
    results = grid_dir / "restart.jsonl"
    held = hooks / "hold" / "cell:base->alpha:seed0"
    held.touch()  # the grid cannot finish before the driver is killed
    try:
        before = kill_the_driver_mid_grid(cfg, ray_cluster, hooks, tiny_bert, results, work)
    finally:
        held.unlink()
    assert 2 <= len(before) < 9, f"the driver was killed mid-grid ({len(before)} rows)"

    report = run_ray_grid(cfg, results, work, log=lambda _: None)
    assert (report.skipped, report.submitted, report.finished) == (len(before), 9 - len(before), 9 - len(before))
    after = assert_one_whole_line_per_cell(results, 9)
    assert after[:len(before)] == before, "finished rows are kept as they were"

    again = run_ray_grid(cfg, results, work, log=lambda _: None)
    assert (again.skipped, again.submitted) == (9, 0), "a finished grid submits nothing"


def kill_the_driver_mid_grid(cfg, ray_cluster, hooks, tiny_bert, results, work) -> list[dict]:
    """Start `taskemb-hub transfer-matrix --executor ray` joining the test's Ray; kill it once 2 rows are written."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "taskemb_hub.cli", "transfer-matrix", "--executor", "ray", "--address", ray_cluster,
         "--tasks", ",".join(TASKS), "--data-dir", cfg.data_dir, "--base-model", tiny_bert, "--results", str(results),
         "--work-dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, **ray_hold.job_config_variable(hooks)})
    held = hooks / "held" / "cell:base->alpha:seed0"
    try:
        deadline = time.monotonic() + ray_hold.HOLD_LIMIT_S
        while time.monotonic() < deadline and driver.poll() is None:
            if held.is_file() and results.is_file() and results.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
    finally:
        driver.kill()  # the driver dies with cells in flight: Ray drops its job's tasks
        driver.wait()
    assert held.is_file() and results.is_file(), f"the hold acted in the driver's job: {driver.stderr.read()[-500:]}"
    return assert_one_whole_line_per_cell(results, len(results.read_text().splitlines()))


def test_at_the_deadline_running_cells_are_cancelled_and_write_nothing(killed_grid, hooks, grid_dir):
    from taskemb_hub.executors.ray import run_ray_grid

    cfg, _, work, _, _ = killed_grid
    results = grid_dir / "deadline.jsonl"
    held = hooks / "hold" / "cell:alpha->beta:seed0"
    held.touch()  # still running at the deadline, however fast the machine
    try:
        report = run_ray_grid(cfg, results, work, deadline_s=1.0, log=lambda _: None)
    finally:
        held.unlink()
    assert report.cancelled > 0 and report.finished + report.cancelled == 9
    assert len(load_transfer_results(results)) == report.finished, "a cancelled cell writes nothing"
    if report.finished:
        assert_one_whole_line_per_cell(results, report.finished)
    rest = run_ray_grid(cfg, results, work, log=lambda _: None)
    assert (rest.skipped, rest.finished) == (report.finished, report.cancelled), "a restart runs the cancelled cells"


def ray_grid_cli(tiny_bert: str, grid_dir: Path, results: str, *flags: str) -> int:
    """`taskemb-hub transfer-matrix --executor ray` on the module's grid, with `flags`."""
    return main(["transfer-matrix", "--executor", "ray", *flags, "--tasks", ",".join(TASKS),
                 "--data-dir", str(grid_dir / "tasks"), "--base-model", tiny_bert,
                 "--results", str(grid_dir / results), "--work-dir", str(grid_dir / "work")])


def test_runs_larger_than_any_node_are_refused_instead_of_waiting_forever(ray_cluster, tiny_bert, grid_dir, capsys):
    code = ray_grid_cli(tiny_bert, grid_dir, "big.jsonl", "--cpus-per-run", "4")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "4 CPU(s)" in err and "has 2 CPU(s)" in err


def test_an_address_nothing_listens_on_is_one_line_at_once(grid_dir, capsys):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e \".[test,ray]\")")
    started = time.monotonic()
    code = main(["transfer-matrix", "--executor", "ray", "--address", "127.0.0.1:1", "--tasks", ",".join(TASKS),
                 "--data-dir", str(grid_dir / "tasks"), "--results", str(grid_dir / "nowhere.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Nothing answers at --address" in err
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("flags", [["--address", "auto"], ["--gpus-per-run", "1/4"], ["--cpus-per-run", "2"]])
def test_ray_flags_without_the_ray_executor_are_refused(flags, tmp_path, capsys):
    code = main(["transfer-matrix", "--tasks", "alpha", "--results", str(tmp_path / "r.jsonl"), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "only apply to --executor ray" in err


def test_a_gpu_share_on_a_ray_without_gpus_is_refused(ray_cluster, tiny_bert, grid_dir, capsys):
    code = ray_grid_cli(tiny_bert, grid_dir, "gpu.jsonl", "--gpus-per-run", "1/4")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no GPU" in err and "--gpus-per-run" in err


# registry build ---------------------------------------------------------------------------------

def build_spec(tmp_path: Path, tiny_bert: str, task_dir: Path) -> Path:
    spec = {"tuning": {"method": "bitfit", "base_model": tiny_bert, "max_steps": 4, "max_train_examples": 32,
                       "eval_examples": 8},
            "tasks": [{"path": str(task_dir / name)} for name in TASKS[:2]] + [{"path": str(task_dir / "gamma"),
                                                                               "name": "owner/gamma"}]}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_registry_build_on_ray_gives_the_embeddings_of_serial_tune_runs(ray_cluster, tiny_bert, grid_dir, tmp_path):
    from taskemb_hub.data import load_task
    from taskemb_hub.executors.registry_build import load_spec
    from taskemb_hub.registries.local import LocalRegistry
    from taskemb_hub.tuning.training import TuningConfig, tune

    spec_path = build_spec(tmp_path, tiny_bert, grid_dir / "tasks")
    registry = tmp_path / "registry"
    assert main(["registry", "build", str(spec_path), "--registry", str(registry), "--executor", "ray"]) == 0
    built = {e.name: e.embedding for e in LocalRegistry(registry).entries()}
    assert sorted(built) == ["alpha", "beta", "owner/gamma"]

    spec = load_spec(spec_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a Ray task with num_cpus=1 runs one thread: the same float order
    try:
        serial = {t.name: tune(load_task(t.path, name=t.name), TuningConfig(**spec.tuning), None,
                               progress=False)[-1].embedding for t in spec.tasks}
    finally:
        torch.set_num_threads(threads)
    for name, embedding in serial.items():
        assert built[name].signature == embedding.signature and built[name].step == 4
        torch.testing.assert_close(built[name].vector, embedding.vector, rtol=0, atol=1e-6)
    # a second build skips every entry (a stopped build resumes)
    assert main(["registry", "build", str(spec_path), "--registry", str(registry), "--executor", "ray", "--json"]) == 0


def test_a_task_that_fails_on_ray_is_reported_and_the_others_are_built(ray_cluster, tiny_bert, grid_dir, tmp_path,
                                                                       capsys):
    (tmp_path / "reviews.csv").write_text("review,stars\n" + "".join(f"good {i},{i % 2}\n" for i in range(30)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"tuning": {"base_model": tiny_bert, "max_steps": 2, "eval_examples": 4},
                                    "tasks": [{"path": "reviews.csv"}, {"path": str(grid_dir / "tasks" / "beta")}]}))
    code = main(["registry", "build", str(spec), "--registry", str(tmp_path / "registry"), "--executor", "ray", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["added"] == ["beta"]
    [(name, reason)] = report["failed"]
    assert name == "reviews" and "DataError" in reason and "--text-column" in reason, reason


def test_registry_build_resumes_and_a_rerun_publishes_entries_built_earlier(tiny_bert, grid_dir, tmp_path, monkeypatch,
                                                                              capsys):
    from local_hub import local_hub_fixture

    spec_path = build_spec(tmp_path, tiny_bert, grid_dir / "tasks")
    registry = tmp_path / "registry"
    assert main(["registry", "build", str(spec_path), "--registry", str(registry), "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["added"]) == ["alpha", "beta", "owner/gamma"]
    before = (registry / "beta" / "taskemb.safetensors").read_bytes()
    hub = local_hub_fixture(monkeypatch, tmp_path)
    server = next(hub)
    try:  # the first build stopped before publishing: the rerun tunes nothing and pushes every entry
        code = main(["registry", "build", str(spec_path), "--registry", str(registry), "--publish", "alice",
                     "--base-model-id", "google-bert/bert-tiny", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["added"] == [] and sorted(report["skipped"]) == ["alpha", "beta", "owner/gamma"]
        assert sorted(report["published"]) == ["alpha", "beta", "owner/gamma"]
        files = server.state.repo("alice/beta-bitfit").files
        assert {"taskemb.safetensors", "adapter_model.safetensors", "README.md"} <= set(files)
        assert str(tmp_path) not in files["taskemb.json"].decode(), "no local path is uploaded"
        assert (registry / "beta" / "taskemb.safetensors").read_bytes() == before, "entries are kept as they were"
    finally:
        next(hub, None)


def test_entries_that_would_share_a_repo_are_refused_before_anything_runs(tiny_bert, grid_dir, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump([{"path": str(grid_dir / "tasks" / "alpha"), "name": "a/x"},
                                    {"path": str(grid_dir / "tasks" / "beta"), "name": "b/x"}]))
    code = main(["registry", "build", str(spec), "--registry", str(tmp_path / "registry"), "--publish", "alice"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "same repo" in err


def test_an_unexpected_error_in_one_entry_is_reported_and_the_build_goes_on(tiny_bert, grid_dir, tmp_path, monkeypatch,
                                                                            capsys):
    import taskemb_hub.executors.registry_build as registry_build

    real = registry_build.build_entry

    def crash_on_alpha(task, tuning):
        if task.name == "alpha":
            raise RuntimeError("out of memory")
        return real(task, tuning)

    monkeypatch.setattr(registry_build, "build_entry", crash_on_alpha)
    code = main(["registry", "build", str(build_spec(tmp_path, tiny_bert, grid_dir / "tasks")), "--registry",
                 str(tmp_path / "registry"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["failed"] == [["alpha", "RuntimeError: out of memory"]]
    assert sorted(report["added"]) == ["beta", "owner/gamma"]


@pytest.mark.parametrize("spec, says", [
    ("tasks: [", "not valid YAML"),
    ("tasks: []", "lists no tasks"),
    ("- {path: nowhere}", "does not exist"),
    ("- {path: ., colum: text}", "unknown key"),
    ("- {dataset: glue, path: .}", "exactly one of"),
    ("{tuning: {max_stepz: 3}, tasks: [{dataset: glue}]}", "max_stepz"),
    ("[{dataset: glue, config: a}, {dataset: glue, config: a}]", "more than once"),
    ("{tuning: {max_steps: '100'}, tasks: [{dataset: glue}]}", "must be int"),
    ("{tuning: {max_steps: -1}, tasks: [{dataset: glue}]}", "must be > 0"),
    ("{tuning: {max_steps: null}, tasks: [{dataset: glue}]}", "must be int"),
    ("{tuning: {learning_rate: abc}, tasks: [{dataset: glue}]}", "must be int or float or null"),
    ("{tuning: {batch_size: 0}, tasks: [{dataset: glue}]}", "must be > 0"),
    ("{tuning: {warmup_ratio: 1.5}, tasks: [{dataset: glue}]}", "in [0, 1)"),
    ("{tuning: {base_model: ./tiny-model}, tasks: [{dataset: glue}]}", "relative to the spec's folder"),
    ("[{dataset: glue, task_type: bogus}]", "task_type 'bogus'"),
])
def test_a_bad_spec_is_one_line_and_exit_2(tmp_path, capsys, spec, says):
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    code = main(["registry", "build", str(path), "--registry", str(tmp_path / "registry")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and says in err
    assert not (tmp_path / "registry").exists() or not any((tmp_path / "registry").iterdir())


def test_without_ray_the_ray_executor_names_the_install_command(tmp_path):
    # A fresh interpreter where `import ray` raises ImportError, as without the extra.
    code = ("import sys; sys.modules['ray'] = None; from taskemb_hub.cli import main; "
            f"sys.exit(main(['transfer-matrix', '--executor', 'ray', '--tasks', 'alpha', '--results', "
            f"{str(tmp_path / 'r.jsonl')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert 'pip install "taskemb-hub[ray]"' in done.stderr


def test_the_cli_help_does_not_import_ray():
    code = ("import sys; from taskemb_hub.cli import build_parser; build_parser(); "
            "sys.exit('ray' in sys.modules or 'taskemb_hub.executors' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("text, share", [("1/4", 0.25), ("0.25", 0.25), ("1", 1.0), ("0", 0.0), ("2", 2.0)])
def test_gpu_shares_read_as_fractions(text, share):
    from taskemb_hub.executors import parse_gpu_share

    assert parse_gpu_share(text) == share


@pytest.mark.parametrize("text", ["abc", "1/0", "-0.5", "1.5"])
def test_a_bad_gpu_share_is_refused(text):
    from taskemb_hub.executors import ExecutorError, parse_gpu_share

    with pytest.raises(ExecutorError, match="1/k"):
        parse_gpu_share(text)


def test_a_spec_reads_paths_from_its_folder_names_entries_and_picks_the_training_split(grid_dir, tmp_path):
    from taskemb_hub.executors.registry_build import default_tuning, load_spec

    (tmp_path / "reviews.csv").write_text("review,stars\n" + "".join(f"row {i},{i % 2}\n" for i in range(30)))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"path": "reviews.csv", "text_column": "review", "label_column": "stars"},
                                {"path": str(grid_dir / "tasks" / "alpha"), "split": "test", "name": "alpha-on-test"}]))
    parsed = load_spec(spec)
    assert [t.name for t in parsed.tasks] == ["reviews", "alpha-on-test"] and parsed.tuning == default_tuning()
    assert parsed.tasks[0].load().splits["train"][0]["text"].startswith("row")
    alpha = parsed.tasks[1].load()
    assert len(alpha.splits["train"]) == 16 and "test" not in alpha.splits, "the test rows became the training split"
