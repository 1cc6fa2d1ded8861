"""Load a task: a Hub dataset, a local data file, or a task folder like `shared/data/tasks`.

All three end up as a `TaskData`: plain rows in one of three shapes,
- classification: `{"text", "text_pair"?, "label": int}`,
- regression: `{"text", "text_pair"?, "label": float}`,
- extractive QA (SQuAD format): `{"id", "question", "context", "answers": {"text", "answer_start"}}`.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

CLASSIFICATION = "text-classification"
REGRESSION = "regression"
EXTRACTIVE_QA = "extractive-qa"
TASK_TYPES = (CLASSIFICATION, REGRESSION, EXTRACTIVE_QA)

_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
# Fewer training rows than this cannot carry a task embedding: a file this small also gets no held-out
# validation rows (see `_hold_out_validation`), so its checkpoints would have no in-task metric either.
MIN_TRAIN_ROWS = 20
UNLABELLED = -1  # datasets' ClassLabel value (and GLUE's test-split label) for "no label"


@dataclass
class TaskData:
    """A task's rows per split, with what is needed to tune on it.

    Args:
        name: short task name, recorded in embeddings and model cards.
        task_type: one of `text-classification`, `regression`, `extractive-qa`.
        splits: split name -> rows (see the module docstring for the row shapes).
        labels: class names (index = label id) for classification, else None.
        pair: True when classification rows carry `text_pair`.
        source: where the task came from (folder, file or Hub id), for cards.
    """

    name: str
    task_type: str
    splits: dict[str, list[dict[str, Any]]]
    labels: list[str] | None = None
    pair: bool = False
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        if self.task_type == CLASSIFICATION:
            return len(self.labels or [])
        return 1 if self.task_type == REGRESSION else 2

    def train_rows(self, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Training rows, optionally a seeded random subset of `limit` rows."""
        return _subset(self.splits.get("train", []), limit, seed)

    def eval_rows(self, limit: int | None = None, split: str | None = None) -> list[dict[str, Any]]:
        """Evaluation rows: the named split, else validation, else test; first `limit` rows."""
        for name in ([split] if split else ["validation", "test"]):
            if name in self.splits:
                rows = self.splits[name]
                return rows[:limit] if limit else rows
        return []


