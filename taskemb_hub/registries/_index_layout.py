"""How an index lays out one signature's rows on disk, so that an update re-downloads only what changed.

A signature of at most `CHUNK_ROWS` entries is one pair of files, `signatures/<sig>.safetensors` and
`signatures/<sig>.parquet` (the layout of format 1). A larger one is split into chunks: each chunk is the
entries whose name hashes (sha256) start with one bit prefix, the prefixes being the leaves of the binary trie
that splits a prefix while it holds more than `CHUNK_ROWS` names. The split depends on the set of names alone,
never on history, so a fresh build and an incremental update write the same chunks, and one changed entry
changes only the chunk holding it (an added or removed name changes its chunk, or splits / merges one trie
node). A chunk is two files named by the hash of their bytes, `signatures/<sig>/<id>.{safetensors,parquet}`,
listed in `index.json`: a reader's HF cache keeps every unchanged chunk, and a new chunk never overwrites a
file that an older `index.json` names.

Every row file also carries the row's `projection` (`PROJECTION_DIM` float32 values: the float16 projected row
the first stage of a large ranking scans, `_ann.Projection`) and its `signature` (the shard key), so that SQL
(DuckDB's `array_cosine_similarity`, the Hub's SQL console) ranks sources approximately without this package.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import torch

CHUNK_ROWS = 1024  # rows per chunk at most: ~0.7 % of a 100k-entry index re-downloaded per changed entry
CHUNK_ID = re.compile(r"^[0-9a-f]{32}$")
DIGEST = re.compile(r"^[0-9a-f]{32}$")
_WRITE_BLOCK_ROWS = 4096
_SAFETENSORS_DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64"}
_WIDER_FIRST = {"F64": 0, "F32": 1, "BF16": 2, "F16": 3}  # safetensors' own order: dtype (descending), then name


def _bits(name: str) -> str:
    return format(int(hashlib.sha256(name.encode()).hexdigest()[:16], 16), "064b")


def chunk_members(names: list[str], chunk_rows: int = CHUNK_ROWS) -> list[tuple[str, list[str]]]:
    """The chunks of a signature's names: `(bit prefix, names sorted)` per non-empty trie leaf, in prefix order.

    Args:
        names: the signature's entry names. chunk_rows: the most names a leaf holds (a 64-bit prefix is never split).

    Returns:
        `[("", names)]` when they fit one chunk; else one item per leaf.

    Example:
        ```python
        >>> [len(m) for _, m in chunk_members([f"n{i}" for i in range(5)], chunk_rows=2)]
        ```
    """
    out: list[tuple[str, list[str]]] = []
    stack = [("", sorted((_bits(n), n) for n in names))]
    while stack:
        prefix, items = stack.pop()
        if not items:
            continue
        if len(items) <= chunk_rows or len(prefix) >= 64:
            out.append((prefix, sorted(n for _, n in items)))
            continue
        at = len(prefix)
        stack.append((prefix + "1", [x for x in items if x[0][at] == "1"]))
        stack.append((prefix + "0", [x for x in items if x[0][at] == "0"]))
    return out


def rows_digest(rows: list[dict[str, Any]]) -> str:
    """A hash of a chunk's row metadata, recorded in `index.json` to tell an unchanged chunk from a changed one."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:32]


def write_signature(staging: Path, sig: str, group: list, dim: int, dtype: torch.dtype, projection, row_of, columns,
                    chunk_rows: int = CHUNK_ROWS) -> tuple[list, dict[str, Any]]:
    """Write one signature's files into `staging`. Returns (its entries in stored order, its `index.json` fields).

    A chunk whose rows and vectors are those of a chunk read from an index (same names, each row read from that
    chunk, same metadata) is linked from its files instead of written: an unchanged chunk keeps its bytes
    whatever the pyarrow version, and an update of a large index writes only the chunks that changed.
    """
    by_name = {e.name: e for e in group}
    members = chunk_members(list(by_name), chunk_rows)
    ordered, chunks = [], []
    for prefix, names in members:
        entries = [by_name[n] for n in names]
        rows = [row_of(e) for e in entries]
        digest = rows_digest(rows)
        stem = staging / sig if len(members) == 1 else staging / sig / "chunk"
        stem.parent.mkdir(parents=True, exist_ok=True)
        chunk_id = _reuse(entries, digest, dtype, stem, single=len(members) == 1)
        if chunk_id is None:
            _write_vectors(stem.with_suffix(".safetensors"), entries, dim, dtype, projection)
            _write_rows(stem.with_suffix(".parquet"), rows, columns, sig, stem.with_suffix(".safetensors"), dim)
            chunk_id = _content_id(stem)
        if len(members) > 1:
            for suffix in (".safetensors", ".parquet"):
                os.replace(stem.with_suffix(suffix), staging / sig / f"{chunk_id}{suffix}")
        chunks.append({"id": chunk_id, "rows": len(entries), "prefix": prefix, "digest": digest})
        ordered += entries
    if len(members) == 1:
        return ordered, {"digest": chunks[0]["digest"]}
    return ordered, {"chunks": chunks}


