"""`taskemb-hub registry build SPEC`: tune one embedding per listed task into a registry folder.

A spec is a YAML or JSON file: either a list of tasks, or a mapping with `tasks` and an optional
`tuning` block (the `TuningConfig` fields every entry shares; default: the packaged registry's
recipe, so the entries rank against it and against targets that `rank --data` tunes). A task is a
local task folder or data file (`path`, relative to the spec's folder) or a Hub dataset (`dataset`,
with `config`, the training `split` and its columns):

```yaml
tuning: {method: bitfit, max_steps: 100, max_train_examples: 1000}
tasks:
  - path: ../shared/data/tasks/rotten_tomatoes
  - dataset: glue
    config: sst2
    text_column: sentence
    name: sst2
```

Each task becomes one entry (named `name`, default the task folder's, file's or dataset's name) of
the registry folder, written by this process only (`LocalRegistry.add`: whole or not at all), and is
optionally published with `publishing.publish`. Entries already in the registry are skipped, so a
stopped build resumes. With `--executor ray` every task is one Ray task; the tuned checkpoint comes
back as file bytes and is written here.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TaskEmbHubError

# Keys of a task in the spec (with load_task's defaults for the columns).
_TASK_KEYS = {"name", "path", "dataset", "config", "split", "text_column", "text_pair_column", "label_column",
              "task_type", "question_column", "context_column", "answers_column"}
# TuningConfig fields a spec may not set: pushing is `--publish`'s job, and `stop_step` would cut every entry short.
_TUNING_FORBIDDEN = {"push_to_hub", "hub_private", "hub_base_model_id", "save_steps", "stop_step"}


class SpecError(TaskEmbHubError):
    """A registry build spec that cannot be read or names something that does not exist."""


@dataclass
class TaskSpec:
    """One task of a build spec.

    Args:
        name: the registry entry's name (and the task name recorded in its embedding).
        path: a local task folder or data file (absolute once parsed).
        dataset: a Hub dataset id (instead of `path`).
        config: the dataset's configuration, if it has several.
        split: the split to train on when it is not called `train`.
        columns: `load_task` column arguments (`text_column`, `label_column`, ...).
        task_type: force `text-classification`, `regression` or `extractive-qa`.
    """

    name: str
    path: str | None = None
    dataset: str | None = None
    config: str | None = None
    split: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    task_type: str | None = None

    def load(self):
        """The `TaskData` (its training split renamed `train` when `split` names another)."""
        from ..data import load_task
        from ..errors import DataError

        task = load_task(self.path or self.dataset, name=self.name, task_type=self.task_type,
                         dataset_config=self.config, **self.columns)
        if self.split and self.split != "train":
            if self.split not in task.splits:
                raise DataError(f"{self.dataset or self.path}: no split {self.split!r} (it has {sorted(task.splits)}). "
                                "Fix `split` in the spec.")
            task.splits = {("train" if s == self.split else s): rows for s, rows in task.splits.items() if s != "train"}
        return task


@dataclass
class BuildSpec:
    """A parsed spec: the tasks and the recipe they share."""

    tasks: list[TaskSpec]
    tuning: dict[str, Any]

    def tuning_config(self):
        from ..tuning.training import TuningConfig

        return TuningConfig(**self.tuning)


def default_tuning() -> dict[str, Any]:
    """The packaged registry's recipe (what `rank --data` tunes a target with when entries record none)."""
    from ..default_registry import DEFAULT_METHOD
    from ..tuning.recipe import DEFAULT_RECIPE

    return {"method": DEFAULT_METHOD, **DEFAULT_RECIPE, "eval_examples": 200}


