"""Safe handling of what a visitor uploads: data files (size, encoding, header) and adapter zips.

Everything here raises `UploadError` (a `TaskEmbHubError`) with a message that names the problem
and the fix, so the page can show it and the server keeps serving.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..adapters import CONFIG_NAME
from ..errors import TaskEmbHubError

DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
# Pickle-based weight formats: unpickling runs code from the file, so a zip holding one is refused.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
# What an adapter folder legitimately holds; anything else in a zip is ignored, never extracted.
ADAPTER_SUFFIXES = (".json", ".safetensors", ".md", ".txt")


class UploadError(TaskEmbHubError):
    """An uploaded file is too big, not readable as asked, or unsafe to open."""


@dataclass
class UploadLimits:
    """Limits on what a visitor may upload.

    Args:
        max_file_bytes: largest data file or adapter zip accepted.
        max_unzipped_bytes: largest total size of the files extracted from an adapter zip.
        max_zip_members: most entries an adapter zip may hold.
        max_rows: most rows read from a data file or Hub split; more are refused (files) or
            cut to the first `max_rows` (Hub splits), before the recipe keeps its 1,000.
        min_rows: fewest labelled rows worth tuning on.
        max_decoded_bytes: most bytes the used columns of a data file may decode to (a few KB of
            parquet can decode to gigabytes); checked before each batch of rows is materialised.
        max_compression_ratio: an adapter zip member over 1 MB that unpacks to more than this many
            times its compressed size is refused (weights barely compress; zip bombs do).
        max_adapter_bytes: largest adapter weights file read from a Hub repo (checked before download).
    """

    max_file_bytes: int = 20 * 1024 * 1024
    max_unzipped_bytes: int = 200 * 1024 * 1024
    max_zip_members: int = 64
    max_rows: int = 100_000
    min_rows: int = 32
    max_decoded_bytes: int = 256 * 1024 * 1024
    max_compression_ratio: float = 100.0
    max_adapter_bytes: int = 200 * 1024 * 1024


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def check_data_file(path: str | os.PathLike, limits: UploadLimits) -> Path:
    """A data file's suffix, size and (for text formats) UTF-8 encoding; returns its path.

    Raises:
        UploadError: unknown suffix, empty, too big, or not UTF-8.
    """
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise UploadError(f"{name}: unsupported file type {suffix or '(none)'!r}. Upload a "
                          f"{', '.join(DATA_SUFFIXES)} file.")
    size = path.stat().st_size
    if size == 0:
        raise UploadError(f"{name} is empty. Upload a file with a header and at least a few dozen labelled rows.")
    if size > limits.max_file_bytes:
        raise UploadError(f"{name} is {_mb(size)}, over this Space's limit of {_mb(limits.max_file_bytes)}. "
                          f"Upload a sample (the recipe uses 1,000 rows).")
    if suffix in TEXT_SUFFIXES:
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UploadError(f"{name} is not UTF-8 text (byte {err.start}: {raw[err.start:err.start + 1]!r}). "
                              "Save it as UTF-8 (e.g. pandas `to_csv(..., encoding='utf-8')`) and upload it again.") from None
        rows = raw.count(b"\n")
    else:  # parquet compresses well: a small file can hold millions of rows; its footer says how many
        try:
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(path).metadata.num_rows
        except Exception as err:  # noqa: BLE001 - any unreadable footer is a bad upload
            raise UploadError(f"{name} is not a readable parquet file ({type(err).__name__}). Re-save it and upload "
                              "it again.") from None
    if rows > limits.max_rows + 1:  # (+1: a header line)
        raise UploadError(f"{name} holds about {rows:,} rows, over this Space's limit of {limits.max_rows:,}. "
                          "Upload a sample (the recipe uses 1,000 rows).")
    return path


def read_header(path: str | os.PathLike) -> list[str]:
    """The column names of a data file, read without loading the whole file.

    Raises:
        UploadError: no header or no columns.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's "CSV UTF-8" BOM
                header = next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), [])
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            header = list(pq.read_schema(path).names)
        else:
            header = _json_header(path)
    except UploadError:
        raise
    except Exception as err:  # a malformed file of any kind: say which and why
        raise UploadError(f"{path.name} could not be read as {suffix[1:]} ({type(err).__name__}: {err}). "
                          "Check the file's format.") from None
    header = [h for h in (c.strip() for c in header) if h]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:  # pandas would rename one (`text.1`) and the pick would silently read the other
        raise UploadError(f"{path.name}: the header names column(s) {twice} more than once. Give every column its "
                          "own name and upload it again.")
    if not header:
        raise UploadError(f"{path.name} has no header row / column names. Add one (e.g. `text,label`).")
    return header


