"""The transfer grid and registry builds as Ray tasks (`--executor ray`).

Each source body is one Ray task and every cell that starts from it depends on it, so a source is
fine-tuned once per seed; each (source, target, seed) cell is one task. A task asks Ray for
`num_gpus` (a share of a card: 1/k runs k fine-tunes per GPU) or `num_cpus`, so the cluster, not a
shell loop, decides how many run at once. Only the driver writes: a finished cell's row comes back
as a return value and the driver appends it to the results file (under the same `filelock` lock as
`--executor local`), so a worker killed mid-run can never tear a line. A killed worker's task is
run again by Ray (`max_retries`); a killed driver loses only the cells in flight, and a restart
re-reads the file, skips every finished cell and submits the rest.

Bodies travel between tasks as safetensors bytes through Ray's object store (no pickled tensors),
and are written into the worker machine's source cache before the cell runs, so a cluster needs no
shared folder for them. The task data and a local base model must be at the same path on every
node (or be Hub ids).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ExecutorError, require_ray

ray = require_ray()


@dataclass
class RayResources:
    """What each fine-tune asks Ray for.

    Args:
        num_gpus: share of a GPU per run (0.25: four runs per card); 0 runs on CPUs. None: 1 when the
            cluster has GPUs, else 0.
        num_cpus: CPU cores per run (also its torch thread count).
        max_retries: times Ray runs a task again after its worker process or machine died.
    """

    num_gpus: float | None = None
    num_cpus: float = 1.0
    max_retries: int = 3

    def options(self, cluster: dict) -> dict:
        gpus = self.num_gpus
        if gpus is None:
            gpus = 1.0 if cluster.get("GPU", 0) > 0 else 0.0
        return {"num_cpus": self.num_cpus, "num_gpus": gpus, "max_retries": self.max_retries}


@dataclass
class GridReport:
    """What one `run_ray_grid` call did.

    Args:
        results: the results file.
        skipped: cells already in the file when it started.
        submitted: cells sent to Ray.
        finished: cells whose row the driver appended.
        failed: `(cell, error line)` for cells that raised (their rows are absent: a restart runs them again).
        cancelled: cells still running or queued at the deadline.
        seconds: wall time, Ray start included.
    """

    results: Path
    skipped: int = 0
    submitted: int = 0
    finished: int = 0
    failed: list[tuple[tuple, str]] = field(default_factory=list)
    cancelled: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"results": str(self.results)}


def connect(address: str | None = None, num_cpus: int | None = None) -> dict:
    """Join the Ray cluster at `address`, or start a local one (once per process); its total resources.

    Args:
        address: `ray://host:10001`, `host:6379`, `auto`, or None (RAY_ADDRESS, else a new local Ray).
        num_cpus: with a new local Ray: cores it may use (default: all).
    """
    if address and address != "auto":
        _probe(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                     log_to_driver=False, logging_level="WARNING")
        except ConnectionError as err:
            raise ExecutorError(f"Could not join the Ray cluster at {address!r} ({str(err).splitlines()[0]}). Start "
                                "it with `ray start --head`, or drop --address to start a local Ray.") from None
    return ray.cluster_resources()


def _probe(address: str) -> None:
    """Fail fast, in one line, on an address nothing listens on (`ray.init` would retry for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except ValueError:
        raise ExecutorError(f"--address {address!r} is not host:port or ray://host:port. Pass e.g. "
                            "--address 10.0.0.5:6379, ray://head:10001 or auto.") from None
    except OSError as err:
        raise ExecutorError(f"Nothing answers at --address {address!r} ({err.strerror or err}). Start the cluster with "
                            "`ray start --head`, check the host and port, or drop --address to start a local Ray.") from None


def check_fits(options: dict, address: str | None, log=print) -> None:
    """Refuse (local Ray) or warn about (a joined cluster, which may scale up) runs no node can hold.

    A task asking for more CPUs or GPUs than any node has would wait forever without a word.
    """
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(n.get("CPU", 0) >= options["num_cpus"] and n.get("GPU", 0) >= options["num_gpus"] for n in nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    what = (f"a run asks for {options['num_cpus']:g} CPU(s) and {options['num_gpus']:g} GPU(s) but the largest Ray node "
            f"has {largest.get('CPU', 0):g} CPU(s) and {largest.get('GPU', 0):g} GPU(s)")
    if address is None:
        raise ExecutorError(f"{what[0].upper()}{what[1:]}, so no run could start. Lower --cpus-per-run / --gpus-per-run (no GPU "
                            "on this machine: drop --gpus-per-run), or pass --address of a larger cluster.")
    log(f"warning: {what}; runs wait until the cluster scales up")


def _portable(cfg):
    """`cfg` with local paths made absolute, so a worker started in another folder finds them."""
    from ..base_model import resolve_base_model

    data_dir = Path(cfg.data_dir).expanduser()
    base = cfg.base_model
    if base is not None and Path(base).expanduser().is_dir():
        base = resolve_base_model(base)[0]  # the absolute folder; its recorded id (the folder's name) is unchanged
    return dataclasses.replace(cfg, data_dir=str(data_dir.resolve()) if data_dir.is_dir() else cfg.data_dir,
                               base_model=base)


def source_cache_path(cfg, task_name: str, seed: int, work_dir: Path) -> Path:
    """Where `transfer.source_body` caches a source's body (a test checks the two agree)."""
    from ..methods.base import signature_hash

    return Path(work_dir) / "sources" / signature_hash(cfg.source_recipe()) / f"{task_name}-seed{seed}.safetensors"


def _use_resources(options: dict) -> None:
    """Inside a task: as many torch threads as cores granted; no GPU when none was granted.

    Ray sets CUDA_VISIBLE_DEVICES only for tasks granted a GPU, so a CPU task on a GPU node would
    otherwise use a card that the scheduler counts as free.
    """
    import torch

    if not options["num_gpus"] and not torch.cuda.is_initialized():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    torch.set_num_threads(max(1, int(options["num_cpus"])))


def _train_source(cfg, task_name: str, seed: int, work_dir: str, options: dict) -> bytes:
    """Ray task: the source's fine-tuned body as safetensors bytes (from this node's cache when there)."""
    from ..evaluation.transfer import source_body

    _use_resources(options)
    source_body(task_name, cfg, seed, Path(work_dir), progress=False)
    return source_cache_path(cfg, task_name, seed, Path(work_dir)).read_bytes()


def _run_grid_cell(cfg, recipe: dict, source_name: str, target_name: str, seed: int, work_dir: str, options: dict,
                   body: bytes | None) -> dict:
    """Ray task: one cell's row, exactly as `transfer._run_cell` makes it for the local runner."""
    from ..data import load_task
    from ..tuning.metrics import PRIMARY_METRIC
    from ..evaluation.transfer import _run_cell

    _use_resources(options)
    if body is not None:  # put the source's body where `_run_cell` looks for it (another node may have trained it)
        path = source_cache_path(cfg, source_name, seed, Path(work_dir))
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(body)
            os.replace(partial, path)
    target = load_task(Path(cfg.data_dir) / target_name)
    return _run_cell(cfg, recipe, source_name, target, target_name, PRIMARY_METRIC[target.task_type], seed,
                     Path(work_dir), False)


def _cell_name(cell: tuple) -> str:
    source, target, seed = cell
    return f"cell:{source}->{target}:seed{seed}"


def _error_line(err: BaseException) -> str:
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"[:300]


def grid_cells(cfg) -> list[tuple[str, str, int]]:
    """Every (source, target, seed) of the grid, in the local runner's order (base first per target)."""
    from ..evaluation.transfer import BASE

    return [(source, target, seed) for seed in cfg.seeds for target in (cfg.targets or cfg.tasks)
            for source in [BASE] + [t for t in cfg.tasks if t != target]]


def _check_tasks(cfg) -> None:
    """Refuse unknown task names before starting anything (when the data folder is on this machine)."""
    from ..errors import DataError

    data_dir = Path(cfg.data_dir)
    if not data_dir.is_dir():
        return  # a cluster path that only the workers see
    names = set(cfg.tasks) | set(cfg.targets or [])
    missing = sorted(n for n in names if not (data_dir / n / "task.json").is_file())
    if missing:
        raise DataError(f"No task folder (with task.json) for {', '.join(missing)} under {data_dir}. Fix --tasks/"
                        "--targets or pass the right --data-dir.")


def run_ray_grid(cfg, results: str | Path, work_dir: str | Path, *, address: str | None = None,
                 num_cpus: int | None = None, resources: RayResources | None = None, deadline_s: float | None = None,
                 log=print) -> GridReport:
    """Run every missing cell of the transfer grid as Ray tasks; the driver appends one JSON line per finished cell.

    Args:
        cfg: the grid and its recipe (`transfer.TransferConfig`).
        results: the JSON-lines file (the `--executor local` format: either executor resumes the other's file).
        work_dir: the source-body cache and the results lock.
        address: the Ray cluster to join; None starts a local Ray (or joins RAY_ADDRESS).
        num_cpus: with a new local Ray: the cores it may use.
        resources: per-run GPU share, cores and retries.
        deadline_s: stop at this many seconds: cells still running are cancelled and write nothing.
        log: called with one line per finished or failed cell.

    Returns:
        A `GridReport`.

    Example:
        ```python
        >>> cfg = TransferConfig(tasks=TASK_SETS["core10"])
        >>> run_ray_grid(cfg, "transfer.jsonl", "work", resources=RayResources(num_gpus=0.25)).finished
        90
        ```
    """
    from ..methods.base import signature_hash
    from ..evaluation.transfer import FinishedCells, _lock

    started = time.perf_counter()
    results, work_dir = Path(results), Path(work_dir).expanduser().resolve()
    results.parent.mkdir(parents=True, exist_ok=True)
    _check_tasks(cfg)
    recipe = cfg.recipe()  # from the caller's config: the paths made absolute below are not part of it
    remote_cfg = _portable(cfg)
    report = GridReport(results=results)
    finished = FinishedCells(results, recipe)  # re-read under the lock after each cell: only the new lines
    done = set(finished.refresh())
    todo = [cell for cell in grid_cells(cfg) if cell not in done]
    report.skipped = len(grid_cells(cfg)) - len(todo)
    if not todo:
        report.seconds = round(time.perf_counter() - started, 1)
        return report

    cluster = connect(address, num_cpus)
    resources = resources or RayResources()
    options = resources.options(cluster)
    check_fits(options, address, log)
    pending = _submit_cells(todo, remote_cfg, recipe, work_dir, options)
    report.submitted = len(pending)
    lock = _lock(work_dir / "claims" / signature_hash(recipe))
    end = None if deadline_s is None else started + deadline_s
    _collect_rows(pending, results, finished, lock, end, report, log)
    report.seconds = round(time.perf_counter() - started, 1)
    return report


def _submit_cells(todo: list[tuple], remote_cfg, recipe: dict, work_dir: Path, options: dict) -> dict[object, tuple]:
    """Send each cell to Ray, after the one task per (source, seed) that tunes its body: `{cell's ref: cell}`."""
    from ..evaluation.transfer import BASE

    train_source = ray.remote(_train_source)
    run_cell = ray.remote(_run_grid_cell)
    sources: dict[tuple[str, int], object] = {}
    pending: dict[object, tuple] = {}
    for cell in todo:
        source, target, seed = cell
        body = None
        if source != BASE:
            if (source, seed) not in sources:
                sources[(source, seed)] = train_source.options(name=f"source:{source}:seed{seed}", **options).remote(
                    remote_cfg, source, seed, str(work_dir), options)
            body = sources[(source, seed)]
        ref = run_cell.options(name=_cell_name(cell), **options).remote(
            remote_cfg, recipe, source, target, seed, str(work_dir), options, body)
        pending[ref] = cell
    sources.clear()  # the cells hold the body references now (Ray spills bodies to disk when its store fills)
    return pending


def _collect_rows(pending: dict[object, tuple], results: Path, finished, lock, end: float | None, report: GridReport,
                  log) -> None:
    """Append each finished cell's row as it comes back (until `end`, when the cells still running are cancelled)."""
    from ..evaluation.transfer import _append

    while pending:
        wait_s = None if end is None else max(0.0, end - time.perf_counter())
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait_s)
        if not ready:  # the deadline
            for ref in pending:  # a source still training goes on (into the cache) until this job ends
                ray.cancel(ref, force=True)
            report.cancelled = len(pending)
            log(f"deadline: {len(pending)} cell(s) cancelled; a restart runs them")
            break
        for ref in ready:
            cell = pending.pop(ref)
            try:
                row = ray.get(ref)
            except ray.exceptions.RayError as err:
                report.failed.append((cell, _error_line(err)))
                log(f"{cell[0]:>22} -> {cell[1]:<22} seed {cell[2]}: FAILED ({_error_line(err)}); a restart runs it again")
                continue
            with lock:  # re-read under the lock: a `--executor local` worker may share this file
                written = cell not in finished
                if written:
                    _append(results, row)
            report.finished += written
            report.skipped += not written  # another writer finished it meanwhile: its row stays
            log(f"{cell[0]:>22} -> {cell[1]:<22} seed {cell[2]}: {row['metric']} {row['score']:.4f} ({row['seconds']}s)")


def _build_entry(build_entry, task_spec, tuning: dict, options: dict):
    """Ray task: one registry entry's files (`build_entry` is `registry_build.build_entry`)."""
    _use_resources(options)
    return build_entry(task_spec, tuning)


def run_ray_build(build_entry, tasks: list, tuning: dict, on_built, on_failed, *, address: str | None = None,
                  num_cpus: int | None = None, resources: RayResources | None = None) -> None:
    """Tune each task as a Ray task; `on_built(BuiltEntry)` runs here (the driver) as each one ends.

    Args:
        build_entry: `(TaskSpec, tuning) -> BuiltEntry`, run in the worker: `registry_build.build_entry`, handed in
            by its caller (Ray ships a module-level function by reference) so this module does not import it.
        tasks: `registry_build.TaskSpec`s.
        tuning: the `TuningConfig` fields every entry shares.
        on_built: writes (and publishes) a finished entry.
        on_failed: `(name, reason)` for an entry whose task raised.
        address, num_cpus, resources: as `run_ray_grid`.
    """
    if not tasks:
        return
    options = (resources or RayResources()).options(connect(address, num_cpus))
    check_fits(options, address)
    build = ray.remote(_build_entry)
    pending = {build.options(name=f"build:{task.name}", **options).remote(build_entry, task, tuning, options): task.name
               for task in tasks}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            name = pending.pop(ref)
            try:
                entry = ray.get(ref)
            except ray.exceptions.RayError as err:
                on_failed(name, _error_line(err))
                continue
            on_built(entry)
