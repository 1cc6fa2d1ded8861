"""BitFit as a real peft adapter: peft's BEFT adds a zero-initialised bias to each targeted Linear.

Tuning that bias is tuning the layer's bias term (the base bias stays frozen and is summed),
so the adapter folder saves, loads and publishes like LoRA, and "tuned minus pretrained bias"
is exactly the saved `beft_bias`.

Attention key biases are left out, of training and of the embedding. A key bias `b` adds `q_i·b`
to every logit of query row `i`, the same for every key, and softmax ignores a constant added to a
whole row: the bias changes nothing the model computes and gets no gradient (MiniLM: gradient norm
<= 4e-10 against 2e-3..6e-3 for the other biases). After tuning it holds float noise (norm 2e-4..3e-4
against 9e-2..6e-1), which per-module normalisation would blow up to one unit-norm block in six: the
same MiniLM run on 1 and on 2 threads gave embeddings at cosine 0.87 (benchmarks/bitfit_key_bias.py).
(This holds for absolute-position attention, BERT's; rotary position embeddings rotate the key bias
differently for each key, so there it does carry gradient.)

Adapters tuned before this change hold key biases (so do ones on the Hub); they embed into the same
space as new ones, their key biases dropped. Vectors embedded WITH the key blocks have another
signature (its `modules` list them) and are never ranked with new ones: `drop_gradient_free_blocks`
converts them exactly, or re-embed the adapter.
"""

from __future__ import annotations

import re

from ..errors import AdapterError
from . import register_method
from .base import EmbeddingOptions, PeftMethod, embed_module_tensors, module_name

_SUFFIX = ".beft_bias"
# Every Linear inside the encoder blocks (BERT naming) except the attention keys (no gradient, see above);
# the pooler and head stay out.
BERT_LINEARS = r".*encoder\.layer\.\d+\.(attention\.self\.(query|value)|.*dense)$"
# Modules whose bias carries no gradient: attention keys of softmax attention with absolute positions.
GRADIENT_FREE = re.compile(r"(^|\.)attention\.self\.key$")
GRADIENT_FREE_DESCRIPTION = "attention key biases (attention.self.key), which get no gradient"


def is_gradient_free(module: str) -> bool:
    """Whether a BEFT bias on `module` (a module name, e.g. `bert.encoder.layer.0.attention.self.key`)
    leaves the model's output unchanged, so that its tuned value is noise."""
    return bool(GRADIENT_FREE.search(module))


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
        kept = {k: v for k, v in weights.items() if not is_gradient_free(module_name(k, _SUFFIX))}
        biases = [k for k in self.body_weights(weights) if k.endswith(_SUFFIX)]
        if biases and not any(k in kept for k in biases):
            raise AdapterError(f"This bitfit adapter tunes only {GRADIENT_FREE_DESCRIPTION}: nothing it holds "
                               "describes the task. Tune it again with the default target modules.")
        return embed_module_tensors(self, kept, _SUFFIX, options)  # BEFT bias starts at 0

    def incompatibility_hint(self, signature: dict, other: dict, name: str = "this embedding",
                             other_name: str = "the other") -> str | None:
        """Say so when exactly one side was embedded with the gradient-free key-bias blocks (older versions)."""
        old = [n for n, s in ((name, signature), (other_name, other))
               if any(is_gradient_free(m) for m in (s.get("modules") or {}))]
        if len(old) != 1:
            return None
        return (f"{old[0]} was embedded by an older taskemb-hub that kept BitFit's {GRADIENT_FREE_DESCRIPTION} (float "
                "noise); re-embed its adapter with `taskemb-hub embed`, or convert the vector with "
                "`taskemb_hub.methods.bitfit.drop_gradient_free_blocks`")


def drop_gradient_free_blocks(embedding):
    """Convert a BitFit `TaskEmbedding` embedded with the key-bias blocks into today's space, exactly.

    The signature lists the modules in the order their blocks sit in the vector (sorted names)
    with their shapes, so the key-bias blocks are cut out by position. Each block was normalised
    on its own, so the rest is bit-for-bit what embedding the adapter now gives. An embedding
    without such blocks is returned unchanged (converting twice is converting once).

    Args:
        embedding: a `TaskEmbedding` of method `bitfit`.

    Returns:
        A new `TaskEmbedding` (or `embedding` itself when there was nothing to drop).

    Raises:
        AdapterError: not a BitFit embedding, or its length does not match its signature.

    Example:
        ```python
        >>> old = TaskEmbedding.load("registry/rte")           # 20,736 values: 36 blocks
        >>> drop_gradient_free_blocks(old).dim                 # 30 blocks, the key biases gone
        18432
        ```
    """
    import math

    import torch

    if embedding.method != BitFitMethod.name:
        raise AdapterError(f"{embedding.task!r} is a {embedding.method} embedding; only bitfit embeddings hold "
                           "key-bias blocks.")
    modules = embedding.signature.get("modules")
    if not isinstance(modules, dict) or not any(is_gradient_free(m) for m in modules):
        return embedding
    names = sorted(modules)  # the order embed_module_tensors concatenates them in
    sizes = [math.prod(modules[n]) for n in names]
    if sum(sizes) != embedding.dim:
        raise AdapterError(f"{embedding.task!r}: vector length {embedding.dim} does not match its signature "
                           f"({sum(sizes)} values); re-embed its adapter with `taskemb-hub embed`.")
    keep, offset = [], 0
    for name, size in zip(names, sizes):
        if not is_gradient_free(name):
            keep.append(embedding.vector[offset:offset + size])
        offset += size
    if not keep:
        raise AdapterError(f"{embedding.task!r} holds only {GRADIENT_FREE_DESCRIPTION}; nothing is left to compare.")
    signature = dict(embedding.signature, modules={n: modules[n] for n in names if not is_gradient_free(n)})
    return type(embedding)(vector=torch.cat(keep), task=embedding.task, base_model=embedding.base_model,
                           method=embedding.method, signature=signature, step=embedding.step,
                           train_size=embedding.train_size, metrics=dict(embedding.metrics), extra=dict(embedding.extra))
