"""IA3: learned rescaling vectors l (initialised to 1); the embedding is l − 1 per module."""

from __future__ import annotations

from ._registry import register_method
from .base import EmbeddingOptions, PeftMethod, embed_module_tensors

_SUFFIX = ".ia3_l"


@register_method
class IA3Method(PeftMethod):
    name = "ia3"
    peft_type = "IA3"
    default_learning_rate = 3e-3

    def make_config(self, task_type: str, **overrides):
        from peft import IA3Config

        return IA3Config(task_type=task_type, **overrides)

    def embed(self, weights, adapter_config, options: EmbeddingOptions, init=None):
        return embed_module_tensors(self, weights, _SUFFIX, options, shift=1.0)  # IA3 starts at 1