def _json_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig") as handle:
        first = handle.read(1 << 20).lstrip()
    if first.startswith("["):  # a JSON array of records: its first record only, not the whole array
        row = next(_json_array_records(Path(path).read_text(encoding="utf-8-sig")), None)
    else:
        line = first.splitlines()[0] if first else ""
        row = json.loads(line) if line else None
    if not isinstance(row, dict):
        raise UploadError(f"{path.name}: the first record is not a JSON object. Use one object per line (JSONL).")
    return list(row)


def extract_adapter_zip(zip_path: str | os.PathLike, into: str | os.PathLike, limits: UploadLimits) -> Path:
    """Extract an adapter zip safely and return the folder holding `adapter_config.json`.

    Refused (with `UploadError`): not a zip, too big, too many members, absolute paths, `..`
    components, symbolic links, pickle weight files (`.bin`, `.pt`, ...), a member larger
    than `max_unzipped_bytes` in total (zip bombs), or no `adapter_config.json` at all. Only
    JSON, safetensors and text files are written; anything else in the zip is skipped.
    """
    zip_path, into = Path(zip_path), Path(into)
    size = zip_path.stat().st_size
    if size > limits.max_file_bytes:
        raise UploadError(f"{zip_path.name} is {_mb(size)}, over this Space's limit of {_mb(limits.max_file_bytes)}. "
                          "Upload the adapter folder only (adapter_config.json + adapter_model.safetensors).")
    if not zipfile.is_zipfile(zip_path):
        raise UploadError(f"{zip_path.name} is not a zip file. Zip the adapter folder "
                          "(adapter_config.json + adapter_model.safetensors) and upload the .zip.")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            if len(members) > limits.max_zip_members:
                raise UploadError(f"{zip_path.name} holds {len(members)} entries (limit {limits.max_zip_members}). "
                                  "Zip only the adapter folder.")
            total = 0
            wanted = []
            for info in members:
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if name.startswith(("/", "\\")) or (parts and parts[0].endswith(":")) or ".." in parts:
                    raise UploadError(f"{zip_path.name}: entry {scrub_paths(repr(name))} points outside the folder (absolute path or "
                                      "'..'). Zip the adapter folder itself.")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UploadError(f"{zip_path.name}: entry {scrub_paths(repr(name))} is a symbolic link. Zip real files only.")
                if info.is_dir():
                    continue
                lower = name.lower()
                if lower.endswith(PICKLE_SUFFIXES):
                    raise UploadError(f"{zip_path.name}: {name!r} is a pickle-format file, which can run code when "
                                      "loaded; this Space reads safetensors only. Re-save the adapter with "
                                      "`save_pretrained(..., safe_serialization=True)` and zip that folder.")
                if not lower.endswith(ADAPTER_SUFFIXES) or parts[-1].startswith("."):
                    continue
                total += info.file_size
                if total > limits.max_unzipped_bytes:
                    raise UploadError(f"{zip_path.name} unpacks to more than {_mb(limits.max_unzipped_bytes)}. "
                                      "Upload a single adapter.")
                if info.file_size > 1024 * 1024 and info.file_size > limits.max_compression_ratio * max(
                        info.compress_size, 1):
                    raise UploadError(f"{zip_path.name}: an entry unpacks to {info.file_size / max(info.compress_size, 1):,.0f} "
                                      f"times its packed size (limit {limits.max_compression_ratio:g}), as zip bombs "
                                      "do. Zip the adapter folder's real files.")
                wanted.append((info, parts))
            into.mkdir(parents=True, exist_ok=True)
            for info, parts in wanted:
                target = into.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    # Copy at most the declared size (+1 to detect a lying header): a bomb cannot grow past it.
                    data = src.read(info.file_size + 1)
                    if len(data) > info.file_size:
                        raise UploadError(f"{zip_path.name}: entry {info.filename!r} is larger than its header says. "
                                          "Re-create the zip.")
                    dst.write(data)
    except UploadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, NotImplementedError, EOFError,
            ValueError) as err:  # damaged, encrypted, unsupported compression, odd names: the visitor's zip
        raise UploadError(f"{zip_path.name} cannot be unpacked ({type(err).__name__}). Re-create the zip from the "
                          "adapter folder (adapter_config.json + adapter_model.safetensors) and upload it again.") from None
    configs = sorted(into.rglob(CONFIG_NAME), key=lambda p: len(p.parts))
    if not configs:
        raise UploadError(f"{zip_path.name} holds no {CONFIG_NAME}, so it is not a PEFT adapter. Zip the folder "
                          "that peft's save_pretrained wrote.")
    if len(configs) > 1:  # which one would be ranked is a guess the visitor never sees
        raise UploadError(f"{zip_path.name} holds {len(configs)} adapters ({CONFIG_NAME} in several folders). Zip "
                          "one adapter folder per upload.")
    return configs[0].parent


