"""Measure the ground truth: intermediate-task transfer by full fine-tuning.

For each source: fine-tune the base model on it and keep its body. For each target: fine-tune
from each source's body and from the plain base model, and record the target's test metric.
Each finished run is one JSON line; a restart skips the runs already in the file, so the grid
can be spread over sessions and machines (a GPU one runs the same code). Several workers may share
one results file and work folder: each re-reads the file before a run and claims the cell first,
so no cell runs twice (a claim whose process died is taken over). Every claim, take-over, release
and result append happens under one `filelock` lock, so a claim is never seen half-written and two
workers never take over the same dead claim; a torn line (a worker killed mid-write) is skipped
with a warning instead of stopping every worker.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..base_model import resolve_base_model
from ..data import load_task
from ..errors import DataError
from ..methods.base import signature_hash
from ..tuning.metrics import PRIMARY_METRIC
from ..tuning.training import TuningConfig, tune

BASE = "base"  # the "source" meaning no intermediate task


@dataclass
class TransferConfig:
    """The grid and its training recipe ("limited" regime: 1,000 train examples, as in Vu et al. 2020).

    Args:
        tasks: task folder names under `data_dir`; each is both a source and a target.
        targets: subset of tasks used as targets (default: all).
        seeds: one full grid per seed (the seed drives head init, data order and dropout).
        train_examples: training rows per task (sources, and targets unless `target_train_examples`).
        target_train_examples: training rows per target when fewer than the sources' (the "small"
            regime: 200 rows); None keeps `train_examples`. Sources, and their cached bodies, are unchanged.
        source_epochs, target_epochs: passes over those rows.
        learning_rate, batch_size, max_length: the fine-tuning recipe.
        eval_examples: test rows scored per target run.
    """

    tasks: list[str]
    data_dir: str = "../shared/data/tasks"
    targets: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    train_examples: int = 1000
    target_train_examples: int | None = None
    source_epochs: int = 2
    target_epochs: int = 2
    learning_rate: float = 1e-4
    batch_size: int = 16
    max_length: int = 128
    eval_examples: int = 1000
    base_model: str | None = None

    def __post_init__(self):
        if self.target_train_examples is not None and self.target_train_examples < 1:
            raise DataError(f"target_train_examples must be a positive number of rows (got "
                            f"{self.target_train_examples}); pass e.g. --target-train-examples 200.")

    def recipe(self) -> dict:
        keys = ("train_examples", "source_epochs", "target_epochs", "learning_rate", "batch_size", "max_length",
                "eval_examples")
        recipe = {k: getattr(self, k) for k in keys} | {"base_model": resolve_base_model(self.base_model)[1]}
        if self.target_train_examples is not None:  # absent otherwise, so older result lines still match
            recipe["target_train_examples"] = self.target_train_examples
        return recipe

    def source_recipe(self) -> dict:
        """The recipe that names cached source bodies: the target's row count does not change a source."""
        recipe = self.recipe()
        recipe.pop("target_train_examples", None)
        return recipe


def _steps(rows: int, epochs: int, batch: int) -> int:
    return epochs * math.ceil(rows / batch)


def _parse_row(line: str, where: str | None) -> dict | None:
    """One results line as a row, or None (blank, not a run, or torn: warned about at `where` when given)."""
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        if where is not None:
            warnings.warn(f"{where}: skipping a torn line (a worker stopped mid-write); its cell will run again.",
                          stacklevel=3)  # the caller of `_rows` / `FinishedCells.refresh`
        return None
    return row if isinstance(row, dict) and {"source", "target", "seed"} <= set(row) else None


def _rows(results: Path) -> list[dict]:
    """The result lines that parse; a torn line (a worker killed mid-write) is skipped, not fatal."""
    rows = []
    for number, line in enumerate(results.read_text().splitlines() if results.is_file() else [], start=1):
        row = _parse_row(line, f"{results}:{number}")  # called here directly: the warning's stacklevel counts on it
        if row is not None:
            rows.append(row)
    return rows


