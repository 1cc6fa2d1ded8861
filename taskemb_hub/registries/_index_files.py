"""The index's files: `write_index` (one shard per signature, swapped in whole) and `read_index` (lazy entries over
one memory-mapped matrix per signature, every row checked before it is served). The layout is in index.py's
docstring; chunked signatures are in _index_layout.py."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from .._vectors import VectorGroup
from ..cards import INDEX_TAG, TAG
from ..embedding import TaskEmbedding
from .base import RegistryEntry

INDEX_FORMAT = "taskemb-hub-index/2"  # chunked signatures; written only when one is (format 1 readers read the rest)


READABLE_FORMATS = ("taskemb-hub-index/1", INDEX_FORMAT)


INDEX_FILE = "index.json"


SHARD_DIR = "signatures"


_COLUMNS = ("name", "sha", "task", "method", "base_model", "step", "train_size", "metrics", "license", "recipe",
            "extra", "flags")  # flags: taskemb_hub/curation.py, over the whole registry; older indexes lack the column


@dataclass
class IndexContents:
    """An index read back: lazy entries, one memory-mapped `VectorGroup` per signature, its metadata."""

    entries: list[RegistryEntry]
    groups: dict[str, VectorGroup]
    meta: dict[str, Any] = field(default_factory=dict)
    shas: dict[str, str] = field(default_factory=dict)  # repo id -> the commit its row was read at
    refused: list[tuple[str, str]] = field(default_factory=list)  # rows whose vector cannot be right, with why


def write_index(entries: list[RegistryEntry], folder: str | os.PathLike, *, source: dict[str, Any] | None = None,
                failures: list[tuple[str, str]] | None = None, dtype: torch.dtype = torch.float16,
                chunk_rows: int | None = None) -> Path:
    """Write `entries` as an index folder (one shard per signature). Returns the folder.

    Args:
        entries: registry entries; an entry's commit is read from `location` (`repo@sha`).
        folder: where to write (existing shards are replaced).
        source: where the entries came from (endpoint, tag, filters), recorded in `index.json`.
        failures: repos that could not be read, with the reason, recorded for the Space's status.
        dtype: storage type of the unit vectors (float16 halves the download).
        chunk_rows: the most rows of a chunk (default `_index_layout.CHUNK_ROWS`); a larger signature is chunked.

    Shards are written block by block: rows carried over from an index stay in its memory map and
    lazy entries are loaded one block at a time without being kept, so rebuilding an index of any
    size needs a few blocks of memory (entries that arrive with their vectors loaded, as a Hub or
    local registry's do, already hold them).
    """
    import shutil

    if dtype not in _SAFETENSORS_DTYPES:
        raise ValueError(f"An index stores float16, bfloat16, float32 or float64 rows, not {dtype}.")
    folder = Path(folder)
    shard_dir = folder / SHARD_DIR
    shard_dir.mkdir(parents=True, exist_ok=True)
    # Every shard is written beside the index first: a failure leaves the index as it was. Renaming
    # over a shard that entries being written still map is safe (the map keeps the old file).
    staging = folder / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        meta = _write_shards(entries, staging, dtype, source, failures, chunk_rows)
        for new in sorted(staging.rglob("*")):
            if new.is_file():
                (shard_dir / new.relative_to(staging)).parent.mkdir(parents=True, exist_ok=True)
                os.replace(new, shard_dir / new.relative_to(staging))
        partial = folder / f".{INDEX_FILE}.partial"
        partial.write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(partial, folder / INDEX_FILE)
        _remove_unlisted(folder, meta)  # after index.json names the new files: a reader never misses one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_card(folder, meta)
    return folder


def _write_shards(entries, staging: Path, dtype: torch.dtype, source, failures, chunk_rows=None) -> dict[str, Any]:
    """Each signature's files into `staging` (one pair, or chunks: `_index_layout`); returns `index.json`'s contents."""
    from ._entry_files import _dim, split_by_vector_length
    from ._index_layout import CHUNK_ROWS, write_signature

    entries, mismatched = split_by_vector_length(list(entries))
    failures = list(failures or []) + mismatched  # a corrupt length would break its shard's matrix
    from ..curation import index_flags

    flags = index_flags(entries)
    by_signature: dict[str, list[RegistryEntry]] = {}
    for entry in sorted(entries, key=lambda e: e.name):
        by_signature.setdefault(entry.signature_hash, []).append(entry)
    shards = {}
    for sig, group in sorted(by_signature.items()):
        dim = _dim(group[0])
        projection = _projection(dim)
        _, files = write_signature(staging, sig, group, dim, dtype, projection, lambda e: _row(e, flags), _COLUMNS,
                                   chunk_rows or CHUNK_ROWS)
        first = group[0].info
        shards[sig] = {"method": first.method, "base_model": first.base_model, "dim": dim, "rows": len(group),
                       "signature": first.signature, "dtype": str(dtype).replace("torch.", ""), **files}
        if projection is not None:
            shards[sig]["projection"] = projection.describe()
    chunked = any("chunks" in shard for shard in shards.values())
    return {"format": INDEX_FORMAT if chunked else READABLE_FORMATS[0], "source": source or {},
            "entries": sum(s["rows"] for s in shards.values()), "shards": shards,
            "failures": [{"repo": r, "reason": why} for r, why in sorted(failures)]}


def _remove_unlisted(folder: Path, meta: dict) -> None:
    """Delete the files under signatures/ that `index.json` no longer names (and emptied chunk folders)."""
    from ._index_layout import index_files

    listed = index_files(meta)
    for path in sorted((folder / SHARD_DIR).rglob("*"), reverse=True):
        if path.is_file() and path.relative_to(folder).as_posix() not in listed:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _projection(dim: int):
    """The projection stored beside rows of `dim` values, or None when rows are no longer than it."""
    from .._ann import PROJECTION_DIM, Projection

    return Projection(dim) if dim > PROJECTION_DIM else None


_WRITE_BLOCK_ROWS = 4096


_SAFETENSORS_DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64"}


def _row(entry: RegistryEntry, flags: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    e = entry.info  # an index's entries answer without loading (and keeping) their vector
    sha = entry.location.rsplit("@", 1)[1] if "@" in entry.location else ""
    return {"name": entry.name, "sha": sha, "task": e.task, "method": e.method, "base_model": e.base_model,
            "step": e.step, "train_size": e.train_size, "metrics": json.dumps(e.metrics or {}, sort_keys=True),
            "license": e.extra.get("license"), "recipe": json.dumps(e.extra.get("recipe"), sort_keys=True),
            "extra": json.dumps(e.extra, sort_keys=True, default=str),
            "flags": json.dumps((flags or {}).get(entry.name) or {}, sort_keys=True)}


def _write_card(folder: Path, meta: dict) -> None:
    methods = sorted({s["method"] for s in meta["shards"].values()})
    bases = sorted({s["base_model"] for s in meta["shards"].values()})
    yaml_tags = "\n".join(f"- {t}" for t in (INDEX_TAG, TAG))
    patterns = [p for p, chunked in ((f"{SHARD_DIR}/*.parquet", False), (f"{SHARD_DIR}/*/*.parquet", True))
                if any(("chunks" in shard) == chunked for shard in meta["shards"].values())] or [f"{SHARD_DIR}/*.parquet"]
    files = "".join(f"\n  - {p}" for p in patterns)  # only patterns that match: the viewer refuses an empty one
    (folder / "README.md").write_text(
        f"---\ntags:\n{yaml_tags}\nconfigs:\n- config_name: default\n  data_files:{files}\n---\n\n"
        f"# taskemb-hub registry index\n\n{meta['entries']} task embeddings in {len(meta['shards'])} signature(s) "
        f"(methods: {', '.join(methods) or '-'}; base models: {', '.join(bases) or '-'}), "
        f"{len(meta['failures'])} repo(s) not readable at build time.\n\n"
        "```python\nfrom taskemb_hub import AutoSourceSelector\n"
        "selector = AutoSourceSelector.from_index(\"<this repo id>\")\n```\n")


def read_index(folder: str | os.PathLike, *, name: str | None = None) -> IndexContents:
    """Read an index folder: entries are lazy, each signature's matrix is memory-mapped.

    Every file is checked before use (`_shards`): an index is anyone's file.

    Args:
        folder: the index folder (a local folder or a snapshot in the HF cache).
        name: how messages name the index (its repo id); default: the folder.

    Raises:
        RegistryError: a file missing, malformed or inconsistent with `index.json`, named in one line.
    """
    from ._shards import read_meta

    folder = Path(folder)
    name = name or str(folder)
    meta = read_meta(folder, name, INDEX_FILE, READABLE_FORMATS)
    entries, groups, shas, refused = [], {}, {}, []
    seen: set[str] = set()
    for sig, shard in sorted(meta["shards"].items()):
        rows, tensors, cache_key = _read_shard(folder, sig, shard, name)
        unit, norms, mean = tensors["unit"], tensors["norms"], tensors["mean"]
        flagged = {**_malformed_rows(rows, shard, seen, sig), **_mislabelled(sig, shard, rows)}
        rows, unit, norms, mean, projected_rows, bad = _usable_rows(rows, unit, norms, mean, tensors.get("projected"),
                                                                    shard.get("signature") or {},
                                                                    flagged)
        refused += bad
        if not rows:
            continue
        tensors["projected"] = projected_rows
        start = len(entries)
        for i, row in enumerate(rows):
            load = _loader(row, shard, unit, norms, i)
            entries.append(RegistryEntry(row["name"], location=f"{row['name']}@{row['sha']}" if row["sha"] else row["name"],
                                         signature_hash=sig, load=load, info=load.info))
            if row["sha"]:
                shas[row["name"]] = row["sha"]
        projected, projection = tensors.get("projected"), _projection(unit.shape[1])
        if projected is not None and (projection is None or shard.get("projection") != projection.describe()
                                      or projected.shape != (len(rows), projection.dim_out)):
            projected = None  # another projection than this version's: computed again when needed
        groups[sig] = VectorGroup(rows=list(range(start, len(entries))), unit=unit, norms=norms.float(),
                                  mean=mean.float(), projected=projected, cache_key=cache_key)
    return IndexContents(entries=entries, groups=groups, meta=meta, shas=shas, refused=refused)


def _read_shard(folder: Path, sig: str, shard: dict, name: str) -> tuple[list[dict], dict, str]:
    """A shard's rows (each with the chunk it was read from, `_chunk`), its tensors (chunks assembled) and the key
    naming its stored rows (for the ANN graph cache)."""
    from ._index_layout import assemble, chunk_files
    from ._shards import VECTOR_DTYPES, mmap_vectors, read_rows

    rows, parts, keys = [], [], []
    for chunk in chunk_files(folder, sig, shard):
        chunk_rows = read_rows(chunk["rows_file"], name, chunk["rows"], sig)
        parts.append(mmap_vectors(chunk["vectors"], name, len(chunk_rows), shard["dim"]))
        chunk = {**chunk, "dtype": VECTOR_DTYPES[shard.get("dtype", "float16")]}
        rows += [{**row, "_chunk": chunk} for row in chunk_rows]
        # The files themselves name the cached assembly and ANN graph, never the ids `index.json` states: another
        # index listing the same chunk ids over other bytes must not be served this one's (nor this one its).
        stored = chunk["vectors"].resolve()  # in the HF cache: a content-named blob
        stat = stored.stat()
        keys.append(f"{chunk['id']}|{stored}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}")
    return rows, assemble(parts, "|".join(keys)), "|".join(keys)


def _malformed_rows(rows: list[dict], shard: dict, seen: set[str], sig: str = "") -> dict[int, str]:
    """Rows of the wrong types, of a base model or method the shard itself does not record, whose `signature`
    column (read by SQL) names another shard, or of a name seen before."""
    from ._shards import row_problem

    flagged = {}
    for i, row in enumerate(rows):
        problem = row_problem(row)
        if problem is None:
            wrong = [k for k in ("base_model", "method") if k in shard and row[k] != shard[k]]
            if wrong:
                problem = f"its {' and '.join(wrong)} differ from its shard's"
            elif row.get("signature", sig) != sig:
                problem = "its 'signature' column names another shard"
            elif row["name"] in seen:
                problem = "its name is another row's"
        if problem:
            flagged[i] = f"a malformed index row ({problem}); rebuild the index with `taskemb-hub index build`"
        else:
            seen.add(row["name"])
    return flagged


def _mislabelled(sig: str, shard: dict, rows: list[dict]) -> dict[int, str]:
    """The rows of a shard whose own recorded fields do not give the key the shard is filed under, with why.

    An index is anyone's file: its shard key (the signature hash every row of the shard is ranked under) is
    recomputed from each row's base model and method and the shard's signature, as `TaskEmbedding.signature_hash`
    computes it, so a row of another base model (or method) filed under this key never ranks as compatible.
    """
    from ..base_model import normalise_local_id
    from ..methods.base import signature_hash

    signature = shard.get("signature")
    if not isinstance(signature, dict):
        why = f"its shard {sig} records no signature: the index is malformed; rebuild it with `taskemb-hub index build`"
        return {i: why for i in range(len(rows))}
    keys: dict[tuple, str | None] = {}  # one hash per distinct (base model, method), not per row
    refused = {}
    for i, row in enumerate(rows):
        base, method = row.get("base_model"), row.get("method")
        if (base, method) not in keys:
            same_method = isinstance(base, str) and signature.get("method", method) == method
            # hashed as a loaded embedding hashes it (`TaskEmbedding.__post_init__`), so the key matches a target's
            keys[base, method] = (signature_hash({"base_model": normalise_local_id(base), **signature})
                                  if same_method else None)
        if keys[base, method] != sig:
            refused[i] = (f"filed under signature {sig}, but its own base model {base!r} and method {method!r} are not "
                          "of that signature (a mislabelled index row); rebuild the index with `taskemb-hub index build`")
    return refused


def _usable_rows(rows: list[dict], unit: torch.Tensor, norms: torch.Tensor, mean: torch.Tensor,
                 projected: torch.Tensor | None, signature: dict, refused: dict[int, str] | None = None):
    """A shard without the rows refused already (`refused`: row -> why) and those whose stored norm cannot be
    right (zero, or outside what the signature allows: `embedding.norm_problem`), and the mean of the rows kept;
    the rows refused, with why.

    Checked on the stored norms alone (no row is read). When a row is refused, or the stored mean is longer
    than any kept vector can be, the mean is computed again from the kept rows: one forged row or mean
    never moves the `centered` similarity of the others.
    """
    from ..embedding import NORM_TOLERANCE, norm_problem
    from ..methods.base import norm_bounds

    refused = refused or {}
    values, bounds = norms.double(), norm_bounds(signature)
    ok = values > 0  # False for NaN too
    if bounds is not None:
        ok &= (values >= bounds[0] * (1 - NORM_TOLERANCE)) & (values <= bounds[1] * (1 + NORM_TOLERANCE))
    if refused:
        ok[list(refused)] = False
    bad = [(rows[i]["name"], refused.get(i) or norm_problem(float(values[i]), signature))
           for i in (~ok).nonzero().flatten().tolist()]
    limit = (float(values[ok].max()) if bool(ok.any()) else 0.0) if bounds is None else bounds[1]
    if not bad and float(mean.float().norm()) <= limit * (1 + NORM_TOLERANCE):
        return rows, unit, norms, mean, projected, bad
    if bad:
        index = ok.nonzero().flatten()
        rows, unit, norms = [rows[i] for i in index.tolist()], unit[index], norms[index]
        projected = projected[index] if projected is not None and projected.shape[0] == len(ok) else None
    total = torch.zeros(unit.shape[1], dtype=torch.float64)
    for start in range(0, len(rows), _WRITE_BLOCK_ROWS):
        block = slice(start, start + _WRITE_BLOCK_ROWS)
        total += torch.sum(unit[block].float() * norms[block].float().unsqueeze(1), 0, dtype=torch.float64)
    return rows, unit, norms, (total / max(len(rows), 1)).float(), projected, bad


def _loader(row: dict, shard: dict, unit: torch.Tensor, norms: torch.Tensor, i: int):
    def fields() -> dict[str, Any]:
        extra = json.loads(row.get("extra") or "null") or {
            k: v for k, v in (("recipe", json.loads(row["recipe"] or "null")), ("license", row["license"])) if v is not None}
        return dict(task=row["task"], base_model=row["base_model"], method=row["method"], signature=shard["signature"],
                    step=row["step"], train_size=row["train_size"], metrics=json.loads(row["metrics"] or "{}"),
                    extra=extra)

    def load() -> TaskEmbedding:
        return TaskEmbedding(vector=unit[i].float() * norms[i].float(), **fields())

    from ..curation import parse_flags

    load.info = lambda: SimpleNamespace(**fields(), flags=parse_flags(row.get("flags")))  # None: an older index
    load.stored_row = (unit[i], norms[i])
    load.chunk = row.get("_chunk")  # the chunk it was read from: an unchanged chunk is linked, not rewritten
    return load