def _content_id(stem: Path) -> str:
    h = hashlib.sha256()
    for suffix in (".safetensors", ".parquet"):
        with open(stem.with_suffix(suffix), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:32]


def _reuse(entries: list, digest: str, dtype: torch.dtype, stem: Path, single: bool) -> str | None:
    """Link the files of the chunk these entries were all read from, when it is unchanged; its id, else None."""
    sources = {id(getattr(e._load, "chunk", None)) for e in entries if e._embedding is None}
    first = getattr(entries[0]._load, "chunk", None) if entries[0]._embedding is None else None
    if first is None or sources != {id(first)} or first["rows"] != len(entries) or first.get("digest") != digest \
            or first["dtype"] != dtype:
        return None
    targets = [stem.with_suffix(suffix) for suffix in (".safetensors", ".parquet")]
    try:
        for target, path in zip(targets, (first["vectors"], first["rows_file"])):
            path = Path(path).resolve()  # an HF cache path is a symlink to its blob
            target.unlink(missing_ok=True)
            try:
                os.link(path, target)
            except OSError:  # another file system (or none with links): a copy
                shutil.copyfile(path, target)
    except OSError:
        for target in targets:  # a half-linked pair: the files written instead must not go through a link
            target.unlink(missing_ok=True)
        return None
    if single:
        return "single"
    return first["id"] if CHUNK_ID.match(first["id"]) else _content_id(stem)  # a single file becoming a chunk


def _write_rows(path: Path, rows: list[dict], columns, sig: str, vectors: Path, dim: int) -> None:
    """The parquet rows, with the `signature` and `projection` (fixed-size list of float32) columns for SQL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .._ann import PROJECTION_DIM, Projection
    from ._shards import mmap_vectors

    unit = mmap_vectors(vectors, str(path.parent), len(rows), dim)["unit"]
    projection = Projection(dim, PROJECTION_DIM)
    values = torch.cat([projection(unit[s:s + _WRITE_BLOCK_ROWS]).half().float()
                        for s in range(0, len(rows), _WRITE_BLOCK_ROWS)]) if rows else torch.zeros(0, PROJECTION_DIM)
    table = pa.table({c: [r[c] for r in rows] for c in columns})
    table = table.append_column("signature", pa.array([sig] * len(rows), pa.string()))
    flat = pa.array(values.reshape(-1).numpy(), pa.float32())
    table = table.append_column("projection", pa.FixedSizeListArray.from_arrays(flat, PROJECTION_DIM))
    path.unlink(missing_ok=True)  # never write through a hard link into an index read (an HF-cache blob)
    pq.write_table(table, path)


def _write_vectors(path: Path, group: list, dim: int, dtype: torch.dtype, projection) -> None:
    """Write a chunk's safetensors file block by block: memory stays a few blocks, not the whole matrix.

    The layout is the one `safetensors.torch.save_file` writes (tensors by dtype then name, compact header
    padded to 8 bytes), so the file reads with any safetensors reader. Rows are written as they are read, the
    mean and the projection accumulated on the way.
    """
    n, k = len(group), projection.dim_out if projection is not None else 0
    specs = [("mean", "F32", [dim], dim * 4), ("norms", "F32", [n], n * 4),
             ("unit", _SAFETENSORS_DTYPES[dtype], [n, dim], n * dim * torch.finfo(dtype).bits // 8)]
    if projection is not None:
        specs.append(("projected", "F16", [n, k], n * k * 2))
    header, offset = {}, 0
    for name, code, shape, size in sorted(specs, key=lambda spec: (_WIDER_FIRST[spec[1]], spec[0])):
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    base = 8 + len(raw)
    norms = torch.empty(n, dtype=torch.float32)
    total = torch.zeros(dim, dtype=torch.float64)
    path.unlink(missing_ok=True)  # a hard link to a chunk read (an HF-cache blob) would be truncated by "wb"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(base + offset)
        for start in range(0, n, _WRITE_BLOCK_ROWS):
            unit, block_norms = stored_rows(group[start:start + _WRITE_BLOCK_ROWS], dtype)
            norms[start:start + len(unit)] = block_norms
            total += torch.sum(unit.float() * block_norms.unsqueeze(1), 0, dtype=torch.float64)
            handle.seek(base + header["unit"]["data_offsets"][0] + start * unit[0].nbytes)
            handle.write(unit.contiguous().view(torch.uint8).numpy())
            if projection is not None:  # from the stored rows: an unchanged index rewrites identical bytes
                handle.seek(base + header["projected"]["data_offsets"][0] + start * k * 2)
                handle.write(projection(unit).half().contiguous().view(torch.uint8).numpy())
        for name, values in (("mean", (total / max(n, 1)).float()), ("norms", norms)):
            handle.seek(base + header[name]["data_offsets"][0])
            handle.write(values.numpy())


def stored_rows(block: list, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Each entry's unit row and norm, without keeping a loaded vector on the entry; a row read from an
    index is carried over as stored, so that rebuilding an unchanged index writes identical bytes."""
    units, norms = [], []
    for entry in block:
        stored = entry.stored_row
        if stored is not None and stored[0].dtype == dtype:
            unit, norm = stored
        else:
            vector = (entry._embedding or entry._load()).vector.float()
            norm = vector.norm()
            unit = (vector / norm.clamp_min(1e-12)).to(dtype)
        units.append(unit)
        norms.append(norm.float().reshape(()))
    return torch.stack(units), torch.stack(norms)