class FinishedCells:
    """The (source, target, seed) cells of one recipe in a results file, read incrementally.

    Each `refresh()` parses only the whole lines appended since the last one, so a runner that
    re-reads after every cell stays linear in the grid's size instead of quadratic. An unterminated
    last line counts when it parses (a file written without a final newline) and is read again next
    time (it may still be being written: a strict prefix of a JSON object never parses). A file that
    was replaced, truncated or removed is read again from its start.
    """

    def __init__(self, results: Path, recipe: dict):
        self.results, self.recipe = Path(results), recipe
        self._reset(None)

    def _reset(self, identity) -> None:
        self.offset, self.lines, self.cells, self._identity = 0, 0, set(), identity
        self._last_line = b""

    def refresh(self) -> set[tuple]:
        try:
            handle = self.results.open("rb")
        except FileNotFoundError:
            self._reset(None)
            return self.cells
        with handle:
            stat = os.fstat(handle.fileno())
            identity = (stat.st_dev, stat.st_ino)
            if identity != self._identity or stat.st_size < self.offset or not self._unchanged_before_offset(handle):
                self._reset(identity)
            handle.seek(self.offset)
            data = handle.read()
        cut = data.rfind(b"\n") + 1
        for line in data[:cut].decode("utf-8", errors="replace").splitlines():
            self.lines += 1
            self.cells |= self._cell(_parse_row(line, f"{self.results}:{self.lines}"))
        self.offset += cut
        if cut:
            self._last_line = data[data.rfind(b"\n", 0, cut - 1) + 1:cut]
        # an unterminated tail may still be being written: not warned about, not kept, read again next time
        return self.cells | self._cell(_parse_row(data[cut:].decode("utf-8", errors="replace"), None))

    def _unchanged_before_offset(self, handle) -> bool:
        """The last line read is still where it was (else the file was rewritten in place)."""
        handle.seek(self.offset - len(self._last_line))
        return handle.read(len(self._last_line)) == self._last_line

    def _cell(self, row: dict | None) -> set[tuple]:
        """{the row's cell} when it is a run of this recipe, else nothing."""
        if row is None or row.get("recipe") != self.recipe:
            return set()
        return {(row["source"], row["target"], row["seed"])}

    def __contains__(self, cell: tuple) -> bool:
        return cell in self.refresh()


def _lock(claims: Path):
    """The one lock under which claims are taken, taken over and released, and results appended."""
    from filelock import FileLock

    claims.mkdir(parents=True, exist_ok=True)
    return FileLock(str(claims.parent / f"{claims.name}.lock"), timeout=600)


def _append(results: Path, row: dict) -> None:
    """Append one line (under the lock); a torn last line is closed first so it cannot swallow this one."""
    with results.open("ab+") as handle:
        torn = False
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
        handle.write((b"\n" if torn else b"") + (json.dumps(row) + "\n").encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def _claim(path: Path, stale_after_s: float = 6 * 3600) -> bool:
    """Claim a cell by writing `path`; False when another live worker holds it.

    Under the claims lock: a claim file is written whole (temporary file + rename) and read whole,
    and a dead holder's claim is replaced in the same locked step, so two workers can never both
    take it over, and a claim being written is never mistaken for an expired one.
    """
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    with _lock(path.parent):
        if path.exists():
            try:
                held = json.loads(path.read_text())
            except (OSError, ValueError):
                held = {}  # unreadable (written by an older version): treat as stale only when old
            same_host = held.get("host") == me["host"]
            dead = same_host and not _alive(int(held.get("pid", -1)))
            age = time.time() - float(held.get("started", path.stat().st_mtime))
            if not (dead or (not same_host and age > stale_after_s)):
                return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(me))
        os.replace(tmp, path)
    return True


def _release(path: Path) -> None:
    with _lock(path.parent):
        path.unlink(missing_ok=True)


