"""Reading an index's files, which anyone may have written: every field checked before it is used.

An index (`index.json` plus, per signature or per chunk of a large signature, a parquet file of rows
and a safetensors file of vectors) can come from any Hub repo. Nothing here trusts it: the JSON's shape, the safetensors
header (validated by `safetensors.safe_open` before anything is memory-mapped), the tensors'
names, dtypes and shapes, the parquet columns and the JSON inside each row. A problem is a
`RegistryError` naming the index and the file, never a raw `KeyError` or `struct.error`.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import RegistryError

SHARD_KEY = re.compile(r"^[0-9a-f]{16}$")  # a signature hash: never a path
CHUNK_ID = DIGEST = re.compile(r"^[0-9a-f]{32}$")  # a chunk's file name (a content hash) and its rows' digest
VECTOR_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
ROW_COLUMNS = ("name", "sha", "task", "method", "base_model", "step", "train_size", "metrics", "recipe", "extra",
               "license")
JSON_COLUMNS = ("metrics", "recipe", "extra")
OPTIONAL_COLUMNS = ("flags",)  # read when present (curation flags); an index written before them has none
MAX_INDEX_JSON_BYTES = 64 << 20
_TORCH_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
_FIX = "Rebuild the index with `taskemb-hub index build`."


def read_meta(folder: Path, name: str, index_file: str, index_format: str | tuple[str, ...]) -> dict[str, Any]:
    """`index.json`, checked: a JSON object of the known format whose shards are keyed by signature hashes.

    Args:
        folder: the index folder. name: how the index is named in messages (a repo id, never a cache path).
        index_file: the file's name. index_format: the format(s) this version reads.

    Raises:
        RegistryError: unreadable, not this format, or a shard entry of the wrong shape.
    """
    path = folder / index_file
    try:
        if path.stat().st_size > MAX_INDEX_JSON_BYTES:
            raise RegistryError(f"{name}: {index_file} is over {MAX_INDEX_JSON_BYTES >> 20} MB. {_FIX}")
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise RegistryError(f"{name} is not a taskemb-hub index (no readable {index_file}). Build one with "
                            "`taskemb-hub index build`.") from None
    if not isinstance(meta, dict):
        raise RegistryError(f"{name}: {index_file} holds a JSON {type(meta).__name__}, not an object. {_FIX}")
    formats = (index_format,) if isinstance(index_format, str) else tuple(index_format)
    if meta.get("format") not in formats:
        raise RegistryError(f"{name}: index format {str(meta.get('format'))[:80]!r} is not {' or '.join(map(repr, formats))}. "
                            "Upgrade taskemb-hub (`pip install -U taskemb-hub`) or rebuild the index.")
    shards = meta.get("shards")
    if not isinstance(shards, dict):
        raise RegistryError(f"{name}: {index_file} has no 'shards' object. {_FIX}")
    for key, shard in shards.items():
        problem = _shard_problem(key, shard)
        if problem:
            raise RegistryError(f"{name}: shard {str(key)[:40]!r} {problem}. {_FIX}")
    if not isinstance(meta.get("failures", []), list):
        meta["failures"] = []
    meta["failures"] = [f for f in meta.get("failures", []) if isinstance(f, dict)
                        and isinstance(f.get("repo"), str) and isinstance(f.get("reason"), str)]
    return meta


def _shard_problem(key: Any, shard: Any) -> str | None:
    if not isinstance(key, str) or not SHARD_KEY.match(key):
        return "is not named by a signature hash (16 hex digits)"
    if not isinstance(shard, dict):
        return "is not an object"
    dim, rows = shard.get("dim"), shard.get("rows", 0)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        return f"has no valid 'dim' ({str(dim)[:40]!r})"
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        return f"has no valid 'rows' ({str(rows)[:40]!r})"
    if shard.get("dtype", "float16") not in VECTOR_DTYPES:
        return f"has dtype {str(shard.get('dtype'))[:40]!r}, not one of {', '.join(VECTOR_DTYPES)}"
    if not isinstance(shard.get("signature"), dict):
        return "records no signature"
    if shard.get("digest") is not None and not (isinstance(shard["digest"], str) and DIGEST.match(shard["digest"])):
        return "has a 'digest' that is not 32 hex digits"
    return _chunks_problem(shard.get("chunks"), rows) if "chunks" in shard else None


def _chunks_problem(chunks: Any, rows: int) -> str | None:
    """Why a shard's chunk list is unusable: not a non-empty list, an id that is no content hash (never a path),
    an id twice, a row count that is no count, counts not summing to the shard's rows."""
    if not isinstance(chunks, list) or not chunks:
        return "has a 'chunks' entry that is not a non-empty list"
    ids = set()
    for chunk in chunks:
        if not isinstance(chunk, dict) or not isinstance(chunk.get("id"), str) or not CHUNK_ID.match(chunk["id"]):
            return "lists a chunk whose 'id' is not 32 hex digits"
        if chunk["id"] in ids:
            return f"lists chunk {chunk['id']} twice"
        ids.add(chunk["id"])
        count = chunk.get("rows")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            return f"lists chunk {chunk['id']} with no valid 'rows'"
        if not isinstance(chunk.get("digest"), str) or not DIGEST.match(chunk["digest"]):
            return f"lists chunk {chunk['id']} with no valid 'digest'"
    if sum(c["rows"] for c in chunks) != rows:
        return "has chunks whose rows do not sum to its 'rows'"
    return None


