"""Prompt tuning: trainable virtual tokens prepended to the input embeddings (Lester et al. 2021)."""

from __future__ import annotations

from . import register_method
from ._virtual_tokens import virtual_token_vector
from .base import EmbeddingOptions, PeftMethod


@register_method
class PromptTuningMethod(PeftMethod):
    name = "prompt"
    peft_type = "PROMPT_TUNING"
    default_learning_rate = 3e-2
    needs_init_snapshot = True

    def make_config(self, task_type: str, **overrides):
        from peft import PromptTuningConfig

        kwargs = dict(num_virtual_tokens=20)
        kwargs.update(overrides)
        return PromptTuningConfig(task_type=task_type, **kwargs)

    def embed(self, weights, adapter_config, options: EmbeddingOptions, init=None):
        vector, shape = virtual_token_vector(weights, init, options)
        token_part = {"num_virtual_tokens": shape[0]} if options.pooling == "flatten" else {}
        signature = self._signature(options, token_dim=shape[1], pooling=options.pooling, **token_part)
        return vector, signature
