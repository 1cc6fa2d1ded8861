"""A visitor's data as a task: an uploaded file or a Hub dataset id, read within the Space's limits.

Every message names the visitor's file or dataset, never a path of the server; a dataset id is only ever a Hub
id (never a path, a URL or one of `datasets`' own loader names, which would read the server's files).
"""

from __future__ import annotations

import os

from ..data import CLASSIFICATION, TaskData
from ..errors import DataError
from ._config import SpaceConfig, is_hub_id
from ._uploads import UploadLimits, check_data_file, read_header, read_rows, safe_stem

HUB_SHUFFLE_BUFFER = 1_000  # rows of a Hub split read beyond max_rows, to mix the first rows a little


def data_columns(file_path: str | None, config: SpaceConfig) -> list[str]:
    """Column names of an uploaded data file (for the pickers)."""
    if not file_path:
        return []
    return read_header(check_data_file(file_path, config.limits))


def _guess(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def guess_columns(columns: list[str]) -> tuple[str | None, str | None]:
    """(text, label) columns worth preselecting."""
    text = _guess(columns, ("text", "sentence", "review", "content", "document", "question", "premise", "sentence1"))
    label = _guess(columns, ("label", "labels", "class", "target", "score", "stars", "sentiment", "category"))
    if text is None:
        text = next((c for c in columns if c != label), None)
    return text, label


def dataset_info(dataset_id: str, dataset_config: str | None = None) -> dict[str, list[str]]:
    """Configs, splits and columns of a Hub dataset (for the pickers)."""
    dataset_id = _check_dataset_id(dataset_id)
    import datasets

    try:
        # token=False: a visitor's id is read as a visitor would, never with the operator's HF_TOKEN or login
        configs = datasets.get_dataset_config_names(dataset_id, token=False)
        config = dataset_config or (configs[0] if configs else None)
        splits = datasets.get_dataset_split_names(dataset_id, config, token=False)
        split = "train" if "train" in splits else (splits[0] if splits else None)
        features = datasets.load_dataset_builder(dataset_id, config, token=False).info.features
        if not features and split:  # not declared in the card: read the first row, streamed (no full download)
            features = next(iter(datasets.load_dataset(dataset_id, config, split=split, streaming=True,
                                                       token=False)), {})
    except Exception as err:  # noqa: BLE001 - datasets raises many types for one cause: not found/unreachable
        raise DataError(f"Could not read Hub dataset {dataset_id!r} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200] if str(err) else ''}). Check the id and its visibility.") from None
    return {"configs": list(configs), "splits": list(splits), "columns": list(features) if features else []}


def _check_dataset_id(dataset_id: str | None) -> str:
    dataset_id = (dataset_id or "").strip()
    if not is_hub_id(dataset_id, owner=False) or ".." in dataset_id or os.path.exists(dataset_id) or _is_builder(dataset_id):
        raise DataError(f"{dataset_id!r} is not a Hub dataset id. Use the form 'owner/name' or 'name' "
                        "(e.g. 'cornell-movie-review-data/rotten_tomatoes'), or upload a file instead.")
    return dataset_id


def _is_builder(dataset_id: str) -> bool:
    """`csv`, `json`, `parquet`, `text`, `pandas`...: datasets' own loaders read files of the server's working
    folder when given no data files (and `pandas` unpickles), so such names are never a visitor's dataset."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return dataset_id.split("/")[-1].lower() in {name.lower() for name in _PACKAGED_DATASETS_MODULES} \
        and "/" not in dataset_id


def _task_from_hub(dataset_id: str, dataset_config: str | None, split: str | None, columns: dict,
                   limits: UploadLimits) -> tuple[TaskData, str]:
    import datasets

    from ..data import _hold_out_validation, task_from_columns

    dataset_id = _check_dataset_id(dataset_id)
    split = split or "train"
    try:
        # Streamed: only the rows used are downloaded (a visitor may name a multi-GB dataset), read without the
        # operator's token. A small seeded buffer (and shard order) mixes them; the buffer fills before the first
        # row comes out, so its size is what is read beyond max_rows.
        stream = datasets.load_dataset(dataset_id, dataset_config or None, split=split, streaming=True, token=False)
        buffer = min(HUB_SHUFFLE_BUFFER, limits.max_rows)
        rows = list(stream.shuffle(seed=0, buffer_size=buffer).take(limits.max_rows + 1))
    except Exception as err:  # noqa: BLE001
        raise DataError(f"Could not load split {split!r} of Hub dataset {dataset_id!r} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200] if str(err) else ''}). Check the id, config and split.") from None
    note = ""
    cut = len(rows) > limits.max_rows
    if cut:
        rows = rows[:limits.max_rows]
        note = (f"The split has more than {limits.max_rows:,} rows; {limits.max_rows:,} of its first rows were read "
                f"(mixed in a seeded buffer of {min(HUB_SHUFFLE_BUFFER, limits.max_rows):,}).")
    if not rows:
        raise DataError(f"Split {split!r} of Hub dataset {dataset_id!r} has no rows. Pick another split.")
    features = getattr(stream, "features", None)
    try:  # keeps a ClassLabel's names (and so the number of classes the split has)
        table = datasets.Dataset.from_list(rows, features=features)
    except Exception:  # noqa: BLE001 - features that do not fit the rows as streamed: the rows' own types
        table = datasets.Dataset.from_list(rows)
    if cut:
        _check_classes_seen(table, columns.get("label"), dataset_id, split, limits)
    _check_columns(list(table.column_names), columns, dataset_id)
    name = dataset_id.split("/")[-1]
    task = _hold_out_validation(task_from_columns(name, {"train": table}, columns, None, source=dataset_id))
    task.info["dataset"] = dataset_id
    return task, note


def _check_classes_seen(table, label_column: str | None, dataset_id: str, split: str, limits: UploadLimits) -> None:
    """A split read only in part must show every class its ClassLabel names: a split sorted by label (one
    class after another, as many are) would otherwise be tuned on its first few classes without a word."""
    feature = table.features.get(label_column) if label_column else None
    names = getattr(feature, "names", None)
    if not names:
        return
    seen = set(table[label_column])
    if len(seen) < len(names):
        raise DataError(f"The first {limits.max_rows:,} rows of split {split!r} of {dataset_id!r} hold {len(seen)} of "
                        f"its {len(names)} classes (the split is probably sorted by label) and this Space reads no "
                        "more. Upload a shuffled sample of it as a file.")


def _task_from_file(file_path: str, columns: dict, limits: UploadLimits) -> TaskData:
    """An uploaded file as a task: only the picked columns, read within the row and decoded-size limits, and
    named by the visitor's file name (never the server's upload path) in every message and in the embedding."""
    from ..data import _hold_out_validation, task_from_columns

    path = check_data_file(file_path, limits)
    _check_columns(read_header(path), columns, path.name)
    wanted = [c for c in (columns["text"], columns["text_pair"], columns["label"]) if c]
    table = read_rows(path, list(dict.fromkeys(wanted)), limits)
    full = {**columns, "question": "question", "context": "context", "answers": "answers"}
    try:
        task = task_from_columns(safe_stem(path.name), {"train": table}, full, None, source=path.name,
                                 guessed_types=path.suffix.lower() in (".csv", ".tsv"))
    except (DataError, TypeError, ValueError) as err:  # labels of mixed kinds and the like: the visitor's file
        raise DataError(f"{path.name}: {str(err).splitlines()[0][:300]}" if not isinstance(err, DataError)
                        else str(err)) from None
    task.source = path.name
    return _hold_out_validation(task)


def _check_columns(available: list[str], columns: dict, source: str) -> None:
    pickers = {"text": "text column", "text_pair": "second text column", "label": "label column"}
    for key in ("text", "label"):
        if not columns.get(key):
            raise DataError(f"Pick the {pickers[key]} (the file has columns {available}).")
    missing = [(k, v) for k, v in columns.items() if k in pickers and v and v not in available]
    if missing:
        what = ", ".join(f"{pickers[k]} {v!r}" for k, v in missing)
        raise DataError(f"{source}: {what} not found; the columns are {available}. Pick one of those.")
    if columns["text"] == columns["label"]:
        raise DataError("The text and label columns are the same column. Pick a different label column.")


def _check_rows(task: TaskData, limits: UploadLimits, source: str) -> int:
    n = sum(len(rows) for rows in task.splits.values())
    if n < limits.min_rows:
        raise DataError(f"{source} has {n} labelled row(s); at least {limits.min_rows} are needed to tune "
                        "(the recipe uses up to 1,000). Add rows.")
    if n > limits.max_rows:
        raise DataError(f"{source} has {n:,} rows, over this Space's limit of {limits.max_rows:,}. Upload a "
                        "random sample (the recipe uses 1,000 rows).")
    if task.task_type == CLASSIFICATION:
        seen = {r["label"] for rows in task.splits.values() for r in rows}
        if len(seen) < 2:
            only = task.labels[next(iter(seen))] if task.labels and seen else "?"
            raise DataError(f"{source}: every row has the same label ({only!r}); a classification task needs at least "
                            "two. Check the label column.")
    return n
