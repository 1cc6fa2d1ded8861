"""`TaskEmbedding`: a task's tuned PEFT weights as a vector, plus what is needed to compare it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .adapters import PICKLE_WEIGHTS_NAME, WEIGHTS_NAME, AdapterFiles, read_adapter
from .base_model import (canonical_model_id, describe_model_id, is_legacy_local_id, is_local_id,
                         legacy_id_names_folder, legacy_id_of_seen_model, looks_like_folder_name, normalise_local_id,
                         read_base_model_config, recorded_model_id, seen_folder_name)
from .cards import public_extra, public_source
from .errors import AdapterError, IncompatibleEmbeddingError, TaskEmbHubError
from .methods import EmbeddingOptions, get_method
from .methods.base import check_finite, signature_hash

EMBEDDING_NAME = "taskemb.safetensors"
METADATA_NAME = "taskemb.json"
FORMAT_VERSION = "taskemb-hub/1"
# The version of the code that turns adapter weights into a vector (`from_state_dict` and each method's
# `embed_for_base_model`). Bump it whenever the same adapter bytes would embed to another vector (a method's
# blocks, scaling, sketch or dropped modules change): cached parses of Hub adapters (the sync's local copy, an
# index's rows) are keyed by it, so a bump makes every reader embed those adapters again instead of keeping the
# old vector (registries/hub.py `HubRegistry.parse_key`).
EMBEDDING_CODE_VERSION = 1


@dataclass
class TaskEmbedding:
    """A task embedding and its metadata.

    Args:
        vector: 1-D float tensor.
        task: task name.
        base_model: id of the base model the weights were tuned on.
        method: PEFT method name (`lora`, `prompt`, `prefix`, `ia3`, `bitfit`) or a baseline name.
        signature: what defines the vector's space (method, modules and shapes, options);
            two embeddings are comparable only when their signatures are equal.
        step: training step of the checkpoint, if known.
        train_size: number of training examples the task was tuned on.
        metrics: in-task metric(s) of the checkpoint, e.g. `{"accuracy": 0.81}`.
        extra: anything else worth keeping (seed, source, labels).
        adapter_sha256: sha256 of the adapter weights file the vector was computed from
            (`adapter_model.safetensors`), recorded by `save` in both files; a saved embedding whose
            adapter beside it has other bytes is stale (see `load`). None: not known (an embedding
            of no saved adapter, or one written before taskemb-hub recorded it).

    Example:
        ```python
        >>> emb = TaskEmbedding.from_adapter("runs/rte-lora/step-100")
        >>> emb.similarity(TaskEmbedding.from_adapter("runs/mnli-lora/step-100"))
        0.42
        ```
    """

    vector: torch.Tensor
    task: str
    base_model: str
    method: str
    signature: dict[str, Any]
    step: int | None = None
    train_size: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    adapter_sha256: str | None = None

    def __post_init__(self):
        self.vector = torch.as_tensor(self.vector, dtype=torch.float32).reshape(-1)
        self.base_model = normalise_local_id(self.base_model)  # the form compared and hashed (index rows too)
        self._check_finite()

    def _check_finite(self) -> None:
        if not torch.isfinite(self.vector).all():
            raise AdapterError(f"The embedding of task {self.task!r} holds NaN or inf values; the tuned weights are "
                               "corrupt or training diverged. Retrain with a lower learning rate.")

    def check_usable(self) -> None:
        """Refuse a vector that cannot rank anything: NaN/inf (also if set after construction), all zeros, or a
        norm its signature rules out (`norm_problem`: one such vector would move the `centered` mean).

        Raises:
            AdapterError: naming the cause and the fix.
        """
        self._check_finite()
        if self.dim == 0 or not bool(self.vector.any()):
            raise AdapterError(f"The embedding of task {self.task!r} is all zeros: the tuned weights did not move from "
                               "their start (no training steps, a zero learning rate, or data with nothing to learn). "
                               "Tune it again on data with at least two labels.")
        problem = norm_problem(float(self.vector.double().norm()), self.signature)
        if problem:
            raise AdapterError(f"The embedding of task {self.task!r}: {problem}")

    # ---- identity and comparison -------------------------------------------------------
    @property
    def signature_hash(self) -> str:
        return signature_hash({"base_model": self.base_model, **self.signature})

    @property
    def dim(self) -> int:
        return int(self.vector.numel())

    def incompatibility(self, other: "TaskEmbedding") -> str | None:
        """Why `other` cannot be compared with this embedding, or None when it can."""
        if other.base_model != self.base_model:
            return _base_model_difference(other.base_model, self.base_model)
        if other.method != self.method:
            return f"method {other.method!r} differs from {self.method!r}"
        if other.signature != self.signature or other.dim != self.dim:
            diff = sorted(k for k in set(self.signature) | set(other.signature)
                          if self.signature.get(k) != other.signature.get(k))
            reason = f"{self.method} shapes/options differ ({', '.join(diff) or 'dimension'}: {other.dim} vs {self.dim} values)"
            hint = _method_hint(self, other)
            return f"{reason}: {hint}" if hint else reason
        return None

    def check_compatible(self, other: "TaskEmbedding") -> None:
        reason = self.incompatibility(other)
        if reason:
            raise IncompatibleEmbeddingError(
                f"Cannot compare {self.task!r} with {other.task!r}: {reason}. Embed both with the same base model, "
                "PEFT method, target modules and embedding options.")

    def similarity(self, other: "TaskEmbedding") -> float:
        """Cosine similarity; raises `IncompatibleEmbeddingError` across spaces."""
        self.check_compatible(other)
        return float(torch.nn.functional.cosine_similarity(self.vector.double(), other.vector.double(), dim=0))

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_state_dict(cls, weights: dict[str, torch.Tensor], adapter_config: dict, *, task: str | None = None,
                        base_model: str | None = None, init: dict | None = None, info: dict | None = None,
                        options: EmbeddingOptions | None = None, base_model_config: Any = None) -> "TaskEmbedding":
        """Embed a peft state dict (as `get_peft_model_state_dict` returns) with its config dict.

        `base_model_config` (a transformers config or its dict) is the base model's architecture, which BitFit's
        embedding depends on; when None it is the one `tune` recorded in `info`, else read from this machine
        (`read_base_model_config`), else unknown.
        """
        options = options or EmbeddingOptions()
        method = get_method(adapter_config.get("peft_type", ""))
        check_finite(weights, f"adapter of task {task or (info or {}).get('task')!r}")
        info = dict(info or {})
        base = base_model or info.get("base_model") or adapter_config.get("base_model_name_or_path") or "unknown"
        if base_model_config is None:
            base_model_config = info.get("base_model_config") or read_base_model_config(base)
        vector, signature = method.embed_for_base_model(weights, adapter_config, options, init, base_model_config)
        return cls(vector=vector, task=task or info.get("task") or "unknown", base_model=recorded_model_id(base),
                   method=method.name, signature=signature, step=info.get("step"), train_size=info.get("train_size"),
                   metrics=info.get("metrics", {}),
                   extra=public_extra({k: info[k] for k in ("seed", "labels", "source", "recipe", "train_split", "chance")
                                       if k in info}))

    @classmethod
    def from_adapter(cls, path: str | os.PathLike, *, base_model: str | None = None,
                     options: EmbeddingOptions | None = None, allow_pickle: bool = False,
                     task: str | None = None) -> "TaskEmbedding":
        """Embed an adapter folder (`adapter_config.json` + `adapter_model.safetensors`).

        Args:
            path: the adapter folder.
            base_model: the base model you will compare on; an adapter tuned on another one
                raises `IncompatibleEmbeddingError`.
            options: embedding options; defaults are those of the default registry.
            allow_pickle: accept a pickle `adapter_model.bin` (only for trusted files).
            task: task name, when the folder does not record one.
        """
        before = adapter_digest(path)
        files: AdapterFiles = read_adapter(path, allow_pickle=allow_pickle)
        digest = adapter_digest(path)
        if digest != before:  # re-saved while being read: the hash would not be of the bytes embedded
            raise AdapterError(f"The adapter weights in {path} changed while they were read. Retry once the adapter "
                               "is saved.")
        recorded = _checked_base_model(path, files.info.get("base_model") or files.config.get("base_model_name_or_path"),
                                       base_model)
        emb = cls.from_state_dict(files.weights, files.config, task=task or files.info.get("task") or Path(path).name,
                                  base_model=recorded, init=files.init, info=files.info, options=options,
                                  base_model_config=read_base_model_config(base_model) if base_model else None)
        emb.extra.setdefault("source", public_source(str(path)))  # where the data is, never a path of this machine
        emb.adapter_sha256 = digest  # the bytes embedded: the only hash an embedding ever records
        return emb

    @classmethod
    def from_peft_model(cls, model, *, task: str, adapter_name: str = "default", info: dict | None = None,
                        options: EmbeddingOptions | None = None, init: dict | None = None) -> "TaskEmbedding":
        """Embed a live `PeftModel` (no save needed)."""
        from peft import get_peft_model_state_dict

        config = model.peft_config[adapter_name]
        weights = {k: v.detach().cpu() for k, v in get_peft_model_state_dict(model, adapter_name=adapter_name, save_embedding_layers=False).items()}
        config_dict = json.loads(json.dumps(config.to_dict(), default=lambda o: sorted(o) if isinstance(o, set) else str(o)))
        return cls.from_state_dict(weights, config_dict, task=task, base_model=config.base_model_name_or_path,
                                   init=init, info=info, options=options, base_model_config=model.get_base_model().config)

    # ---- storage -----------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        meta = {k: v for k, v in asdict(self).items() if k != "vector"}
        meta.update(format=FORMAT_VERSION, dim=self.dim, signature_hash=self.signature_hash)
        return meta

    def save(self, folder: str | os.PathLike) -> Path:
        """Write `taskemb.safetensors` and `taskemb.json` into `folder` (atomically: no half-written files).

        Both files record the signature hash and the sha256 of the adapter weights the vector was computed
        from (`adapter_sha256`), so `load` can tell a vector of other bytes, or a pair of two writes. Only a
        hash the embedding knows is recorded (`from_adapter` computes it from the bytes it embeds; `tune` sets
        that of the adapter it saved): never that of whatever adapter sits in `folder`, which may be newer than
        the vector (an old file without a hash stays without one).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        header = {"format": FORMAT_VERSION, "signature_hash": self.signature_hash}
        if self.adapter_sha256:
            header["adapter_sha256"] = self.adapter_sha256
        _atomic_write(folder / EMBEDDING_NAME, lambda p: Path(p).write_bytes(_safetensors_bytes(self.vector, header)))
        _atomic_write(folder / METADATA_NAME, lambda p: Path(p).write_text(json.dumps(self.metadata(), indent=2)))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, *, check_tied: bool = True) -> "TaskEmbedding":
        """Read an embedding saved by `save` (a registry entry or an adapter folder), checked against the
        adapter beside it.

        Args:
            folder: the folder holding `taskemb.safetensors` and `taskemb.json`.
            check_tied: False reads the two files as they are, unchecked (only for a repair tool that
                finishes a pair cut between its two writes).

        Raises:
            StaleEmbeddingError: the two files come from different writes, or the adapter weights beside
                them are not the bytes the vector was computed from (`load_embedding` re-embeds instead).
            AdapterError: the files are missing or unreadable.
        """
        folder = Path(folder)
        vec_file, meta_file = folder / EMBEDDING_NAME, folder / METADATA_NAME
        if not vec_file.is_file() or not meta_file.is_file():
            raise AdapterError(f"{folder} has no {EMBEDDING_NAME}/{METADATA_NAME}. Run `taskemb-hub embed {folder}` first.")
        try:
            vector, header = _read_vector(vec_file)
            meta = json.loads(meta_file.read_text())
        except Exception as err:
            raise AdapterError(f"{folder}: embedding files are unreadable ({err}). Re-run `taskemb-hub embed`.") from err
        required = {"task": str, "base_model": str, "method": str, "signature": dict}
        wrong = [k for k, kind in required.items() if not isinstance(meta.get(k) if isinstance(meta, dict) else None, kind)]
        if wrong:
            what = ", ".join(f"{k!r}" for k in wrong)
            raise AdapterError(f"{meta_file} has no {what} (or not of the right type), so the vector's space is unknown. "
                               f"Re-create it with `taskemb-hub embed <adapter folder>`.")
        fields = {k: meta.get(k) for k in ("task", "base_model", "method", "signature", "step", "train_size")}
        embedding = cls(vector=vector, metrics=meta.get("metrics") or {}, extra=meta.get("extra") or {},
                        adapter_sha256=meta.get("adapter_sha256"), **fields)  # a corrupt vector: said first
        if check_tied:
            _check_tied(folder, header, meta)
        return embedding


