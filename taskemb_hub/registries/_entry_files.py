"""One entry's files as a Hub sync reads them: a saved embedding checked against what its metadata promises, a
plain adapter embedded from its weights, and the vector checks the sync and the index writer share."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..embedding import EMBEDDING_NAME, METADATA_NAME, TaskEmbedding
from ..errors import IncompatibleEmbeddingError, TaskEmbHubError
from ._hub_errors import EntryFailure
from .base import RegistryEntry

_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def vector_fingerprint(vector) -> str:
    """sha256 of a vector's float32 bytes: equal for two reads of one saved embedding, whatever its source."""
    import torch

    return hashlib.sha256(vector.detach().to(torch.float32).contiguous().numpy().tobytes()).hexdigest()


def split_by_vector_length(entries: list[RegistryEntry], others: list[RegistryEntry] = ()) -> tuple[
        list[RegistryEntry], list[tuple[str, str]]]:
    """`entries` whose vector length is the usual one of their signature, and the others with a reason.

    A signature fixes the shapes, so a different length means a corrupt file (it would break the
    stacking of every entry of that signature). `others` (entries already accepted) count for the norm.
    """
    from collections import Counter

    lengths: dict[str, Counter] = {}
    for e in list(entries) + list(others):
        lengths.setdefault(e.signature_hash, Counter())[_dim(e)] += 1
    good, bad = [], []
    for e in entries:
        usual = lengths[e.signature_hash].most_common(1)[0][0]
        if _dim(e) == usual:
            good.append(e)
        else:
            bad.append((e.name, f"vector length {_dim(e)} does not match its signature ({usual} values)"))
    return good, bad


def _dim(entry: RegistryEntry) -> int:
    """An entry's vector length, read from an index's stored row without loading the entry."""
    stored = entry.stored_row
    return int(stored[0].numel()) if stored is not None else entry.embedding.dim


# ---- reading one entry ----------------------------------------------------------------------
def read_embedding_files(folder: str | os.PathLike) -> TaskEmbedding:
    """A saved embedding, checked against what its metadata promises (dtype, length, finiteness).

    Raises:
        EntryFailure: naming what is wrong with the files.
    """
    from safetensors import safe_open

    folder = Path(folder)
    try:
        with safe_open(str(folder / EMBEDDING_NAME), framework="pt") as f:
            if "embedding" not in f.keys():
                raise EntryFailure(f"{EMBEDDING_NAME} has no 'embedding' tensor")
            sl = f.get_slice("embedding")
            dtype, shape = sl.get_dtype(), sl.get_shape()
    except EntryFailure:
        raise
    except Exception as err:
        raise EntryFailure(f"{EMBEDDING_NAME} is not a readable safetensors file ({str(err).splitlines()[0][:120]})") from err
    if dtype not in _FLOAT_DTYPES or len(shape) != 1:
        raise EntryFailure(f"{EMBEDDING_NAME} holds a {dtype} tensor of shape {shape}, not a 1-D float vector")
    try:
        if (folder / METADATA_NAME).stat().st_size > _MAX_METADATA_BYTES:
            raise EntryFailure(f"{METADATA_NAME} is over {_MAX_METADATA_BYTES:,} bytes: not a taskemb-hub metadata file")
        meta = json.loads((folder / METADATA_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EntryFailure(f"{METADATA_NAME} is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("signature"), dict) or not meta.get("method"):
        raise EntryFailure(f"{METADATA_NAME} has no signature/method: it was not written by taskemb-hub")
    problem = _metadata_problem(meta)
    if problem:
        raise EntryFailure(f"{METADATA_NAME}: {problem}; re-publish it with `taskemb-hub publish`")
    if meta.get("dim") is not None and int(meta["dim"]) != shape[0]:
        raise EntryFailure(f"vector length {shape[0]} does not match its signature ({meta['dim']} values)")
    try:
        return TaskEmbedding.load(folder)
    except TaskEmbHubError as err:
        raise EntryFailure(_without_folder(str(err).splitlines()[0], folder)) from err


_MAX_METADATA_BYTES = 1 << 20  # a real taskemb.json is a few KB (its signature lists the modules)


_MAX_TASK_CHARS = 200


def _metadata_problem(meta: dict) -> str | None:
    """What in a Hub entry's `taskemb.json` is not of the type taskemb-hub writes (None when all is), checked
    before it reaches a ranking or an index (where one repo's string `step` would break the whole index's table)."""
    from ..methods import list_methods

    method, task = meta.get("method"), meta.get("task")
    if method not in list_methods() or meta["signature"].get("method", method) != method:
        return f"method {str(method)[:40]!r} is not a PEFT method of its signature ({', '.join(list_methods())})"
    if not isinstance(task, str) or not 0 < len(task) <= _MAX_TASK_CHARS:
        return f"task must be a name of 1 to {_MAX_TASK_CHARS} characters"
    for key in ("step", "train_size"):
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            return f"{key} must be a non-negative integer, not {str(value)[:40]!r}"
    metrics = meta.get("metrics")
    if metrics is not None and not (isinstance(metrics, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in metrics.items())):
        return "metrics must map metric names to numbers"
    return None


def _without_folder(reason: str, folder: Path) -> str:
    """A reason about a repo's files without the HF cache folder they were read from: reasons are shown to
    users and Space visitors, and a path of this machine is never shown."""
    for path in sorted({str(folder), str(Path(folder).resolve())}, key=len, reverse=True):
        reason = reason.replace(f"`taskemb-hub embed {path}`", "`taskemb-hub embed <adapter folder>`")
        reason = reason.replace(f"{path}: ", "").replace(path, "the repo")
    return reason


def embed_adapter_folder(folder: Path, *, task: str, base_model: str | None) -> TaskEmbedding:
    """Embed a downloaded plain PEFT adapter (safetensors only), refusing another base model."""
    try:
        return TaskEmbedding.from_adapter(folder, base_model=base_model, task=task)
    except IncompatibleEmbeddingError as err:
        raise EntryFailure(f"wrong base model: {str(err).split(' was tuned on base model ')[-1].split(',')[0]}") from err
    except TaskEmbHubError as err:
        raise EntryFailure(f"not a usable PEFT adapter: {_without_folder(str(err).splitlines()[0], folder)}") from err