def mmap_vectors(path: Path, name: str, rows: int, dim: int) -> dict[str, torch.Tensor]:
    """A shard's tensors as read-only views of a memory map, after `safetensors` validated the header.

    Checks `unit` (rows x dim), `norms` (rows), `mean` (dim) and the optional `projected` (rows x k)
    against the shard's recorded sizes, all of a float dtype.

    Raises:
        RegistryError: the file is missing, its header is invalid, or a tensor is absent or misshapen.
    """
    from safetensors import safe_open

    label = f"{name}: {path.parent.name}/{path.name}"
    try:
        with safe_open(str(path), framework="pt") as handle:  # validates header, offsets, dtypes, coverage
            specs = {key: (handle.get_slice(key).get_dtype(), handle.get_slice(key).get_shape()) for key in handle.keys()}
        with open(path, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_len))
    except FileNotFoundError:
        raise RegistryError(f"{label} is missing. {_FIX}") from None
    except Exception as err:  # noqa: BLE001 - SafetensorError and OSError: a corrupt file either way
        raise RegistryError(f"{label} is not a valid safetensors file ({str(err).splitlines()[0][:120]}). "
                            f"{_FIX}") from None
    expected = {"unit": [rows, dim], "norms": [rows], "mean": [dim]}
    for key, shape in expected.items():
        if key not in specs:
            raise RegistryError(f"{label} has no {key!r} tensor. {_FIX}")
        if list(specs[key][1]) != shape:
            raise RegistryError(f"{label}: {key!r} has shape {list(specs[key][1])}, the index records {shape}. {_FIX}")
    if "projected" in specs and (len(specs["projected"][1]) != 2 or specs["projected"][1][0] != rows):
        del specs["projected"]  # another layout: computed again when needed
    for key, (dtype, _) in specs.items():
        if dtype not in _TORCH_DTYPES:
            raise RegistryError(f"{label}: {key!r} is {dtype}, not a float tensor. {_FIX}")
    return map_tensors(path, header_len, header, specs)


def map_tensors(path: Path, header_len: int | None = None, header: dict | None = None,
                specs: dict | None = None) -> dict[str, torch.Tensor]:
    """The float tensors of a safetensors file as read-only views of one memory map. Without `specs` (a file this
    package wrote itself, such as an assembled index), the header is read and validated by `safe_open` here."""
    import numpy as np
    from safetensors import safe_open

    if specs is None:
        with safe_open(str(path), framework="pt") as handle:
            specs = {key: (handle.get_slice(key).get_dtype(), handle.get_slice(key).get_shape()) for key in handle.keys()}
        with open(path, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_len))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len) if path.stat().st_size > 8 + header_len \
        else np.zeros(0, np.uint8)
    out = {}
    for key, (dtype, shape) in specs.items():
        begin, end = header[key]["data_offsets"]
        with warnings.catch_warnings():  # the map is read-only; torch warns that it is not writable
            warnings.simplefilter("ignore", UserWarning)
            data = torch.frombuffer(raw[begin:end], dtype=torch.uint8) if end > begin else torch.zeros(0, dtype=torch.uint8)
        out[key] = data.view(_TORCH_DTYPES[dtype]).reshape(shape)
    return out