# ---- nothing of the server's file system reaches a visitor -----------------------------------------------------
# An absolute path (POSIX, `~/...`, `C:\...`, `file:///...`), not inside an http(s) URL; and the names Python's
# tempfile gives folders. Visitors' own strings that look like paths are replaced too: the page cannot tell them apart.
_URL_OR_PATH = re.compile(
    r"((?!file:)[a-z][a-z0-9+.-]*://[^\s'\"`<>()\[\]]*)"  # a URL (https://, hf://) is kept; file:// is a path
    r"|(?<![\w.~/\\%-])((?:file://|~|[A-Za-z]:|\.\.?)?[\\/][A-Za-z0-9._~][^\s'\"`<>()\[\]{},;]*[^\s'\"`<>()\[\]{},;.:!?])")
# The names Python's tempfile gives (`tmp` + 8 of [a-z0-9_]) and this Space's own temporary folders.
_TEMP_NAME = re.compile(r"\b(?:tmp|taskemb-(?:adapter|visitor)-|answer-)[a-z0-9_]{8}\b")
PATH_PLACEHOLDER = "<path>"


def scrub_paths(text: str) -> str:
    """`text` with every absolute path and temporary folder name replaced by `<path>` (URLs are kept).

    The one helper every message, table cell and downloadable file of the Space goes through.
    """
    if not isinstance(text, str) or not text:
        return text
    text = _URL_OR_PATH.sub(lambda m: m.group(1) or PATH_PLACEHOLDER, text)
    return _TEMP_NAME.sub(PATH_PLACEHOLDER, text)


def scrub_obj(value: Any) -> Any:
    """`scrub_paths` applied to every string (keys too) of a JSON-like value."""
    if isinstance(value, str):
        return scrub_paths(value)
    if isinstance(value, dict):
        return {scrub_obj(k): scrub_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_obj(v) for v in value]
    return value


# ---- reading a data file without materialising more than the limits allow -------------------------------------
def _too_many_rows(name: str, limits: UploadLimits) -> UploadError:
    return UploadError(f"{name} holds more than {limits.max_rows:,} rows, this Space's limit. Upload a sample "
                       "(the recipe uses 1,000 rows).")


def _too_big_decoded(name: str, limits: UploadLimits) -> UploadError:
    return UploadError(f"{name} decodes to more than {_mb(limits.max_decoded_bytes)} in the chosen columns, this "
                       "Space's limit (a compressed file can hold far more than its size). Upload a sample with "
                       "shorter texts (the recipe uses 1,000 rows).")


