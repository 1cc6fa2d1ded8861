"""IA3: learned rescaling vectors l (initialised to 1); the embedding is l − 1 per module."""

from __future__ import annotations

from ..errors import AdapterError
from . import register_method
from .base import EmbeddingOptions, PeftMethod, concat_blocks, module_name

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
        vectors = {module_name(k, _SUFFIX): v for k, v in self.body_weights(weights).items() if k.endswith(_SUFFIX)}
        if not vectors:
            raise AdapterError("No ia3_l vectors found in this IA3 adapter. Was it saved with peft's save_pretrained?")
        names = sorted(vectors)
        blocks = [vectors[n].double() - 1.0 for n in names]
        signature = self._signature(options, modules={n: list(vectors[n].shape) for n in names},
                                    per_module_norm=options.per_module_norm)
        return concat_blocks(blocks, options.per_module_norm), signature