def read_rows(path: Path, name: str, expected_rows: int | None, sig: str | None = None) -> list[dict[str, Any]]:
    """A shard's rows, with the columns and types an index row needs. Other columns are not read; the SQL columns,
    when present, are checked: `projection` a fixed-size list of `PROJECTION_DIM` float32 without nulls or NaN
    (only SQL reads its values: the writer's word), `signature` strings, read into each row (a row naming
    another shard than its file's is refused by the caller).

    Raises:
        RegistryError: missing or unreadable file, a missing column, or another number of rows than recorded.
    """
    import pyarrow.parquet as pq

    label = f"{name}: {path.parent.name}/{path.name}"
    try:
        parquet = pq.ParquetFile(path)
        if expected_rows is not None and parquet.metadata.num_rows != expected_rows:
            raise RegistryError(f"{label} holds {parquet.metadata.num_rows} rows, the index records {expected_rows}. "
                                f"{_FIX}")
        missing = [c for c in ROW_COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise RegistryError(f"{label} lacks column(s) {missing}. {_FIX}")
        _check_sql_columns(parquet, label, sig)
        sql = ["signature"] if "signature" in parquet.schema_arrow.names else []  # a row of another shard is refused
        optional = [c for c in OPTIONAL_COLUMNS if c in parquet.schema_arrow.names]
        rows = parquet.read(columns=list(ROW_COLUMNS) + sql + optional).to_pylist()
    except RegistryError:
        raise
    except FileNotFoundError:
        raise RegistryError(f"{label} is missing. {_FIX}") from None
    except Exception as err:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError...: a corrupt file
        raise RegistryError(f"{label} is not a readable parquet file ({type(err).__name__}). {_FIX}") from None
    return rows


def row_problem(row: dict[str, Any]) -> str | None:
    """Why one index row cannot be an entry (wrong types, JSON that does not parse), else None."""
    for key in ("name", "task", "method", "base_model"):
        if not isinstance(row.get(key), str) or not row[key]:
            return f"its {key!r} is not a non-empty string"
    if row.get("sha") is not None and not isinstance(row["sha"], str):
        return "its 'sha' is not a string"
    for key in ("step", "train_size"):
        value = row.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            return f"its {key!r} is not a count"
    for key in JSON_COLUMNS:
        text = row.get(key)
        if text is None:
            continue
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except (json.JSONDecodeError, RecursionError):
            return f"its {key!r} is not valid JSON"
        if not isinstance(text, str) or not (value is None or isinstance(value, dict)):
            return f"its {key!r} is not a JSON object"
    return None


def _check_sql_columns(parquet, label: str, sig: str | None) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from .._ann import PROJECTION_DIM

    names = parquet.schema_arrow.names
    if "projection" in names:
        kind = parquet.schema_arrow.field("projection").type
        if not (pa.types.is_fixed_size_list(kind) and kind.list_size == PROJECTION_DIM
                and pa.types.is_float32(kind.value_type)):
            raise RegistryError(f"{label}: its 'projection' column is {kind}, not fixed_size_list<float32>"
                                f"[{PROJECTION_DIM}]. {_FIX}")
        column = parquet.read(columns=["projection"]).column(0)
        if column.null_count or pc.sum(pc.is_null(pc.list_flatten(column), nan_is_null=True)).as_py():
            raise RegistryError(f"{label}: its 'projection' column holds nulls or NaN. {_FIX}")
    if "signature" in names and not pa.types.is_string(parquet.schema_arrow.field("signature").type):
        raise RegistryError(f"{label}: its 'signature' column is not a string column. {_FIX}")
