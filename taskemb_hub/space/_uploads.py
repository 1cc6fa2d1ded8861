"""Safe handling of what a visitor uploads: data files (size, encoding, header) and adapter zips.

Everything here raises `UploadError` (a `TaskEmbHubError`) with a message that names the problem
and the fix, so the page can show it and the server keeps serving.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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
            subsampled with a fixed seed (Hub splits), before the recipe keeps its 1,000.
        min_rows: fewest labelled rows worth tuning on.
    """

    max_file_bytes: int = 20 * 1024 * 1024
    max_unzipped_bytes: int = 200 * 1024 * 1024
    max_zip_members: int = 64
    max_rows: int = 100_000
    min_rows: int = 32


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
    if not header:
        raise UploadError(f"{path.name} has no header row / column names. Add one (e.g. `text,label`).")
    return header


def _json_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig") as handle:
        first = handle.read(1 << 20).lstrip()
    if first.startswith("["):  # a JSON array of records
        records = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        row = records[0] if records and isinstance(records[0], dict) else None
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
                    raise UploadError(f"{zip_path.name}: entry {name!r} points outside the folder (absolute path or "
                                      "'..'). Zip the adapter folder itself.")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UploadError(f"{zip_path.name}: entry {name!r} is a symbolic link. Zip real files only.")
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
    return configs[0].parent


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


__all__ = ["UploadError", "UploadLimits", "check_data_file", "read_header", "extract_adapter_zip", "zip_folder",
           "safe_stem"]