def load_spec(path: str | Path) -> BuildSpec:
    """Read and check a build spec (YAML or JSON); `SpecError` names the first problem and its fix.

    Example:
        ```python
        >>> spec = load_spec("registry.yaml")
        >>> [t.name for t in spec.tasks]
        ['rotten_tomatoes', 'sst2']
        ```
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"Spec file {path} does not exist. Pass a YAML or JSON file listing the tasks.")
    try:
        raw = json.loads(path.read_text()) if path.suffix.lower() == ".json" else yaml.safe_load(path.read_text())
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"Spec {path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({first}). "
                        "Fix the syntax.") from None
    if isinstance(raw, list):
        raw = {"tasks": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list) or not raw["tasks"]:
        raise SpecError(f"Spec {path} lists no tasks. Write a list of tasks, or a mapping with a non-empty `tasks` list "
                        "(and an optional `tuning` block).")
    unknown = set(raw) - {"tasks", "tuning"}
    if unknown:
        raise SpecError(f"Spec {path} has unknown top-level key(s) {sorted(unknown)}; only `tasks` and `tuning` are read.")
    tuning = default_tuning() | _check_tuning(path, raw.get("tuning") or {})
    if tuning.get("base_model") is not None:
        tuning["base_model"] = _base_model(path, tuning["base_model"])
    tasks = [_task_spec(path, i, entry) for i, entry in enumerate(raw["tasks"])]
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"Spec {path} names entries {duplicates} more than once. Give each task its own `name`.")
    for name in names:  # an entry inside another is never listed, and the outer one's add would be refused
        outer = next((p.as_posix() for p in list(Path(name).parents)[:-1] if p.as_posix() in names), None)
        if outer is not None:
            raise SpecError(f"Spec {path}: entry {name!r} would be inside entry {outer!r}, where entries are not looked "
                            f"for. Rename one of them, e.g. {name.replace('/', '-')!r}.")
    return BuildSpec(tasks=tasks, tuning=tuning)


# Field -> (accepted types, whether None is allowed, the check on the value, what the check asks for).
_POSITIVE = (lambda v: v > 0, "> 0")
_TUNING_TYPES = {
    "method": ((str,), False, None), "base_model": ((str,), True, None),
    "max_steps": ((int,), False, _POSITIVE), "batch_size": ((int,), False, _POSITIVE),
    "max_length": ((int,), False, _POSITIVE), "gradient_accumulation_steps": ((int,), False, _POSITIVE),
    "max_train_examples": ((int,), True, _POSITIVE), "eval_examples": ((int,), False, (lambda v: v >= 0, ">= 0")),
    "seed": ((int,), False, (lambda v: v >= 0, ">= 0")), "init_seed": ((int,), False, (lambda v: v >= 0, ">= 0")),
    "learning_rate": ((int, float), True, _POSITIVE), "head_learning_rate": ((int, float), False, _POSITIVE),
    "warmup_ratio": ((int, float), False, (lambda v: 0 <= v < 1, "in [0, 1)")),
    "weight_decay": ((int, float), False, (lambda v: v >= 0, ">= 0")),
    "head_init": ((str,), False, None), "head_pooling": ((str,), False, None),
    "method_kwargs": ((dict,), False, None), "embedding": ((dict,), False, None),
}


def _base_model(path: Path, base: str | None) -> str | None:
    """A local base model is read relative to the spec's folder (as task paths are), and must exist."""
    if base is None:
        return None
    local = Path(base).expanduser()
    local = local if local.is_absolute() else path.parent / local
    if local.is_dir():
        return str(local.resolve())
    if base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise SpecError(f"Spec {path}: `tuning.base_model` {base!r} is not a folder (read relative to the spec's folder "
                        f"{path.parent}) and not a Hub id. Fix the path, or name a Hub model like 'owner/name'.")
    return base


def _check_tuning(path: Path, tuning: Any) -> dict[str, Any]:
    from ..tuning.training import TuningConfig

    if not isinstance(tuning, dict):
        raise SpecError(f"Spec {path}: `tuning` must be a mapping of TuningConfig fields, e.g. {{method: bitfit, "
                        "max_steps: 100}.")
    allowed = {f.name for f in dataclasses.fields(TuningConfig)} - _TUNING_FORBIDDEN
    unknown = sorted(set(tuning) - allowed)
    if unknown:
        raise SpecError(f"Spec {path}: `tuning` has unknown or unsupported key(s) {unknown}; allowed: "
                        f"{', '.join(sorted(allowed))}.")
    for key, value in tuning.items():
        types, nullable, check = _TUNING_TYPES.get(key, ((object,), True, None))
        if value is None and nullable:
            continue
        if value is None or isinstance(value, bool) or not isinstance(value, types):
            raise SpecError(f"Spec {path}: `tuning.{key}` is {value!r}; it must be "
                            f"{' or '.join(t.__name__ for t in types)}{' or null' if nullable else ''}.")
        if check is not None and not check[0](value):
            raise SpecError(f"Spec {path}: `tuning.{key}` is {value!r}; it must be {check[1]}.")
    try:
        TuningConfig(**(default_tuning() | tuning))
    except TaskEmbHubError as err:
        raise SpecError(f"Spec {path}: `tuning` is not usable: {err}") from None
    except (TypeError, ValueError) as err:
        raise SpecError(f"Spec {path}: `tuning` is not usable ({err}). Check the values' types.") from None
    return dict(tuning)


