"""Read a PEFT adapter folder safely: config, weights (safetensors; pickle only on opt-in), extras."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .errors import AdapterError, UnsafeWeightsError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_WEIGHTS_NAME = "adapter_model.bin"
INIT_NAME = "taskemb_init.safetensors"  # start point of prompt/prefix tokens (random in peft)
CHECKPOINT_INFO_NAME = "taskemb_checkpoint.json"  # task, step, train size, in-task metric


@dataclass
class AdapterFiles:
    """What an adapter folder holds, loaded."""

    path: Path
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    init: dict[str, torch.Tensor] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def read_adapter(path: str | Path, *, allow_pickle: bool = False) -> AdapterFiles:
    """Load an adapter folder written by peft's `save_pretrained` (or by `taskemb-hub tune`).

    Args:
        path: the folder.
        allow_pickle: read a legacy `adapter_model.bin`. Unpickling runs arbitrary code from
            the file, so this is off unless you trust where the adapter came from.

    Raises:
        AdapterError: no folder, no `adapter_config.json`, no weights, unreadable files.
        UnsafeWeightsError: only a pickle `adapter_model.bin` is present and `allow_pickle` is off.
    """
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(f"{path} is not a folder. Pass the folder that peft's save_pretrained wrote.")
    config_file = path / CONFIG_NAME
    if not config_file.is_file():
        raise AdapterError(f"{path} has no {CONFIG_NAME}, so it is not a PEFT adapter folder. Pass the folder that "
                           f"peft's save_pretrained wrote (it holds {CONFIG_NAME} and {WEIGHTS_NAME}).")
    config = _read_json(config_file, "Re-save the adapter with peft")
    if not isinstance(config.get("peft_type"), str):
        raise AdapterError(f"{config_file} has no 'peft_type' (or not a string). Re-save the adapter with peft.")
    if not isinstance(config.get("base_model_name_or_path") or "", str):
        raise AdapterError(f"{config_file}: 'base_model_name_or_path' is not a string. Set it to the base model's Hub "
                           "id and re-save the adapter.")
    weights = _read_weights(path, allow_pickle)
    init = _read_init(path / INIT_NAME) if (path / INIT_NAME).is_file() else None
    info = _read_json(path / CHECKPOINT_INFO_NAME, "Delete it or tune again") \
        if (path / CHECKPOINT_INFO_NAME).is_file() else {}
    return AdapterFiles(path=path, config=config, weights=weights, init=init, info=info)


def _read_json(file: Path, fix: str) -> dict[str, Any]:
    """A JSON object from an adapter folder; anything else (bad UTF-8, bad JSON, a list) is an `AdapterError`."""
    try:
        value = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise AdapterError(f"{file} is not valid JSON (not UTF-8: byte {err.object[err.start:err.start + 1]!r} at "
                           f"{err.start}). {fix}.") from None
    except json.JSONDecodeError as err:
        raise AdapterError(f"{file} is not valid JSON ({err}). {fix}.") from None
    if not isinstance(value, dict):
        raise AdapterError(f"{file} holds a JSON {type(value).__name__}, not an object. {fix}.")
    return value


def _read_init(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except Exception as err:  # noqa: BLE001 - safetensors raises SafetensorError / OSError for a corrupt file
        raise AdapterError(f"{file} is not a readable safetensors file ({type(err).__name__}). Tune again.") from None


def _read_weights(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    safe, pickled = path / WEIGHTS_NAME, path / PICKLE_WEIGHTS_NAME
    if safe.is_file():
        try:
            return load_file(str(safe))
        except Exception as err:  # safetensors raises its own error types
            raise AdapterError(f"{safe} could not be read ({err}). The file is truncated or not safetensors.") from err
    if pickled.is_file():
        if not allow_pickle:
            raise UnsafeWeightsError(
                f"{path} holds only {PICKLE_WEIGHTS_NAME}, a pickle file: loading it can run arbitrary code. "
                f"Convert it to {WEIGHTS_NAME} (peft save_pretrained(safe_serialization=True)), or, if you trust "
                "its source, pass allow_pickle=True (CLI: --allow-pickle).")
        return torch.load(pickled, map_location="cpu", weights_only=True)
    raise AdapterError(f"{path} has {CONFIG_NAME} but no {WEIGHTS_NAME}. Copy the weights file beside the config.")
