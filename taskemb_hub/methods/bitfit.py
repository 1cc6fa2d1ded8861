"""BitFit as a real peft adapter: peft's BEFT adds a zero-initialised bias to each targeted Linear.

Tuning that bias is tuning the layer's bias term (the base bias stays frozen and is summed),
so the adapter folder saves, loads and publishes like LoRA, and "tuned minus pretrained bias"
is exactly the saved `beft_bias`.

On the base models where it makes no difference, attention key biases are left out, of training and
of the embedding. In softmax attention with absolute positions (BERT's), a key bias `b` adds `q_i·b` to
every logit of query row `i`, the same for every key, and softmax ignores a constant added to a whole
row: the bias changes nothing the model computes and gets no gradient (MiniLM: gradient norm <= 4e-10
against 2e-3..6e-3 for the other biases). After tuning it holds float noise (norm 2e-4..3e-4 against
9e-2..6e-1), which per-module normalisation would blow up to one unit-norm block in six: the same MiniLM
run on 1 and on 2 threads gave embeddings at cosine 0.87 (benchmarks/bitfit_key_bias.py).

Other models reuse BERT's module names with attention where the key bias does matter: rotary positions
(RoFormer, ESM) rotate it differently for each key, YOSO normalises keys (key-bias gradients 3e-7..6e-5
on tiny random models). So the key biases are dropped only for a base model whose config can be read on
this machine (a local folder, the packaged MiniLM, the Hugging Face cache; never the network) and whose
`model_type` is one of `GRADIENT_FREE_KEY_MODEL_TYPES` with absolute positions; any other base model
keeps them, trained and embedded, as before.

Adapters tuned with key biases on such a base model (all of them before this change, so ones on the Hub)
embed into the same space as new ones, their key biases dropped. Vectors embedded WITH the key blocks
list them in their signature's `modules`, so they are never ranked with vectors embedded without them:
`drop_gradient_free_blocks` converts them exactly, or re-embed the adapter.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import AdapterError
from ._registry import register_method
from .base import EmbeddingOptions, PeftMethod, embed_module_tensors, module_name

_SUFFIX = ".beft_bias"
# Every Linear inside the encoder blocks (BERT naming); the pooler and head stay out.
ENCODER_LINEARS = r".*encoder\.layer\.\d+\..*(query|key|value|dense)$"
# The same without the attention keys, for base models whose key biases get no gradient (see above).
ENCODER_LINEARS_BUT_KEYS = r".*encoder\.layer\.\d+\.(attention\.self\.(query|value)|.*dense)$"
ATTENTION_KEY = re.compile(r"(^|\.)attention\.self\.key$")
# Encoders named like BERT (`encoder.layer.N.attention.self.key`) whose attention is softmax over
# `q·k` with absolute positions, each checked in transformers 5 (tests/test_bitfit_key_bias.py measures
# the key-bias gradient of a tiny random model of each). Not here on purpose: roformer and esm (rotary),
# yoso, mra and nystromformer (other attention), big_bird, layoutlm and splinter (not checked).
GRADIENT_FREE_KEY_MODEL_TYPES = frozenset({
    "bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "electra", "data2vec-text",
    "roberta-prelayernorm", "ernie", "xmod", "megatron-bert"})
GRADIENT_FREE_DESCRIPTION = "attention key biases (attention.self.key)"


def is_attention_key(module: str) -> bool:
    """Whether `module` (a module name, e.g. `bert.encoder.layer.0.attention.self.key`) is an attention key
    in BERT's naming: the modules whose bias `key_biases_are_gradient_free` is about."""
    return bool(ATTENTION_KEY.search(module))



def key_biases_are_gradient_free(base_model_config: Any) -> bool:
    """Whether the attention key biases of this base model leave its output unchanged (so tuned ones are noise).

    Args:
        base_model_config: the base model's config (a transformers config or its dict), or None
            when it could not be read.

    Returns:
        True only for a known config whose `model_type` is in `GRADIENT_FREE_KEY_MODEL_TYPES` and whose
        `position_embedding_type`, when it has one, is `absolute`; False for anything else, unknown included
        (keeping a block of noise costs less than dropping a tuned parameter).
    """
    if base_model_config is None:
        return False
    get = base_model_config.get if isinstance(base_model_config, dict) else (
        lambda key, default=None: getattr(base_model_config, key, default))
    model_type = str(get("model_type") or "").replace("_", "-")
    return model_type in GRADIENT_FREE_KEY_MODEL_TYPES and (get("position_embedding_type") or "absolute") == "absolute"


def _without_keys(signature: dict) -> dict:
    modules = signature.get("modules") or {}
    return dict(signature, modules={n: s for n, s in modules.items() if not is_attention_key(n)})


