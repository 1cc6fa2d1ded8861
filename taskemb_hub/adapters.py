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
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise AdapterError(f"{config_file} is not valid JSON ({err}). Re-save the adapter.") from err
    if "peft_type" not in config:
        raise AdapterError(f"{config_file} has no 'peft_type'. Re-save the adapter with peft.")
    weights = _read_weights(path, allow_pickle)
    init = load_file(str(path / INIT_NAME)) if (path / INIT_NAME).is_file() else None
    info = json.loads((path / CHECKPOINT_INFO_NAME).read_text()) if (path / CHECKPOINT_INFO_NAME).is_file() else {}
    return AdapterFiles(path=path, config=config, weights=weights, init=init, info=info)


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
