"""Test-only hooks for Ray workers: record which worker ran which task, and hold a cell until a test releases it.

Fast machines finish a tiny-BERT cell in a fraction of a second, faster than a test can watch it, so
the Ray tests do not race the clock: a cell named in `<dir>/hold/` waits (on its first run only) until
the test removes that file, or kills the worker. Installed in every worker of a job as Ray's
`worker_process_setup_hook` (see `runtime_env`), with this folder on the workers' PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DIR_VARIABLE = "TASKEMB_TEST_RAY_DIR"
HOLD_LIMIT_S = 600


def runtime_env(folder: Path) -> dict:
    """A Ray runtime_env whose workers import this module and report to (and take holds from) `folder`."""
    for sub in ("hold", "held"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    return {"worker_process_setup_hook": "ray_hold.install",
            "env_vars": {"PYTHONPATH": path, DIR_VARIABLE: str(folder)}}


def job_config_variable(folder: Path) -> dict:
    """Environment for a driver started as a subprocess: Ray's job-submission variable carries the runtime_env."""
    return {"RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps({"runtime_env": runtime_env(folder)})}


def runs(folder: Path) -> dict[str, list[int]]:
    """Every task name that called into the grid code, with the pid of the worker of each run (one per run)."""
    seen: dict[str, list[int]] = {}
    log = folder / "runs.log"
    for line in log.read_text().splitlines() if log.is_file() else []:
        name, _, pid = line.rpartition(" ")
        if name and pid.isdigit():  # a worker force-killed inside its write leaves a line that is skipped
            seen.setdefault(name, []).append(int(pid))
    return seen


def install() -> None:
    """Wrap the functions a grid task calls (`transfer.source_body`, `transfer._run_cell`) in this worker."""
    import ray
    import taskemb_hub.evaluation.transfer as transfer

    folder = Path(os.environ[DIR_VARIABLE])

    def task_name() -> str:
        return ray.get_runtime_context().get_task_name() or "?"

    def record(name: str) -> None:
        with open(folder / "runs.log", "a") as log:  # one short append per line: whole lines
            log.write(f"{name} {os.getpid()}\n")

    def hold(name: str) -> None:
        if not (folder / "hold" / name).exists():
            return
        staged = folder / "held" / f".{name}.{os.getpid()}"
        staged.write_text(str(os.getpid()))
        try:  # only a cell's first run holds: a re-run after the test killed the worker goes on
            os.link(staged, folder / "held" / name)  # published whole, exclusively
        except FileExistsError:
            return
        finally:
            staged.unlink()
        give_up = time.monotonic() + HOLD_LIMIT_S  # a test that never releases fails instead of hanging
        while (folder / "hold" / name).exists() and time.monotonic() < give_up:
            time.sleep(0.02)

    real_source_body, real_run_cell = transfer.source_body, transfer._run_cell

    def source_body(task, cfg, seed, work_dir, *args, **kwargs):
        from taskemb_hub.executors.ray import source_cache_path

        if task_name().startswith("source:"):
            record(task_name())
        if not source_cache_path(cfg, task, seed, work_dir).is_file():  # this call fine-tunes the body
            record(f"train {task} in {task_name()}")
        return real_source_body(task, cfg, seed, work_dir, *args, **kwargs)

    def run_cell(*args, **kwargs):
        name = task_name()
        record(name)
        hold(name)
        return real_run_cell(*args, **kwargs)

    transfer.source_body, transfer._run_cell = source_body, run_cell


def wait_for_hold(folder: Path, name: str, timeout_s: float = HOLD_LIMIT_S) -> int:
    """The pid of the worker holding `name`, once it holds."""
    marker = folder / "held" / name
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marker.is_file():
            return int(marker.read_text())
        time.sleep(0.02)
    raise TimeoutError(f"{name} never started")