def _subset(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    if not limit or limit >= len(rows):
        return rows
    picked = random.Random(seed).sample(range(len(rows)), limit)
    return [rows[i] for i in sorted(picked)]


def load_task(
    source: str | Path,
    *,
    name: str | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    task_type: str | None = None,
    question_column: str = "question",
    context_column: str = "context",
    answers_column: str = "answers",
    dataset_config: str | None = None,
) -> TaskData:
    """Load a task from a task folder, a local data file, or a Hub dataset.

    Args:
        source: a folder holding `task.json` (the `shared/data/tasks` layout), a `.csv`,
            `.tsv`, `.json`, `.jsonl` or `.parquet` file (its rows become the train split, with
            a seeded 10% held out as validation for the in-task metric), or
            a Hub dataset id, loaded with `datasets.load_dataset`.
        name: task name to record; defaults to the folder, file stem or dataset id.
        text_column, text_pair_column, label_column: columns of a file or Hub dataset.
        task_type: force `text-classification`, `regression` or `extractive-qa`; inferred
            from the label column (float labels -> regression) or the QA columns otherwise.
        question_column, context_column, answers_column: columns of a QA file or dataset.
        dataset_config: the configuration name of a Hub dataset, if it has several.

    Returns:
        A `TaskData`.

    Example:
        ```python
        >>> task = load_task("../shared/data/tasks/rotten_tomatoes")
        >>> task.labels
        ['rotten', 'fresh']
        ```
    """
    if task_type is not None and task_type not in TASK_TYPES:
        raise DataError(f"Unknown task type {task_type!r}. Use one of: {', '.join(TASK_TYPES)}.")
    path = Path(source).expanduser()
    columns = dict(text=text_column, text_pair=text_pair_column, label=label_column,
                   question=question_column, context=context_column, answers=answers_column)
    if path.is_dir():
        if (path / "task.json").is_file():
            return _load_task_folder(path, name)
        raise DataError(
            f"{path} is a folder without task.json. Pass a task folder (task.json + "
            "train.jsonl.gz ...), a data file (.csv/.json/.jsonl/.parquet) or a Hub dataset id."
        )
    if path.suffix.lower() in _FILE_BUILDERS or path.name.endswith((".jsonl.gz", ".json.gz")):
        if not path.is_file():
            raise DataError(f"Data file {path} does not exist. Check the path.")
        _check_file(path)
        return _load_with_datasets(path, name or path.name.split(".")[0], columns, task_type, None, is_file=True)
    if path.is_file():  # an existing file of another kind: not a Hub dataset id, whatever datasets would say
        raise DataError(f"Data file {path} has suffix {path.suffix or '(none)'!r}, which is not supported. Pass a "
                        f"{', '.join(sorted(_FILE_BUILDERS))}, .jsonl.gz or .json.gz file, or a task folder.")
    if _looks_like_path(str(source)):  # ./x, /x, ~/x, a/../b: a Hub id never looks like this
        raise DataError(f"{path} does not exist. Check the path.")
    if _is_builder_name(str(source)):
        raise DataError(f"{str(source)!r} names a loader of the datasets library, not a dataset: given no files it "
                        "reads whatever data files the working folder holds. Pass a data file (e.g. ./train.csv), a "
                        "task folder, or a Hub dataset id like 'owner/name'.")
    return _load_with_datasets(str(source), name or str(source).split("/")[-1], columns, task_type,
                               dataset_config, is_file=False)


def _looks_like_path(source: str) -> bool:
    """True for what only a local path can be (`./x`, `/x`, `~/x`, anything with `..`): Hub ids are `owner/name`."""
    return source.startswith((".", "/", "~")) or ".." in source or "\\" in source


def _is_builder_name(source: str) -> bool:
    """`csv`, `json`, `parquet`, `text`, `pandas`...: `datasets.load_dataset` builders, not Hub datasets (the
    Space refuses them the same way, `space._handlers._is_builder`)."""
    if "/" in source:
        return False
    try:
        from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES as builders
    except ImportError:  # another datasets layout: the builders every version has
        builders = ("arrow", "audiofolder", "csv", "imagefolder", "json", "pandas", "parquet", "sql", "text",
                    "videofolder", "webdataset", "xml")
    return source.strip().lower() in {name.lower() for name in builders}


def _check_file(path: Path) -> None:
    """Refuse, with the fix, the files `datasets` would fail on with a traceback: empty or not UTF-8 text."""
    if path.stat().st_size == 0:
        raise DataError(f"Data file {path} is empty. Add rows (a header line naming the columns, then one row per "
                        "example).")
    if path.suffix.lower() == ".parquet" or path.name.endswith(".gz"):
        return
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                bad = chunk[err.start]
                raise DataError(f"Data file {path} is not UTF-8 text (byte 0x{bad:02x} at offset {offset + err.start}). "
                                f"Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}`."
                                ) from None
            offset += len(chunk)


def _read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _load_task_folder(path: Path, name: str | None) -> TaskData:
    meta = json.loads((path / "task.json").read_text())
    splits = {}
    for split in ("train", "validation", "test"):
        for candidate in (path / f"{split}.jsonl.gz", path / f"{split}.jsonl"):
            if candidate.is_file():
                splits[split] = (_read_jsonl_gz(candidate) if candidate.suffix == ".gz"
                                 else [json.loads(l) for l in candidate.read_text().splitlines() if l.strip()])
                break
    if "train" not in splits:
        raise DataError(f"Task folder {path} has no train.jsonl.gz. Add the train split.")
    kind = meta.get("type", CLASSIFICATION)
    if kind not in TASK_TYPES:
        raise DataError(f"{path / 'task.json'} has type {kind!r}; expected one of {', '.join(TASK_TYPES)}.")
    return TaskData(name=name or meta.get("name", path.name), task_type=kind, splits=splits,
                    labels=meta.get("labels"), pair=bool(meta.get("pair", False)), source=str(path),
                    info={k: meta[k] for k in ("description", "source", "license") if k in meta})


def _load_with_datasets(source, name, columns, task_type, config, *, is_file: bool) -> TaskData:
    import datasets

    datasets.disable_progress_bars()
    try:
        if is_file:
            suffix = Path(source).suffix.lower()
            builder = _FILE_BUILDERS.get(suffix, "json")
            if builder == "csv":
                _check_csv_header(Path(source), "\t" if suffix == ".tsv" else ",")
            kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
            dataset = datasets.load_dataset(builder, data_files={"train": str(source)}, **kwargs)
        else:
            dataset = datasets.load_dataset(source, config)
    except Exception as err:  # noqa: BLE001 - datasets raises many types (DatasetGenerationError, ValueError, ...)
        cause = err.__cause__ or err  # DatasetGenerationError wraps the parser's error, which says what is wrong
        detail = f"{type(cause).__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''}"
        if is_file and "corresponds to no data" in str(err):
            raise DataError(f"Data file {source} has no rows (only a header?). Add rows, one per example.") from None
        fix = "Check that the file is well-formed" if is_file else "Check the dataset id (and its config) and your network"
        raise DataError(f"Could not load {'data file' if is_file else 'dataset'} {str(source)!r} ({detail}). {fix}.") from None
    splits_raw = {split: dataset[split] for split in dataset}
    if is_file and not any(len(rows) for rows in splits_raw.values()):
        raise DataError(f"Data file {source} has no rows (only a header?). Add rows, one per example.")
    guessed = is_file and _FILE_BUILDERS.get(Path(source).suffix.lower()) == "csv"
    return _hold_out_validation(task_from_columns(name, splits_raw, columns, task_type, source=str(source),
                                                  guessed_types=guessed))


def _check_csv_header(path: Path, delimiter: str) -> None:
    """Two columns of one name would be renamed (`text`, `text.1`) and one of them silently ignored."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), [])
    except csv.Error:  # a malformed first line: the parser's own error says what is wrong
        return
    seen = [name for name in header if name.strip()]
    twice = sorted({name for name in seen if seen.count(name) > 1})
    if twice:
        raise DataError(f"{path.name}: the header names column(s) {twice} more than once. Give every column its "
                        "own name.")


def _hold_out_validation(task: TaskData, share: float = 0.1, cap: int = 1000) -> TaskData:
    """A file with only training rows gets a seeded 10% validation split, so checkpoints get a metric."""
    if set(task.splits) != {"train"} or len(task.splits["train"]) < 20:
        return task
    rows = task.splits["train"]
    n_held = min(cap, max(1, int(share * len(rows))))
    if len(rows) - n_held < MIN_TRAIN_ROWS:
        return task  # a small file keeps every row for training rather than fall below the minimum
    held = set(random.Random(0).sample(range(len(rows)), n_held))
    task.splits = {"train": [r for i, r in enumerate(rows) if i not in held],
                   "validation": [r for i, r in enumerate(rows) if i in held]}
    return task


def task_from_columns(name: str, splits_raw: dict, columns: dict, task_type: str | None, source: str = "",
                      guessed_types: bool = False) -> TaskData:
    """Build a `TaskData` from split -> table (a `datasets.Dataset` or list of dicts).

    `guessed_types`: the column types were guessed from text (a CSV file), so a text column of numbers is
    texts that look like numbers; in typed formats (parquet, JSON, Hub datasets) it is the wrong column."""
    first = next(iter(splits_raw.values()))
    available = list(first.column_names) if hasattr(first, "column_names") else list(first[0].keys()) if len(first) else []
    is_qa = task_type == EXTRACTIVE_QA or (
        task_type is None and columns["label"] not in available
        and all(columns[c] in available for c in ("question", "context", "answers")))
    needed = [columns["question"], columns["context"], columns["answers"]] if is_qa else \
        [columns["text"], columns["label"]] + ([columns["text_pair"]] if columns["text_pair"] else [])
    missing = [c for c in needed if c not in available]
    if missing:
        flags = {"text": "--text-column", "text_pair": "--text-pair-column", "label": "--label-column",
                 "question": "--question-column", "context": "--context-column", "answers": "--answers-column"}
        hint = ", ".join(f"{flags[k]} (now {v!r})" for k, v in columns.items() if v in missing)
        raise DataError(f"{source or name}: column(s) {missing} not found; the data has columns {available}. "
                        f"Name the right ones with {hint}.")
    if is_qa:
        splits = {s: [_qa_row(r, columns) for r in rows] for s, rows in splits_raw.items()}
        return TaskData(name=name, task_type=EXTRACTIVE_QA, splits=splits, source=source)
    _check_column_types(splits_raw, [c for c in (columns["text"], columns["text_pair"]) if c], columns["label"],
                        source or name, texts_may_be_numbers=guessed_types)
    # The label set comes from the training split (and a ClassLabel's names): other splits may be unlabelled
    # (GLUE's test splits say -1) or lack a class, and an evaluation split must not add a class to the head.
    train_split = "train" if "train" in splits_raw else next(iter(splits_raw))
    raw_labels = [r[columns["label"]] for r in splits_raw[train_split]]
    if any(v is None for v in raw_labels):
        raise DataError(f"{source or name}: the label column {columns['label']!r} has empty values. Fill or drop those rows.")
    kind = task_type or _infer_label_kind(raw_labels, columns["label"], source or name)
    labels, to_id = None, None
    class_names = _class_label_names(splits_raw[train_split], columns["label"])
    if kind == CLASSIFICATION:
        labels, to_id = _class_ids(raw_labels, class_names, columns["label"], source or name)
    splits = {}
    text_columns = [columns["text"]] + ([columns["text_pair"]] if columns["text_pair"] else [])
    for split, rows in splits_raw.items():
        out, unknown, empty = [], 0, 0
        for r in rows:
            if any(r[c] is None or (isinstance(r[c], str) and not r[c].strip()) for c in text_columns):
                empty += 1  # an empty cell would be trained on as the text "None"
                continue
            value = r[columns["label"]]
            if kind == REGRESSION:
                if value is None:
                    continue
                label = float(value)
            else:
                label = _label_id(value, to_id)
                if label is None:  # unlabelled (None, -1) or a class the training split lacks
                    unknown += value is not None and value != UNLABELLED
                    continue
            row = {"text": str(r[columns["text"]])}
            if columns["text_pair"]:
                row["text_pair"] = str(r[columns["text_pair"]])
            row["label"] = label
            out.append(row)
        if unknown:
            warnings.warn(f"{source or name}: {unknown} {split} row(s) have a label the training split lacks; they "
                          "were left out (the task head has one output per training label).", stacklevel=2)
        if empty:
            warnings.warn(f"{source or name}: {empty} {split} row(s) have an empty text cell "
                          f"({' or '.join(repr(c) for c in text_columns)}); they were left out.", stacklevel=2)
        if out:
            splits[split] = out
    return TaskData(name=name, task_type=kind, splits=splits, labels=labels,
                    pair=bool(columns["text_pair"]), source=source)


def _class_ids(raw_labels: list, class_names: list[str] | None, label_column: str, where: str) -> tuple[list[str], dict]:
    """A classification task's label names and the map from a raw label to its id, from the training split's labels."""
    if class_names:  # ids index the names already
        return class_names, {i: i for i in range(len(class_names))}
    if all(isinstance(v, bool) or (isinstance(v, (int, float)) and float(v).is_integer()) for v in raw_labels):
        names = sorted({int(v) for v in raw_labels})  # 0..n-1 keep their ids; others (-1/1, 1..5) are renumbered
        if UNLABELLED in names and 0 in names:  # ids from 0 with -1: datasets' "no label", as GLUE's test rows
            names.remove(UNLABELLED)
            dropped = sum(1 for v in raw_labels if not isinstance(v, bool) and int(v) == UNLABELLED)
            warnings.warn(f"{where}: {dropped} training row(s) labelled {UNLABELLED} (the datasets "
                          "library's value for 'no label') were left out. If -1 is a class here, relabel it.",
                          stacklevel=3)  # task_from_columns' caller, as before this was split out
        return [str(v) for v in names], {v: i for i, v in enumerate(names)}
    labels = sorted({str(v) for v in raw_labels})
    _check_label_words(labels, label_column, where)
    return labels, {v: i for i, v in enumerate(labels)}

_KINDS = {"dict": "record", "Sequence": "list", "List": "list", "LargeList": "list"}


def _column_kind(table, column: str) -> str | None:
    """'text', 'number', 'bool' or the name of another type a column holds (None: no value to tell)."""
    feature = table.features.get(column) if hasattr(table, "features") else None
    if feature is not None:
        if type(feature).__name__ == "ClassLabel":
            return "number"
        dtype = getattr(feature, "dtype", None)
        if type(feature).__name__ != "Value" or dtype is None:
            return _KINDS.get(type(feature).__name__, type(feature).__name__.lower())  # Sequence, List, a record...
        return "text" if "string" in dtype else "bool" if dtype == "bool" else "number" if dtype != "null" else None
    value = next((r[column] for r in table if r.get(column) is not None), None)
    if value is None:
        return None
    return ("text" if isinstance(value, str) else "bool" if isinstance(value, bool)
            else "number" if isinstance(value, (int, float)) else _KINDS.get(type(value).__name__, type(value).__name__))


def _check_column_types(splits_raw: dict, text_columns: list[str], label_column: str, where: str,
                        texts_may_be_numbers: bool = False) -> None:
    """Texts must be strings and labels scalars: a list or record in a text column is a wrong column, and so is a
    number where the file's format says what is a number."""
    allowed = (None, "text", "number", "bool") if texts_may_be_numbers else (None, "text")
    for rows in splits_raw.values():
        for column in text_columns:
            kind = _column_kind(rows, column)
            if kind not in allowed:
                raise DataError(f"{where}: the text column {column!r} holds {kind} values, not text. Name the column "
                                "that holds the texts (--text-column / --text-pair-column).")
        kind = _column_kind(rows, label_column)
        if kind not in (None, "text", "number", "bool"):
            raise DataError(f"{where}: the label column {label_column!r} holds {kind} values; each row needs one "
                            "label (a class name or number). Name the right column with --label-column.")


def _check_label_words(labels: list[str], column: str, where: str) -> None:
    """Class names that mix numbers and words (`pos`, `neg`, `1.5`) are a broken column, not a label set."""
    def is_number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    numbers = [v for v in labels if is_number(v)]
    if numbers and len(numbers) < len(labels):
        words = [v for v in labels if not is_number(v)]
        raise DataError(f"{where}: the label column {column!r} mixes numbers ({', '.join(numbers[:3])}) and words "
                        f"({', '.join(words[:3])}). Use one kind of label for every row.")


def _class_label_names(table, column: str) -> list[str] | None:
    """The names of a `datasets.ClassLabel` column, else None."""
    feature = getattr(table, "features", {}).get(column) if hasattr(table, "features") else None
    names = getattr(feature, "names", None)
    return list(names) if names else None


def _label_id(value, to_id: dict) -> int | None:
    if value is None:
        return None
    key = str(value) if isinstance(next(iter(to_id), None), str) else value
    if not isinstance(key, str):
        if isinstance(key, float) and not key.is_integer():
            return None
        key = int(key)
    return to_id.get(key)


def check_trainable(task: TaskData, rows: list[dict]) -> None:
    """Refuse training rows that cannot carry a task: too few, or nothing to learn (one label, one value).

    Raises:
        DataError: naming what is wrong and what to do.
    """
    where = f"Task {task.name!r}" + (f" ({task.source})" if task.source else "")
    if len(rows) < MIN_TRAIN_ROWS:
        raise DataError(f"{where} has {len(rows)} training rows; at least {MIN_TRAIN_ROWS} are needed to tune a "
                        "task embedding (the packaged registry's recipe uses 1,000). Add rows.")
    if task.task_type == CLASSIFICATION:
        seen = {r["label"] for r in rows}
        if len(seen) < 2:
            only = next(iter(seen))
            name = task.labels[only] if task.labels and 0 <= only < len(task.labels) else only
            raise DataError(f"{where}: every training row has label {name!r}; a task needs at least two labels (one "
                            "label teaches nothing, and its embedding would be all zeros). Check the label column "
                            "(--label-column) or add rows of the other classes.")
    elif task.task_type == REGRESSION:
        seen = {r["label"] for r in rows}
        if len(seen) < 2:
            raise DataError(f"{where}: every training row has the value {next(iter(seen))}; a regression task needs "
                            "targets that vary. Check the label column (--label-column).")
    elif task.task_type == EXTRACTIVE_QA and not any(r["answers"]["text"] for r in rows):
        raise DataError(f"{where}: no training row has an answer; extractive QA needs answer spans to learn from. "
                        "Check the answers column (--answers-column).")


def _infer_label_kind(values: list, column: str = "label", where: str = "") -> str:
    """Regression when the labels are numbers and some are not whole; classification otherwise.

    Whole-number classes with a few fractional values (0/1 plus one 0.5) are refused rather than read
    as a regression task: a typo would otherwise silently change what is tuned.
    """
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    fractional = [v for v in numeric if isinstance(v, float) and not float(v).is_integer()]
    if len(numeric) == len(values) and fractional:
        if any(math.isnan(v) for v in numeric):
            raise DataError("The label column holds NaN values. Drop those rows.")
        if any(math.isinf(v) for v in numeric):
            raise DataError(f"{where + ': ' if where else ''}the label column {column!r} holds infinite values "
                            "(a number too large for a float, e.g. 1e999). Fix or drop those rows.")
        whole = {v for v in numeric if float(v).is_integer()}
        if len(fractional) <= 0.05 * len(values) and 2 <= len(whole) <= 10:
            shown = ", ".join(f"{v:g}" for v in sorted(whole))
            odd = ", ".join(f"{v:g}" for v in sorted(set(fractional))[:3])
            raise DataError(f"{where + ': ' if where else ''}the label column {column!r} holds classes ({shown}) in "
                            f"{len(values) - len(fractional)} rows but {len(fractional)} fractional value(s) ({odd}), "
                            "so it is unclear whether this is classification or regression. Fix those rows, or pass "
                            "--task-type regression (task_type='regression') for a numeric target.")
        return REGRESSION
    return CLASSIFICATION


def _qa_row(r: dict, columns: dict) -> dict:
    answers = r[columns["answers"]]
    where = f"row {r.get('id', '?')!r}"
    if isinstance(answers, str):
        try:
            answers = json.loads(answers)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: the answers column is not JSON ({err.msg}). Write it as "
                            '{"text": [...], "answer_start": [...]}.') from err
    if not isinstance(answers, dict):
        raise DataError(f'{where}: answers must be {{"text": [...], "answer_start": [...]}}, not {type(answers).__name__}.')
    texts, starts = list(answers.get("text") or []), list(answers.get("answer_start") or [])
    context = r[columns["context"]]
    if len(texts) != len(starts):
        raise DataError(f"{where}: {len(texts)} answer texts but {len(starts)} answer_start values; give one start "
                        "per answer (SQuAD format).")
    for text, start in zip(texts, starts):
        if not isinstance(text, str) or not text or not isinstance(start, int) or start < 0 or \
                not isinstance(context, str) or context[start:start + len(text)] != text:
            raise DataError(f"{where}: answer {text!r} at {start!r} is not the context's text at that offset; "
                            "answer_start must be the character offset of a non-empty answer in the context.")
    return {"id": str(r.get("id", "")), "question": r[columns["question"]], "context": context,
            "answers": {"text": texts, "answer_start": starts}}