def _task_spec(path: Path, index: int, entry: Any) -> TaskSpec:
    where = f"Spec {path}: tasks[{index}]"
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        raise SpecError(f"{where} is a {type(entry).__name__}; write a mapping with `path` (a task folder or data "
                        "file) or `dataset` (a Hub dataset id).")
    unknown = sorted(set(entry) - _TASK_KEYS)
    if unknown:
        raise SpecError(f"{where} has unknown key(s) {unknown}; allowed: {', '.join(sorted(_TASK_KEYS))}.")
    if bool(entry.get("path")) == bool(entry.get("dataset")):
        raise SpecError(f"{where} needs exactly one of `path` (a local task folder or data file) and `dataset` "
                        "(a Hub dataset id).")
    if any(not isinstance(v, str) for k, v in entry.items() if v is not None):
        raise SpecError(f"{where}: every value must be a string (got {entry}).")
    local = None
    if entry.get("path"):
        local = Path(entry["path"]).expanduser()
        local = local if local.is_absolute() else (path.parent / local)
        if not local.exists():
            raise SpecError(f"{where}: {entry['path']!r} does not exist (read relative to the spec's folder "
                            f"{path.parent}). Fix the path.")
        local = local.resolve()
    default_name = local.name.split(".")[0] if local else "-".join(
        p for p in (entry["dataset"].split("/")[-1], entry.get("config")) if p)
    name = entry.get("name") or default_name
    if name.startswith("/") or any(part.startswith(".") for part in Path(name).parts):
        raise SpecError(f"{where}: entry name {name!r} must be relative and no part may start with '.'.")
    if "\0" in name or "\\" in name or any(len(part.encode()) > 200 for part in Path(name).parts):
        raise SpecError(f"{where}: entry name {name!r} is not a usable folder name (no NUL or backslash, each part "
                        "at most 200 bytes). Set a shorter `name`.")
    from ..data import TASK_TYPES

    if entry.get("task_type") and entry["task_type"] not in TASK_TYPES:
        raise SpecError(f"{where}: task_type {entry['task_type']!r} is not one of {', '.join(TASK_TYPES)}.")
    columns = {k: entry[k] for k in ("text_column", "text_pair_column", "label_column", "question_column",
                                     "context_column", "answers_column") if entry.get(k)}
    return TaskSpec(name=name, path=str(local) if local else None, dataset=entry.get("dataset"), config=entry.get("config"),
                    split=entry.get("split"), columns=columns, task_type=entry.get("task_type"))


@dataclass
class BuiltEntry:
    """A tuned entry as it comes back from a worker: the last checkpoint's files (bytes), its metrics and time."""

    name: str
    files: dict[str, bytes]
    metrics: dict[str, float]
    seconds: float


def build_entry(task_spec: TaskSpec, tuning: dict[str, Any]) -> BuiltEntry:
    """Tune one task with `tuning` and return its last checkpoint's files (runs in a worker or in-process).

    Args:
        task_spec: the task.
        tuning: `TuningConfig` fields.
    """
    from ..tuning.training import TuningConfig, tune

    started = time.perf_counter()
    task = task_spec.load()
    with tempfile.TemporaryDirectory(prefix="taskemb-build-") as tmp:
        last = tune(task, TuningConfig(**tuning), tmp, progress=False)[-1]
        files = {p.name: p.read_bytes() for p in last.path.iterdir() if p.is_file()}
    return BuiltEntry(name=task_spec.name, files=files, metrics=last.metrics,
                      seconds=round(time.perf_counter() - started, 1))


@dataclass
class BuildReport:
    """What a build did: entries added, skipped (already there), failed (with the reason), published (repo urls)."""

    registry: str
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    published: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class PublishOptions:
    """`--publish OWNER`: push each new entry to `OWNER/<entry name>-<method>` with `publishing.publish`."""

    owner: str
    private: bool = False
    endpoint: str | None = None
    base_model_id: str | None = None


