"""BitFit as a real peft adapter: peft's BEFT adds a zero-initialised bias to each targeted Linear.

Tuning that bias is tuning the layer's bias term (the base bias stays frozen and is summed),
so the adapter folder saves, loads and publishes like LoRA, and "tuned minus pretrained bias"
is exactly the saved `beft_bias`.
"""

from __future__ import annotations

from . import register_method
from .base import EmbeddingOptions, PeftMethod, embed_module_tensors

_SUFFIX = ".beft_bias"
# Every Linear inside the encoder blocks (BERT naming); the pooler and head stay out.
BERT_LINEARS = r".*encoder\.layer\.\d+\..*(query|key|value|dense)$"


@register_method
class BitFitMethod(PeftMethod):
    name = "bitfit"
    peft_type = "BEFT"
    default_learning_rate = 1e-3

    def make_config(self, task_type: str, **overrides):
        from peft import BeftConfig

        kwargs = dict(target_modules=BERT_LINEARS)
        kwargs.update(overrides)
        return BeftConfig(task_type=task_type, **kwargs)

    def embed(self, weights, adapter_config, options: EmbeddingOptions, init=None):
        return embed_module_tensors(self, weights, _SUFFIX, options)  # BEFT bias starts at 0