def _finetune(task, cfg: TransferConfig, seed: int, epochs: int, train_examples: int | None = None) -> TuningConfig:
    train_examples = cfg.train_examples if train_examples is None else train_examples
    rows = min(train_examples, len(task.splits["train"]))
    tuning = TuningConfig(method="full", base_model=cfg.base_model, max_steps=_steps(rows, epochs, cfg.batch_size),
                          batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, head_init="random",
                          head_pooling="cls",  # plain AutoModelForSequenceClassification fine-tuning
                          max_length=cfg.max_length, max_train_examples=train_examples,
                          eval_examples=cfg.eval_examples, seed=seed, init_seed=seed)
    return tuning


def source_body(task_name: str, cfg: TransferConfig, seed: int, work_dir: Path, progress: bool) -> dict:
    """The body weights after fine-tuning on a source (cached on disk: sources are reused by every target)."""
    path = work_dir / "sources" / signature_hash(cfg.source_recipe()) / f"{task_name}-seed{seed}.safetensors"
    if path.is_file():
        return load_file(str(path))
    task = load_task(Path(cfg.data_dir) / task_name)
    tuning = _finetune(task, cfg, seed, cfg.source_epochs)
    tuning.eval_examples = 0
    captured = {}

    from ..tuning.precision import make_accelerator

    # as Accelerate is configured (float32 unless `accelerate launch --mixed_precision`), not an earlier bf16 target's
    accelerator = make_accelerator(tuning.mixed_precision)
    tune(task, tuning, None, progress=progress, accelerator=accelerator, _keep_model=captured)
    body = {k: v.detach().cpu().contiguous() for k, v in captured["model"].base_model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    save_file(body, str(partial))
    os.replace(partial, path)  # readers never see a half-written file
    return body


def run_transfer_matrix(cfg: TransferConfig, results: str | Path, work_dir: str | Path, *, progress: bool = True,
                        log=print) -> Path:
    """Run every missing (source, target, seed) cell, appending one JSON line per run to `results`."""
    results, work_dir = Path(results), Path(work_dir)
    results.parent.mkdir(parents=True, exist_ok=True)
    recipe = cfg.recipe()
    claims = work_dir / "claims" / signature_hash(recipe)
    targets = cfg.targets or cfg.tasks
    finished = FinishedCells(results, recipe)
    for seed in cfg.seeds:
        for target_name in targets:
            target = load_task(Path(cfg.data_dir) / target_name)
            metric = PRIMARY_METRIC[target.task_type]
            for source_name in [BASE] + [t for t in cfg.tasks if t != target_name]:
                if (source_name, target_name, seed) in finished:  # re-read: other workers append
                    continue
                claim = claims / f"{source_name}--{target_name}--seed{seed}.json"
                if not _claim(claim):
                    continue
                if (source_name, target_name, seed) in finished:
                    # Another worker finished the cell and released its claim between our read and our claim.
                    _release(claim)
                    continue
                try:
                    row = _run_cell(cfg, recipe, source_name, target, target_name, metric, seed, work_dir, progress)
                    with _lock(claims):
                        _append(results, row)
                finally:
                    _release(claim)  # only after the line is in the file
                log(f"{source_name:>22} -> {target_name:<22} seed {seed}: {metric} {row['score']:.4f} "
                    f"({row['seconds']}s)")
    return results


def run_local_workers(cfg: TransferConfig, results: str | Path, work_dir: str | Path, *, workers: int = 1,
                      deadline_s: float | None = None, log=print) -> Path:
    """Run the grid with `workers` processes on this machine (the `--executor local` path).

    The processes share `results` and `work_dir` through the runner's locked claims, so several can
    share one GPU (a MiniLM fine-tune is launch-bound: one process leaves most of a card idle) or
    several CPU cores. At `deadline_s` every worker is stopped; a cell cut short writes nothing and
    its claim (a dead process's) is taken over by the next run, which also skips every finished cell.

    Args:
        cfg: the grid and its recipe.
        results: the JSON-lines file every finished run is appended to.
        work_dir: cached source bodies and claims.
        workers: processes to start (1 runs in this process).
        deadline_s: stop every worker after this many seconds (None: run to the end).
        log: called with one line per finished run (in-process runs only).

    Returns:
        The results path.
    """
    if workers <= 1 and deadline_s is None:
        return run_transfer_matrix(cfg, results, work_dir, progress=False, log=log)
    import multiprocessing

    check_tasks(cfg)  # bad input fails here, once, not as one traceback per worker
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    processes = [context.Process(target=_worker_main, args=(cfg, str(results), str(work_dir), threads), daemon=True)
                 for _ in range(max(1, workers))]
    end = None if deadline_s is None else time.monotonic() + deadline_s
    for process in processes:
        process.start()
        time.sleep(0.5)  # stagger the first claims
    for process in processes:
        process.join(None if end is None else max(0.0, end - time.monotonic()))
    stopped = set()
    for number, process in enumerate(processes):
        if process.is_alive():
            process.terminate()
            process.join()
            stopped.add(number)
    failed = [p.exitcode for n, p in enumerate(processes) if n not in stopped and p.exitcode != 0]
    if failed:
        raise WorkerError(f"{len(failed)} of {len(processes)} workers failed (exit codes {failed}; their errors are "
                          f"printed above). Finished cells are kept in {results}; run the same command again to "
                          f"resume.")
    return Path(results)


class WorkerError(RuntimeError):
    """A worker process of `run_local_workers` exited with an error."""


def check_tasks(cfg: TransferConfig) -> None:
    """Load every source and target once, so a wrong `data_dir` or task name fails before any work starts."""
    for name in dict.fromkeys(list(cfg.tasks) + list(cfg.targets or [])):
        load_task(Path(cfg.data_dir) / name)


def _worker_main(cfg: TransferConfig, results: str, work_dir: str, threads: int) -> None:
    torch.set_num_threads(threads)
    run_transfer_matrix(cfg, results, work_dir, progress=False, log=lambda line: print(line, flush=True))


def _run_cell(cfg, recipe, source_name, target, target_name, metric, seed, work_dir, progress) -> dict:
    """Fine-tune the target from the source's body (or the plain base model) and score its test split."""
    started = time.perf_counter()
    body = None if source_name == BASE else source_body(source_name, cfg, seed, work_dir, progress)
    checkpoints = tune(target, _finetune(target, cfg, seed, cfg.target_epochs, cfg.target_train_examples), None, progress=progress,
                       body_state=body, eval_split="test")
    metrics = checkpoints[-1].metrics
    return {"source": source_name, "target": target_name, "seed": seed, "metric": metric, "score": metrics[metric],
            "metrics": metrics, "seconds": round(time.perf_counter() - started, 1),
            "device": "cuda" if torch.cuda.is_available() else "cpu", "recipe": recipe}


def load_transfer_results(path: str | Path, recipe: dict | None = None) -> list[dict]:
    """Every parseable run of a results file (torn lines skipped with a warning), optionally of one recipe."""
    return [r for r in _rows(Path(path)) if recipe is None or r.get("recipe") == recipe]


# A 10-task matrix spanning NLI/fact-checking, sentiment, dialogue and reasoning, run first;
# `classification16` is the full suite of ../shared/data/tasks.
TASK_SETS = {
    "core10": ["rotten_tomatoes", "multiemo_hotels", "multiemo_products", "epistemic_reasoning", "vitaminc", "fever",
               "movie_dialog", "play_dialog", "strategyqa", "winowhy"],
    "classification16": ["vitaminc", "epistemic_reasoning", "fever", "movie_dialog", "play_dialog", "multiemo_hotels",
                         "multiemo_medicine", "multiemo_products", "rotten_tomatoes", "bbc_news", "strategyqa",
                         "formal_fallacies", "logical_fallacy", "winowhy", "hyperbaton", "sports_understanding"],
}