@register_method
class BitFitMethod(PeftMethod):
    name = "bitfit"
    peft_type = "BEFT"
    default_learning_rate = 1e-3

    def make_config(self, task_type: str, **overrides):
        """The peft config when the base model is not known: every encoder Linear, keys included."""
        return self.make_config_for_base_model(task_type, None, **overrides)

    def make_config_for_base_model(self, task_type: str, base_model_config, **overrides):
        from peft import BeftConfig

        gradient_free = key_biases_are_gradient_free(base_model_config)
        kwargs = dict(target_modules=ENCODER_LINEARS_BUT_KEYS if gradient_free else ENCODER_LINEARS)
        kwargs.update(overrides)
        return BeftConfig(task_type=task_type, **kwargs)

    def embed(self, weights, adapter_config, options: EmbeddingOptions, init=None):
        from ..base_model import read_base_model_config

        config = read_base_model_config(adapter_config.get("base_model_name_or_path"))
        return self.embed_for_base_model(weights, adapter_config, options, init, config)

    def embed_for_base_model(self, weights, adapter_config, options: EmbeddingOptions, init=None,
                             base_model_config=None):
        kept = weights
        if key_biases_are_gradient_free(base_model_config):
            kept = {k: v for k, v in weights.items() if not is_attention_key(module_name(k, _SUFFIX))}
            biases = [k for k in self.body_weights(weights) if k.endswith(_SUFFIX)]
            if biases and not any(k in kept for k in biases):
                raise AdapterError(f"This bitfit adapter tunes only {GRADIENT_FREE_DESCRIPTION}, which get no "
                                   "gradient on its base model: nothing it holds describes the task. Tune it again "
                                   "with the default target modules.")
        return embed_module_tensors(self, kept, _SUFFIX, options)  # BEFT bias starts at 0

    def incompatibility_hint(self, signature: dict, other: dict, name: str = "this embedding",
                             other_name: str = "the other", base_model: str | None = None) -> str | None:
        """Explain a difference that is only the key-bias blocks (one side has them, the other not), and say
        whether converting the side with them fixes it: only when the base model's key biases are known to be
        gradient-free; otherwise converting would throw tuned values away."""
        from ..base_model import read_base_model_config

        sides = [(name, signature), (other_name, other)]
        has_keys = [any(is_attention_key(m) for m in (s.get("modules") or {})) for _, s in sides]
        if sum(has_keys) != 1:
            return None
        (keyed_name, keyed_signature), (plain_name, plain_signature) = sides if has_keys[0] else sides[::-1]
        if _without_keys(keyed_signature) != plain_signature:
            return None  # they differ in more than the key blocks: converting would not make them comparable
        base = repr(base_model) if base_model else "the base model"
        config = read_base_model_config(base_model)
        if key_biases_are_gradient_free(config):
            return (f"{keyed_name} was embedded by an older taskemb-hub (or where the config of {base} could "
                    f"not be read) that kept BitFit's {GRADIENT_FREE_DESCRIPTION}, which get no gradient on {base} "
                    "(float noise); re-embed its adapter with `taskemb-hub embed`, or convert the vector with "
                    "`taskemb_hub.methods.bitfit.drop_gradient_free_blocks`")
        if config is None:
            return (f"{plain_name} was embedded without BitFit's {GRADIENT_FREE_DESCRIPTION} and {keyed_name} with "
                    f"them; the config of {base} cannot be read on this machine (no local folder, not in the Hugging "
                    "Face cache), and taskemb-hub keeps the key biases of a base model it cannot check. Download the base "
                    "model (or pass its folder) and re-embed both adapters with `taskemb-hub embed`")
        return (f"{plain_name} was embedded without BitFit's {GRADIENT_FREE_DESCRIPTION}, which carry signal on {base} "
                f"(model type {config.get('model_type')!r}: only absolute-position softmax encoders ignore them); "
                f"re-embed the adapter of {plain_name} with `taskemb-hub embed`, which keeps them (converting "
                f"{keyed_name} would throw tuned values away)")


def drop_gradient_free_blocks(embedding):
    """Convert a BitFit `TaskEmbedding` embedded with the key-bias blocks into today's space, exactly.

    The signature lists the modules in the order their blocks sit in the vector (sorted names)
    with their shapes, so the key-bias blocks are cut out by position. Each block was normalised
    on its own, so the rest is bit-for-bit what embedding the adapter now gives. An embedding
    without such blocks is returned unchanged (converting twice is converting once).

    Only lossless where the key biases get no gradient: a base model whose config is readable here and
    fails `key_biases_are_gradient_free` (RoFormer, ESM, ...) is refused. One whose config cannot be read
    is converted as asked (the caller vouches for it; `taskemb-hub embed` would keep its key biases).

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
    if not isinstance(modules, dict) or not any(is_attention_key(m) for m in modules):
        return embedding
    names = sorted(modules)  # the order embed_module_tensors concatenates them in
    sizes = [math.prod(modules[n]) for n in names]
    if sum(sizes) != embedding.dim:
        raise AdapterError(f"{embedding.task!r}: vector length {embedding.dim} does not match its signature "
                           f"({sum(sizes)} values); re-embed its adapter with `taskemb-hub embed`.")
    from ..base_model import read_base_model_config

    config = read_base_model_config(embedding.base_model)
    if config is not None and not key_biases_are_gradient_free(config):
        raise AdapterError(f"{embedding.task!r}: the attention key biases of {embedding.base_model!r} (model type "
                           f"{config.get('model_type')!r}) carry signal, so they stay in its embedding; dropping them "
                           "would throw tuned values away. Compare it with vectors that keep them (re-embed the "
                           "others with `taskemb-hub embed`).")
    keep, offset = [], 0
    for name, size in zip(names, sizes):
        if not is_attention_key(name):
            keep.append(embedding.vector[offset:offset + size])
        offset += size
    if not keep:
        raise AdapterError(f"{embedding.task!r} holds only {GRADIENT_FREE_DESCRIPTION}; nothing is left to compare.")
    signature = dict(embedding.signature, modules={n: modules[n] for n in names if not is_attention_key(n)})
    return type(embedding)(vector=torch.cat(keep), task=embedding.task, base_model=embedding.base_model,
                           method=embedding.method, signature=signature, step=embedding.step,
                           train_size=embedding.train_size, metrics=dict(embedding.metrics), extra=dict(embedding.extra))
