"""What every PEFT method module provides: a peft config, a forward pass, and an embedding."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from ..errors import AdapterError

# Heads are task-specific (their size is the label count), so they never enter an embedding.
HEAD_PATTERN = re.compile(r"(^|\.)(classifier|score|qa_outputs|modules_to_save)(\.|$)")


@dataclass
class EmbeddingOptions:
    """How tuned weights become a vector. Part of the compatibility signature.

    Args:
        sketch_dim: LoRA only: side k of the k×k sketch `G_out·ΔW·G_inᵀ` kept per module.
        sketch_seed: seed of the Gaussian sketch matrices (same seed = same space).
        per_module_norm: scale each module's block to unit norm, so every adapted module
            counts equally whatever its update size (deep layers and values move more).
        pooling: prompt/prefix tuning: `mean` over virtual tokens (as SPoT and the paper) or
            `flatten` (keeps token order; needs the same number of virtual tokens).
        relative_to_init: prompt/prefix tuning: embed the change from the saved initial tokens
            (default). `False` embeds the raw tuned tokens, as SPoT does (Vu et al. 2022); with a
            shared random init that adds the same offset to every task.
    """

    sketch_dim: int = 16
    sketch_seed: int = 0
    per_module_norm: bool = True
    pooling: str = "mean"
    relative_to_init: bool = True

    def __post_init__(self):
        if self.pooling not in ("mean", "flatten"):
            raise ValueError(f"pooling must be 'mean' or 'flatten', not {self.pooling!r}.")
        if self.sketch_dim < 1:
            raise ValueError("sketch_dim must be a positive integer.")


def module_name(key: str, suffix: str) -> str:
    """`base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight` -> `bert.encoder.layer.0.attention.self.query`."""
    name = key[: -len(suffix)] if key.endswith(suffix) else key
    name = name.rstrip(".")
    for prefix in ("base_model.model.", "base_model."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def check_finite(weights: dict[str, torch.Tensor], where: str) -> None:
    for key, value in weights.items():
        if torch.is_floating_point(value) and not torch.isfinite(value).all():
            raise AdapterError(f"{where}: tensor {key!r} holds NaN or inf values. The adapter is corrupt or "
                               "training diverged; retrain with a lower learning rate or use an earlier checkpoint.")


def signature_hash(signature: dict) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:16]


class PeftMethod:
    """One PEFT method: how to configure it and how to turn its tuned weights into a vector.

    Subclasses set `name`, `peft_type` (as written in `adapter_config.json`) and
    `default_learning_rate`, and implement `make_config` and `embed`.
    """

    name: ClassVar[str]
    peft_type: ClassVar[str]
    default_learning_rate: ClassVar[float]
    needs_init_snapshot: ClassVar[bool] = False  # True when the start point is random (prompt/prefix)

    def make_config(self, task_type: str, **overrides):
        raise NotImplementedError

    def make_config_for_base_model(self, task_type: str, base_model_config: Any, **overrides):
        """`make_config` for a known base model (its transformers config); methods whose defaults depend on
        the architecture (BitFit's target modules) override this."""
        return self.make_config(task_type, **overrides)

    def embed(self, weights: dict[str, torch.Tensor], adapter_config: dict, options: EmbeddingOptions,
              init: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return `(vector, signature)`; `signature` says which space the vector lives in."""
        raise NotImplementedError

    def embed_for_base_model(self, weights: dict[str, torch.Tensor], adapter_config: dict, options: EmbeddingOptions,
                             init: dict[str, torch.Tensor] | None = None,
                             base_model_config: Any = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """`embed`, told the base model's config (a transformers config or its dict; None when it could not
        be read). Only architecture-aware methods override this."""
        return self.embed(weights, adapter_config, options, init)

    def forward(self, model, batch: dict[str, torch.Tensor]):
        """One forward pass returning an output with `.loss` and logits; most methods use peft's own."""
        return model(**batch)

    @staticmethod
    def body_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in weights.items() if not HEAD_PATTERN.search(k)}

    def incompatibility_hint(self, signature: dict, other: dict, name: str = "this embedding",
                             other_name: str = "the other", base_model: str | None = None) -> str | None:
        """Why two signatures of this method differ (on `base_model`) and how to fix it, when the method knows
        (else None)."""
        return None

    def _signature(self, options: EmbeddingOptions, **fields) -> dict[str, Any]:
        return {"method": self.name, **fields}


def norm_bounds(signature: dict) -> tuple[float, float] | None:
    """The norms a non-zero vector of this signature can have, or None when the signature does not fix them.

    With `per_module_norm`, `concat_blocks` scales each module's block to unit norm (a block that did
    not move stays zero), so the vector's norm is between 1 (one block moved) and sqrt(number of
    modules) (every block moved). Any other norm means the file was altered or not made this way.
    """
    if not isinstance(signature, dict) or signature.get("per_module_norm") is not True:
        return None
    modules = signature.get("modules")
    if not isinstance(modules, dict) or not modules:
        return None
    return 1.0, len(modules) ** 0.5


def concat_blocks(blocks: list[torch.Tensor], per_module_norm: bool) -> torch.Tensor:
    """Concatenate per-module vectors, each scaled to unit norm when asked (zero blocks stay zero)."""
    out = []
    for block in blocks:
        block = block.reshape(-1).double()
        if per_module_norm:
            norm = block.norm()
            block = block / norm if norm > 0 else block
        out.append(block)
    return torch.cat(out).float()


def embed_module_tensors(method: PeftMethod, weights: dict[str, torch.Tensor], suffix: str, options: EmbeddingOptions,
                         shift: float = 0.0) -> tuple[torch.Tensor, dict[str, Any]]:
    """Embed methods that tune one tensor per module (IA3 vectors, BEFT biases): (tensor − shift) per module."""
    tensors = {module_name(k, suffix): v for k, v in method.body_weights(weights).items() if k.endswith(suffix)}
    if not tensors:
        raise AdapterError(f"No {suffix.lstrip('.')} tensors found in this {method.name} adapter. "
                           "Was it saved with peft's save_pretrained?")
    names = sorted(tensors)
    signature = method._signature(options, modules={n: list(tensors[n].shape) for n in names},
                                  per_module_norm=options.per_module_norm)
    return concat_blocks([tensors[n].double() - shift for n in names], options.per_module_norm), signature
