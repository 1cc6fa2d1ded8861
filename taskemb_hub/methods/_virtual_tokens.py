"""Shared by prompt and prefix tuning: both tune a (virtual tokens × dim) matrix."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..errors import AdapterError
from .base import EmbeddingOptions, PeftMethod

KEY = "prompt_embeddings"


def virtual_token_vector(weights: dict, init: dict | None,
                         options: EmbeddingOptions) -> tuple[torch.Tensor, list[int], bool]:
    """Pool the (tuned − initial) virtual tokens; the raw tuned tokens when no init snapshot exists.

    peft draws the virtual tokens at random, so the raw matrix mixes the task signal with the
    init; the tuner saves the init beside the adapter (`taskemb_init.safetensors`) to remove it.
    """
    if KEY not in weights:
        raise AdapterError(f"No {KEY!r} tensor in this adapter; found {sorted(weights)[:5]}.")
    tokens = weights[KEY].double()
    relative = options.relative_to_init and init is not None and KEY in init
    if relative:
        if init[KEY].shape != tokens.shape:
            raise AdapterError(f"taskemb_init.safetensors has shape {tuple(init[KEY].shape)} but the adapter's "
                               f"{KEY} has {tuple(tokens.shape)}; delete the stale init file or retrain.")
        tokens = tokens - init[KEY].double()
    if tokens.dim() != 2:
        raise AdapterError(f"{KEY} should be a (virtual tokens × dim) matrix, got shape {tuple(tokens.shape)}.")
    vector = tokens.mean(0) if options.pooling == "mean" else tokens.reshape(-1)
    return vector.float(), list(tokens.shape), relative


class VirtualTokenMethod(PeftMethod):
    """A method whose tuned weights are virtual tokens; subclasses name the peft config class."""

    config_class_name: ClassVar[str]
    needs_init_snapshot = True

    def make_config(self, task_type: str, **overrides):
        import peft

        kwargs = dict(num_virtual_tokens=20)
        kwargs.update(overrides)
        return getattr(peft, self.config_class_name)(task_type=task_type, **kwargs)

    def embed(self, weights, adapter_config, options: EmbeddingOptions, init=None):
        vector, shape, relative = virtual_token_vector(weights, init, options)
        token_part = {"num_virtual_tokens": shape[0]} if options.pooling == "flatten" else {}
        # Raw tokens (SPoT) and changes from init live in different spaces: never compare them.
        raw_part = {} if relative else {"raw_tokens": True}
        return vector, self._signature(options, token_dim=shape[1], pooling=options.pooling, **token_part, **raw_part)