class StaleEmbeddingError(AdapterError):
    """A saved embedding that does not belong to the adapter beside it (or whose two files disagree)."""


def adapter_digest(folder: str | os.PathLike) -> str | None:
    """sha256 (hex) of the adapter weights file in `folder` (`adapter_model.safetensors`, else the pickle
    `adapter_model.bin`, hashed, never loaded), or None when it holds none."""
    folder = Path(folder)
    for name in (WEIGHTS_NAME, PICKLE_WEIGHTS_NAME):
        if (folder / name).is_file():
            digest = hashlib.sha256()
            with open(folder / name, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()
    return None


def _read_vector(path: Path) -> tuple[torch.Tensor, dict[str, str]]:
    """The `embedding` tensor of a saved vector file and its header metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor("embedding"), dict(handle.metadata() or {})


_WARNED_UNTIED: set[str] = set()


def _check_tied(folder: Path, header: dict[str, str], meta: dict) -> None:
    """Refuse a vector file and a json of different writes, or a vector of other adapter bytes than the
    adapter beside it; warn (once per process) about a file too old to record its adapter's hash."""
    fix = f"Re-embed the adapter: `taskemb-hub embed {folder}`."
    for key in ("signature_hash", "adapter_sha256"):
        in_header, in_json = header.get(key), meta.get(key)
        if key == "signature_hash" and None in (in_header, in_json):
            continue  # a file from before the header recorded it: nothing to compare
        if in_header != in_json:
            raise StaleEmbeddingError(f"{folder}: {EMBEDDING_NAME} and {METADATA_NAME} come from different saves "
                                      f"(their {key} differ: {in_header} vs {in_json}). {fix}")
    recorded, beside = meta.get("adapter_sha256"), adapter_digest(folder)
    if recorded and beside and recorded != beside:
        raise StaleEmbeddingError(f"{folder / EMBEDDING_NAME} was computed from other adapter weights than the "
                                  f"{WEIGHTS_NAME} beside it (re-saved since). {fix}")
    if beside and not recorded and not _WARNED_UNTIED:  # once per process: a registry may hold many such files
        _WARNED_UNTIED.add(str(folder))
        warnings.warn(f"{folder / EMBEDDING_NAME} predates adapter hashes, so whether it still matches the adapter "
                      f"beside it is unknown; it is used as is (further such files are not reported). {fix}",
                      stacklevel=3)


NORM_TOLERANCE = 1e-3  # float32 rounding of unit blocks is ~1e-7; an index stores rows in float16, norms in float32


def norm_problem(norm: float, signature: dict) -> str | None:
    """Why a vector of this `norm` cannot be one of `signature`, in one line, or None when it can.

    A zero vector ranks nothing, and a per-module-normalised vector (BitFit, LoRA, IA3: `norm_bounds`)
    has a norm between 1 and sqrt(number of modules); a registry entry outside that range was altered
    or not made by taskemb-hub, and one with a huge norm would move every ranking's `centered` mean.
    """
    from .methods.base import norm_bounds

    if not norm > 0:
        return ("the vector is all zeros (the tuned weights did not move from their start); tune it again on data with "
                "at least two labels")
    bounds = norm_bounds(signature)
    if bounds is not None and not bounds[0] * (1 - NORM_TOLERANCE) <= norm <= bounds[1] * (1 + NORM_TOLERANCE):
        return (f"the vector's norm {norm:.4g} does not fit its signature (each of its {len(signature['modules'])} "
                f"modules is scaled to norm 1 or 0, so the norm is between {bounds[0]:g} and {bounds[1]:.4g}): the "
                "file was altered or not made by taskemb-hub; re-embed the adapter with `taskemb-hub embed`")
    return None


def _base_model_difference(theirs: str, ours: str) -> str:
    """Why two recorded base models differ, in words; with the fix when one may be a local base model as an older
    taskemb-hub recorded it (a bare folder name, or `local:<name>@<fingerprint>` / `local:<fingerprint>` with the
    first fingerprint, of config and weights only): the same folder may be behind both."""
    reason = f"base model {describe_model_id(theirs)} differs from {describe_model_id(ours)}"
    fix = ("re-embed each such entry's adapter with `taskemb-hub embed <adapter folder> --base-model <{folder}>` "
           "(it records today's id), or rebuild the registry (`taskemb-hub registry build`)")
    for old, new in ((theirs, ours), (ours, theirs)):
        if is_local_id(old) and legacy_id_of_seen_model(old, new):
            folder = seen_folder_name(new)
            return (f"{reason}: {old!r} is folder {folder!r}, recorded by an older taskemb-hub (its fingerprint "
                    f"covered the config and weights only); " + fix.format(folder=f"the folder {folder!r}"))
    legacy = [m for m in (theirs, ours) if looks_like_folder_name(m) or is_legacy_local_id(m)]
    if legacy and (is_local_id(theirs) or is_local_id(ours)):
        kind = "a bare folder name" if looks_like_folder_name(legacy[0]) else "a local id with the folder's name"
        return (f"{reason} ({legacy[0]!r} is {kind}, as older taskemb-hub versions recorded a local base model; if it "
                "is the same model, " + fix.format(folder="that model's folder") + ")")
    if is_local_id(theirs) and is_local_id(ours):
        return (f"{reason} (two local base models; if both came from one folder, one id may be an older taskemb-hub's "
                "fingerprint: " + fix.format(folder="that folder") + ")")
    return reason


def _checked_base_model(path, recorded: str | None, base_model: str | None) -> str | None:
    """The base model to embed an adapter under: the one it records (never looked up in the current folder),
    checked against the user's `base_model`. An id an older taskemb-hub recorded takes the id of the folder the
    user passes when it names that folder: a bare folder name of that folder's name (they vouch it is that model),
    or a `local:<name>@X` / `local:X` id whose X is that folder's first (v1) fingerprint (the files are that model).

    Raises:
        IncompatibleEmbeddingError: the adapter records another base model.
    """
    if base_model is None or not recorded:
        return recorded
    theirs, ours = recorded_model_id(recorded), canonical_model_id(base_model)
    if theirs == ours:
        return recorded
    folder = Path(str(base_model)).expanduser().resolve()
    if looks_like_folder_name(theirs) and is_local_id(ours) and folder.name == theirs:
        return ours
    if is_local_id(theirs) and is_local_id(ours) and legacy_id_names_folder(theirs, folder):
        return ours
    raise IncompatibleEmbeddingError(
        f"{path} was tuned on base model {describe_model_id(theirs)}, not {describe_model_id(ours)}. Use adapters of "
        "the same base model, or pass the base model it was tuned on.")


def _method_hint(embedding: TaskEmbedding, other: TaskEmbedding) -> str | None:
    """The method's own explanation of a signature difference (e.g. BitFit vectors embedded before key biases
    were dropped), or None for baselines and unknown methods."""
    try:
        method = get_method(embedding.method)
    except TaskEmbHubError:
        return None
    return method.incompatibility_hint(embedding.signature, other.signature, repr(embedding.task), repr(other.task),
                                       base_model=embedding.base_model)


def _read_umask() -> int:
    """The process umask, read without changing it (os.umask(0) would briefly open other threads' new files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:  # no /proc: the set-and-restore, once, serialised
        umask = os.umask(0o077)
        os.umask(umask)
    return umask


_UMASK_LOCK = __import__("threading").Lock()


def default_mode(directory: bool = False) -> int:
    """The mode `open`/`mkdir` would give under the current umask (mkstemp/mkdtemp give 0600/0700, which
    would hide a shared registry's entries from the rest of the group)."""
    return (0o777 if directory else 0o666) & ~_read_umask()


def _safetensors_bytes(vector: torch.Tensor, metadata: dict[str, str]) -> bytes:
    """A one-tensor safetensors file with a key-sorted header.

    `safetensors.save_file` writes its metadata in hash-map order, which changes from process to
    process: the same embedding saved twice gave different bytes, so re-publishing identical content
    made a new Hub commit. The format is an 8-byte header length, the JSON header, then the data.
    """
    import struct

    data = vector.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()
    header = {"__metadata__": dict(sorted(metadata.items())),
              "embedding": {"dtype": "F32", "shape": [int(vector.numel())], "data_offsets": [0, len(data)]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text + data


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_embedding(path: str | os.PathLike, **kwargs) -> TaskEmbedding:
    """An embedding from a folder: the saved `taskemb.safetensors` if present and computed from the adapter beside
    it, else the adapter embedded now (a stale saved vector is never served; the file is not rewritten).

    A stale vector is replaced by the adapter embedded with the options the stale one records (its signature,
    else its recipe's), not the defaults, so it stays in the space it was saved in.

    Args:
        path: an adapter folder or a registry entry.
        **kwargs: passed to `TaskEmbedding.from_adapter` when the adapter is embedded.

    Raises:
        StaleEmbeddingError: the saved vector is stale and the adapter beside it cannot be embedded here (none,
            or only a pickle `adapter_model.bin` without `allow_pickle`).
    """
    path = Path(path)
    if (path / EMBEDDING_NAME).is_file():
        try:
            return TaskEmbedding.load(path)
        except StaleEmbeddingError as err:
            if adapter_digest(path) is None:  # nothing to compute it from
                raise
            if not (path / WEIGHTS_NAME).is_file() and not kwargs.get("allow_pickle"):
                raise StaleEmbeddingError(
                    f"{err} The adapter beside it holds only {PICKLE_WEIGHTS_NAME}, a pickle that is not read "
                    f"without allow_pickle: re-save it as {WEIGHTS_NAME} (peft save_pretrained(safe_serialization="
                    f"True)) and run `taskemb-hub embed {path}`, or, if you trust it, `taskemb-hub embed {path} "
                    "--allow-pickle`.") from None
            warnings.warn(f"{err} Using the adapter's embedding computed now.", stacklevel=2)
            kwargs.setdefault("options", recorded_options(path / METADATA_NAME))
    return TaskEmbedding.from_adapter(path, **kwargs)


def recorded_options(meta_file: Path) -> EmbeddingOptions:
    """The embedding options a saved `taskemb.json` was computed with: from its signature (what defines the
    vector's space), the rest from its recipe's `embedding`, the rest the defaults (an unreadable file: the defaults).

    Args:
        meta_file: a `taskemb.json`.

    Returns:
        The options to embed its adapter again in the same space.
    """
    try:
        meta = json.loads(Path(meta_file).read_text())
    except (OSError, ValueError):
        meta = None
    meta = meta if isinstance(meta, dict) else {}
    signature = meta.get("signature") if isinstance(meta.get("signature"), dict) else {}
    recipe = (meta.get("extra") or {}).get("recipe") if isinstance(meta.get("extra"), dict) else None
    recorded = recipe.get("embedding") if isinstance(recipe, dict) else None
    values = dict(recorded) if isinstance(recorded, dict) else {}
    values.update({k: signature[k] for k in ("sketch_dim", "sketch_seed", "per_module_norm", "pooling")
                   if k in signature})
    if "pooling" in signature:  # prompt/prefix: raw tokens (SPoT) are marked, changes from init are not
        values["relative_to_init"] = not signature.get("raw_tokens", False)
    fields = {f.name for f in dataclasses.fields(EmbeddingOptions)}
    try:
        return EmbeddingOptions(**{k: v for k, v in values.items() if k in fields})
    except (TypeError, ValueError):  # a hand-edited file: what it records cannot be used
        return EmbeddingOptions()