def read_rows(path: str | os.PathLike, columns: list[str], limits: UploadLimits):
    """The `columns` of a checked data file as an in-memory `datasets.Dataset`, read within the limits.

    Parquet: the footer's row count, column types and declared sizes are checked before any row group is
    read; rows are then read in batches of dictionary-encoded strings, and each batch's decoded size is
    computed from the dictionary before it is expanded. Text formats: at most `max_rows` rows are parsed
    (the file's size, checked by `check_data_file`, bounds their bytes).

    Raises:
        UploadError: too many rows, too many decoded bytes, a nested column, a malformed file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            table = _read_parquet(path, columns, limits)
        elif suffix in (".csv", ".tsv"):
            table = _read_csv(path, columns, limits, "\t" if suffix == ".tsv" else ",")
        else:
            table = _read_json(path, columns, limits)
    except UploadError:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed file of any kind: say which and why, never where
        detail = scrub_paths(str(err).splitlines()[0][:200]) if str(err) else ""
        raise UploadError(f"{path.name} could not be parsed ({type(err).__name__}{': ' + detail if detail else ''}). "
                          "Check its format.") from None
    if table.nbytes > limits.max_decoded_bytes:
        raise _too_big_decoded(path.name, limits)
    if table.num_rows == 0:
        raise UploadError(f"{path.name} has no rows (only a header?). Add rows, one per example.")
    import datasets

    return datasets.Dataset(table)


def _read_parquet(path: Path, columns: list[str], limits: UploadLimits):
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata  # the footer only
    schema = pq.read_schema(path)
    if meta.num_rows > limits.max_rows:
        raise _too_many_rows(path.name, limits)
    text_like = []
    for name in columns:
        kind = schema.field(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            text_like.append(name)
        elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise UploadError(f"{path.name}: column {name!r} holds {kind}, not text or numbers. Save the text and "
                              "label columns as strings or numbers.")
    _check_parquet_sizes(path, meta, columns, limits)
    batches, rows, decoded = [], 0, 0
    # Strings stay dictionary-encoded while their decoded size is summed: a repeated 1 MB string costs 1 MB.
    reader = pq.ParquetFile(path, read_dictionary=text_like)
    for batch in reader.iter_batches(batch_size=1024, columns=columns, use_threads=False):
        rows += batch.num_rows
        decoded += _decoded_bytes(batch)
        if rows > limits.max_rows:
            raise _too_many_rows(path.name, limits)
        if decoded > limits.max_decoded_bytes:
            raise _too_big_decoded(path.name, limits)
        arrays = [a.dictionary_decode() if pa.types.is_dictionary(a.type) else a for a in batch.columns]
        batches.append(pa.RecordBatch.from_arrays(arrays, names=batch.schema.names))
    if not batches:
        return pa.table({name: pa.array([], pa.string()) for name in columns})
    return pa.Table.from_batches(batches)


def _check_parquet_sizes(path: Path, meta, columns: list[str], limits: UploadLimits) -> None:
    """The declared sizes of the used column chunks: plausible, and within the decoded-bytes limit."""
    size, declared, wanted = path.stat().st_size, 0, set(columns)
    for r in range(meta.num_row_groups):
        group = meta.row_group(r)
        if group.num_rows < 0:
            raise UploadError(f"{path.name} has a damaged footer (negative row count). Re-save it.")
        for j in range(group.num_columns):
            chunk = group.column(j)
            if chunk.path_in_schema not in wanted:
                continue
            if chunk.total_uncompressed_size < 0 or not 0 <= chunk.total_compressed_size <= size:
                raise UploadError(f"{path.name} has a damaged footer (column sizes that do not fit the file). "
                                  "Re-save it.")
            declared += chunk.total_uncompressed_size
    if declared > limits.max_decoded_bytes:
        raise _too_big_decoded(path.name, limits)


def _decoded_bytes(batch) -> int:
    """What a record batch takes once its dictionary-encoded strings are expanded, computed without expanding them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for array in batch.columns:
        if pa.types.is_dictionary(array.type):
            lengths = pc.binary_length(array.dictionary) if (
                pa.types.is_string(array.type.value_type) or pa.types.is_large_string(array.type.value_type)
            ) else pa.array([8] * len(array.dictionary))
            total += int(pc.sum(pc.take(lengths, array.indices)).as_py() or 0) + 8 * len(array)
        else:
            total += array.nbytes
    return total


def _read_csv(path: Path, columns: list[str], limits: UploadLimits, sep: str):
    import pandas as pd
    import pyarrow as pa

    frame = pd.read_csv(path, sep=sep, nrows=limits.max_rows + 1, usecols=lambda c: str(c).strip() in columns,
                        encoding="utf-8-sig")
    if len(frame) > limits.max_rows:
        raise _too_many_rows(path.name, limits)
    frame.columns = [str(c).strip() for c in frame.columns]
    return pa.Table.from_pandas(frame[columns], preserve_index=False)


def _read_json(path: Path, columns: list[str], limits: UploadLimits):
    import pyarrow as pa

    text = path.read_text(encoding="utf-8-sig")  # at most max_file_bytes: check_data_file ran first
    stripped = text.lstrip()
    records = _json_array_records(stripped) if stripped.startswith("[") else _json_lines(stripped)
    rows = []
    for record in records:
        if not isinstance(record, dict):
            raise UploadError(f"{path.name}: record {len(rows) + 1} is not a JSON object. Use one object per line "
                              "(JSONL) or an array of objects.")
        rows.append({name: record.get(name) for name in columns})
        if len(rows) > limits.max_rows:
            raise _too_many_rows(path.name, limits)
    if not rows:
        return pa.table({name: pa.array([], pa.string()) for name in columns})
    return pa.Table.from_pylist(rows)


def _json_lines(text: str):
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


def _json_array_records(text: str):
    """The records of a JSON array, one at a time (parsing stops where the caller stops asking)."""
    decoder, i, n = json.JSONDecoder(), text.index("[") + 1, len(text)
    while True:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            raise ValueError("the JSON array is not closed")
        if text[i] == "]":
            return
        record, i = decoder.raw_decode(text, i)
        yield record


def zip_folder(folder: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """Zip a folder's files (flat, no parent folders) for a download."""
    zip_path = Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(Path(folder).iterdir()):
            if file.is_file():
                archive.write(file, file.name)
    return zip_path


def safe_stem(name: str) -> str:
    """A file-name-safe task name from an uploaded file's name (no folders, no odd characters)."""
    stem = Path(name).name.split(".")[0]
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-_")
    return cleaned[:64] or "my-task"


__all__ = ["UploadError", "UploadLimits", "check_data_file", "read_header", "read_rows", "extract_adapter_zip",
           "zip_folder", "safe_stem", "scrub_paths", "scrub_obj"]