def build_registry(spec: BuildSpec, registry: str | Path, *, executor: str = "local", overwrite: bool = False,
                   publish: PublishOptions | None = None, address: str | None = None, num_cpus: int | None = None,
                   resources=None, log=print) -> BuildReport:
    """Tune every task of `spec` into an entry of the `registry` folder.

    Args:
        spec: from `load_spec`.
        registry: the registry folder (created if missing).
        executor: `local` (one task after another, in this process) or `ray` (one Ray task each).
        overwrite: rebuild entries already in the registry (default: skip them, so a build resumes).
        publish: also push each new entry to the Hub.
        address, num_cpus, resources: with `ray`: the cluster to join, a local Ray's cores, and each run's
            `RayResources`.
        log: called with one line per entry.

    Returns:
        A `BuildReport`.
    """
    from ..registries.local import LocalRegistry, _is_entry

    started = time.perf_counter()
    store = LocalRegistry(registry, create=True)
    report = BuildReport(registry=str(registry))
    if publish is not None:
        repos = [_repo_id(publish, t.name, spec.tuning["method"]) for t in spec.tasks]
        clash = sorted({r for r in repos if repos.count(r) > 1})
        if clash:
            raise SpecError(f"Entries would be published to the same repo {clash}: repo names use the entry name's last "
                            "part. Rename the entries so their last parts differ.")
    todo = []
    for task in spec.tasks:
        if _is_entry(store.path / task.name) and not overwrite:
            report.skipped.append(task.name)
            log(f"{task.name}: already in {registry} (pass --overwrite to rebuild)")
            if publish is not None:  # a build stopped before its push resumes here (unchanged files: no new commit)
                _publish(store.path / task.name, task.name, spec.tuning["method"], publish, report, log)
        else:
            todo.append(task)
    from ..errors import RegistryError

    for task in todo:  # names that the registry's entries make unusable: refused before anything is tuned
        try:
            store._check_nesting(task.name, store.path / task.name)
        except RegistryError as err:
            raise SpecError(f"{registry}: {err}") from None

    def finished(entry: BuiltEntry) -> None:
        try:
            with tempfile.TemporaryDirectory(prefix=".taskemb-build-", dir=store.path) as staging:
                for name, data in entry.files.items():
                    (Path(staging) / name).write_bytes(data)
                path = store.add(staging, name=entry.name, overwrite=overwrite)
        except Exception as err:  # noqa: BLE001 - an entry that cannot be added is reported; the others go on
            failed(entry.name, str(err).splitlines()[0] if isinstance(err, TaskEmbHubError) else
                   f"{type(err).__name__}: {err}")
            return
        report.added.append(entry.name)
        log(f"{entry.name}: added {path} ({json.dumps(entry.metrics)}, {entry.seconds}s)")
        if publish is not None:
            _publish(path, entry.name, spec.tuning["method"], publish, report, log)

    def failed(name: str, reason: str) -> None:
        report.failed.append((name, reason))
        log(f"{name}: FAILED ({reason})")

    if executor == "ray":
        from .ray import run_ray_build

        run_ray_build(build_entry, todo, spec.tuning, finished, failed, address=address, num_cpus=num_cpus,
                      resources=resources)
    else:
        for task in todo:
            try:
                entry = build_entry(task, spec.tuning)
            except Exception as err:  # noqa: BLE001 - one entry's failure (any kind) must not stop the others
                failed(task.name, str(err) if isinstance(err, TaskEmbHubError) else f"{type(err).__name__}: {err}")
                continue
            finished(entry)
    report.seconds = round(time.perf_counter() - started, 1)
    return report


def _repo_id(options: PublishOptions, name: str, method: str) -> str:
    return f"{options.owner}/{Path(name).name}-{method}"


def _publish(path: Path, name: str, method: str, options: PublishOptions, report: BuildReport, log) -> None:
    from ..publishing import publish

    repo_id = _repo_id(options, name, method)
    try:
        result = publish(path, repo_id, private=options.private, endpoint=options.endpoint,
                         base_model_id=options.base_model_id)
    except TaskEmbHubError as err:  # the entry stays in the registry; `taskemb-hub publish` can push it later
        report.failed.append((name, f"publish to {repo_id}: {err}"))
        log(f"{name}: publish to {repo_id} FAILED ({err})")
        return
    report.published[name] = result.url
    log(f"{name}: published {repo_id} ({result.url})")