def chunk_files(folder: Path, sig: str, shard: dict) -> list[dict[str, Any]]:
    """The files of a shard as `index.json` lists them: one dict per chunk (id, rows, digest, vectors, rows_file)."""
    base = folder / "signatures"
    if "chunks" not in shard:
        return [{"id": "single", "rows": shard.get("rows"), "digest": shard.get("digest"),
                 "vectors": base / f"{sig}.safetensors", "rows_file": base / f"{sig}.parquet"}]
    return [{**c, "vectors": base / sig / f"{c['id']}.safetensors", "rows_file": base / sig / f"{c['id']}.parquet"}
            for c in shard["chunks"]]


def index_files(meta: dict[str, Any]) -> set[str]:
    """Every file (path in the repo) an `index.json` names besides itself."""
    out = set()
    for sig, shard in meta["shards"].items():
        for chunk in chunk_files(Path("."), sig, shard):
            out |= {chunk["vectors"].as_posix(), chunk["rows_file"].as_posix()}
    return out


def assemble(parts: list[dict[str, torch.Tensor]], key: str) -> dict[str, torch.Tensor]:
    """One signature's tensors from its chunks': unit, norms and projected rows concatenated, the mean weighted.

    A single chunk is returned as memory-mapped. Several are concatenated into a file of the local cache named
    by `key` (each chunk file's path, inode, size and modification time: a file of other bytes is another key) and
    memory-mapped from there, so a large index is never copied into memory; without a writable cache, in memory.
    """
    if len(parts) == 1:
        return parts[0]
    sizes = [p["unit"].shape[0] for p in parts]
    total = sum(sizes)
    mean = sum(p["mean"].double() * n for p, n in zip(parts, sizes)) / max(total, 1)
    out = {"norms": torch.cat([p["norms"] for p in parts]), "mean": mean.float()}
    names = ["unit"] + (["projected"] if all("projected" in p for p in parts) else [])
    stacked = _cached_concat(parts, names, key)
    out.update(stacked if stacked is not None else {n: torch.cat([p[n] for p in parts]) for n in names})
    return out


def _assembled_dir() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("TASKEMB_HUB_INDEX_CACHE") or Path(constants.HF_HOME) / "taskemb-hub" / "assembled")


def _cached_concat(parts, names: list[str], key: str) -> dict[str, torch.Tensor] | None:
    """`names` concatenated over `parts` in a cached safetensors file, memory-mapped; None when it cannot be kept."""
    from safetensors.torch import safe_open

    path = _assembled_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            _write_concat(tmp, parts, names)
            os.replace(tmp, path)
            _prune(path.parent, keep=path)
        with safe_open(str(path), framework="pt") as handle:
            shapes = {n: list(handle.get_slice(n).get_shape()) for n in handle.keys()}
        want = {n: [sum(p[n].shape[0] for p in parts), parts[0][n].shape[1]] for n in names}
        if shapes != want:
            return None
        from ._shards import map_tensors

        return map_tensors(path)
    except OSError:
        return None


def _write_concat(path: Path, parts, names: list[str]) -> None:
    header, offset = {}, 0
    codes = {n: _SAFETENSORS_DTYPES[parts[0][n].dtype] for n in names}
    for n in sorted(names, key=lambda n: (_WIDER_FIRST[codes[n]], n)):
        shape = [sum(p[n].shape[0] for p in parts), parts[0][n].shape[1]]
        size = shape[0] * shape[1] * parts[0][n].element_size()
        header[n] = {"dtype": codes[n], "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        for n in sorted(header, key=lambda n: header[n]["data_offsets"][0]):
            for p in parts:
                handle.write(p[n].contiguous().view(torch.uint8).numpy().tobytes())


def _prune(folder: Path, keep: Path, count: int = 8, ratio: float = 2.0) -> None:
    """Keep `keep` and the newest other assembled files while there are fewer than `count` of them and they total at
    most `ratio` times `keep`'s size (an index's older versions are not read again: a reader of a large index that
    keeps changing holds about three assemblies, not `count` of them)."""
    def stat(path: Path):
        try:
            return path.stat()
        except OSError:  # removed meanwhile by another reader
            return None

    files = [(p, st) for p in folder.glob("*.safetensors") if p != keep and (st := stat(p)) is not None]
    kept_stat = stat(keep)
    budget = ratio * (kept_stat.st_size if kept_stat is not None else 0)
    held, kept = 0, 1
    for old, st in sorted(files, key=lambda f: f[1].st_mtime, reverse=True):
        if kept < count and held + st.st_size <= budget:
            held, kept = held + st.st_size, kept + 1
            continue
        old.unlink(missing_ok=True)
