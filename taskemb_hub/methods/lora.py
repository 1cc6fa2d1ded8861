"""LoRA: embed each adapted module's update ΔW = s·B·A, never the raw factors.

Raw A and B are not identifiable: B·R and R⁻¹·A give the same ΔW for any invertible R, and A
starts from a random init, so two runs of one task have unrelated factors. ΔW is what the
adapter actually does to the model, and is the same whatever r, init or rank basis.

We never build the d_out×d_in matrix ΔW. Two routes, both from the factors only:
- exact: ⟨B1A1, B2A2⟩ = sum((B1ᵀB2) ⊙ (A1A2ᵀ)), an r1×r2 computation (`exact_similarity`);
- sketch: S = G_out·B·A·G_inᵀ (k×k per module) with seeded Gaussian G of variance 1/k, so
  E⟨S1, S2⟩ = ⟨ΔW1, ΔW2⟩. The sketch is what a `TaskEmbedding` stores: a fixed-size vector
  that can be averaged (centring), stacked and ranked by one matrix product over 100k entries.

G_out and G_in must be independent. Drawn from one stream (the first version seeded them from
(seed, d) only, so a square module got G_out = G_in), E⟨S1, S2⟩ gains (tr X·tr Y + ⟨X, Yᵀ⟩)/k:
two unrelated rank-8 PSD updates of a 384×384 module with exact cosine 0.02 sketched to 0.33.
The signature records `sketch_sides="independent"`, so vectors of that first sketch are
never ranked against these.
"""

from __future__ import annotations

import re
from functools import lru_cache

import torch

from ..errors import AdapterError
from ._registry import register_method
from .base import EmbeddingOptions, PeftMethod, concat_blocks, module_name

_A, _B = ".lora_A.weight", ".lora_B.weight"


SKETCH_SIDES = "independent"  # recorded in the signature; see the module docstring
_OUT, _IN = 0, 1


@lru_cache(maxsize=64)
def _gaussian(k: int, d: int, seed: int, side: int) -> torch.Tensor:
    """The k×d sketch matrix of one side (`_OUT` or `_IN`) of a module; each side has its own stream."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + d) * 2 + side)
    return torch.randn(k, d, generator=generator, dtype=torch.float64) / k**0.5


def _pattern_value(patterns: dict | None, module: str, default):
    for pattern, value in (patterns or {}).items():
        if module == pattern or module.endswith("." + pattern) or re.fullmatch(pattern, module):
            return value
    return default


def lora_factors(weights: dict[str, torch.Tensor], adapter_config: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """Module name -> (B, A, scaling) for every adapted module, sorted by name."""
    factors = {}
    for key, a in weights.items():
        if not key.endswith(_A):
            continue
        name = module_name(key, _A)
        b_key = key[: -len(_A)] + _B
        if b_key not in weights:
            raise AdapterError(f"LoRA weight {key!r} has no matching {b_key!r}. The adapter file is incomplete.")
        b = weights[b_key]
        if a.dim() != 2 or b.dim() != 2 or b.shape[1] != a.shape[0]:
            raise AdapterError(f"LoRA module {name}: shapes of B {tuple(b.shape)} and A {tuple(a.shape)} do not "
                               "multiply (expected B: d_out×r, A: r×d_in). Convolution LoRA is not supported.")
        r = a.shape[0]
        alpha = _pattern_value(adapter_config.get("alpha_pattern"), name, adapter_config.get("lora_alpha", 8))
        scaling = alpha / r**0.5 if adapter_config.get("use_rslora") else alpha / r
        factors[name] = (b.double(), a.double(), float(scaling))
    if not factors:
        raise AdapterError("No lora_A/lora_B weights found in this LoRA adapter. Was it saved with peft's save_pretrained?")
    return dict(sorted(factors.items()))


def delta_inner(f1: tuple, f2: tuple) -> float:
    """⟨s1·B1A1, s2·B2A2⟩ without forming either product."""
    (b1, a1, s1), (b2, a2, s2) = f1, f2
    return float(s1 * s2 * ((b1.T @ b2) * (a1 @ a2.T)).sum())


def exact_similarity(factors1: dict, factors2: dict, per_module_norm: bool = True) -> float:
    """Exact cosine between two LoRA adapters' ΔW (per-module normalised like the sketch).

    Raises:
        AdapterError: if the adapters do not adapt the same modules.
    """
    if list(factors1) != list(factors2):
        raise AdapterError("The two LoRA adapters adapt different modules; their ΔW cannot be compared. "
                           "Tune both with the same target_modules.")
    if per_module_norm:
        cosines = []
        for name in factors1:
            n1, n2 = delta_inner(factors1[name], factors1[name]), delta_inner(factors2[name], factors2[name])
            cosines.append(0.0 if n1 == 0 or n2 == 0 else delta_inner(factors1[name], factors2[name]) / (n1 * n2) ** 0.5)
        return sum(cosines) / len(cosines)
    inner = sum(delta_inner(factors1[n], factors2[n]) for n in factors1)
    n1 = sum(delta_inner(factors1[n], factors1[n]) for n in factors1)
    n2 = sum(delta_inner(factors2[n], factors2[n]) for n in factors2)
    return 0.0 if n1 == 0 or n2 == 0 else inner / (n1 * n2) ** 0.5


@register_method
class LoraMethod(PeftMethod):
    name = "lora"
    peft_type = "LORA"
    default_learning_rate = 5e-4

    def make_config(self, task_type: str, **overrides):
        from peft import LoraConfig

        kwargs = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"])
        kwargs.update(overrides)
        return LoraConfig(task_type=task_type, **kwargs)

    def embed(self, weights, adapter_config, options: EmbeddingOptions, init=None):
        factors = lora_factors(self.body_weights(weights), adapter_config)
        k, blocks, shapes = options.sketch_dim, [], {}
        for name, (b, a, scaling) in factors.items():
            d_out, d_in = b.shape[0], a.shape[1]
            g_out, g_in = _gaussian(k, d_out, options.sketch_seed, _OUT), _gaussian(k, d_in, options.sketch_seed, _IN)
            blocks.append(scaling * (g_out @ b) @ (a @ g_in.T))
            shapes[name] = [d_out, d_in]
        signature = self._signature(options, modules=shapes, sketch_dim=k, sketch_seed=options.sketch_seed,
                                    sketch_sides=SKETCH_SIDES, per_module_norm=options.per_module_norm)
        return concat_blocks(blocks, options.per_module_norm), signature
