"""The arithmetic precision of tuning's forward and backward passes (`TuningConfig.mixed_precision`).

`bf16` runs them under Accelerate's bfloat16 autocast; the weights, the optimizer and the embedding stay
float32. Where the hardware does bfloat16 natively this halves the time of a target embedding (measured, 2
cores of an AMD EPYC with AVX512_BF16, rotten_tomatoes, BitFit, 100 steps on 1,000 rows: 24.4 s against
47.7 s, cosine 0.99996 between the two vectors; from data file to embedding, model load and held-out check
included, 1.27-1.53x faster on 5 targets at cosine 0.99988-0.99997 with the same top-5 sources:
`benchmarks/target_precision.py`).
Without native bfloat16 (a CPU with neither AVX512_BF16 nor AMX) autocast emulates it and is slower, so
`auto` picks `bf16` only where it is native. The packaged registry was tuned in float32 (`no`), which is
`tune`'s default; the precision is recorded beside the recipe but is not a compared recipe key.

Importing this module does not import torch or accelerate.
"""

from __future__ import annotations

from ..errors import TaskEmbHubError

MIXED_PRECISIONS = ("no", "bf16", "auto")


def native_bf16() -> bool:
    """Whether this machine runs bfloat16 matrix products natively: a CUDA GPU with bf16 support when one is
    visible (Accelerate then tunes on it), else a CPU with AVX512_BF16 or AMX tiles.

    Returns:
        True or False; False when torch cannot tell (its CPU checks are private and may go away).

    Example:
        ```python
        >>> native_bf16()  # an AMD EPYC with AVX512_BF16
        True
        ```
    """
    import torch

    try:
        if torch.cuda.is_available():
            return bool(torch.cuda.is_bf16_supported())
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # noqa: BLE001 - private torch checks: without them, assume no native bf16 (fp32 is safe)
        return False


def resolve_mixed_precision(value: str | None) -> str:
    """What Accelerate gets for `TuningConfig.mixed_precision`: `auto` becomes `bf16` where `native_bf16()`, else `no`;
    None is what a bare `Accelerator()` would use (`ACCELERATE_MIXED_PRECISION`, which `accelerate launch
    --mixed_precision ...` sets; `no` when unset).

    Args:
        value: `no`, `bf16`, `auto` or None.

    Returns:
        `no` or `bf16` (or the precision `accelerate launch` was given, for None).

    Raises:
        TaskEmbHubError: an unknown value, or `bf16` on a CUDA GPU without bfloat16.

    Example:
        ```python
        >>> resolve_mixed_precision("auto")  # a CPU without AVX512_BF16 or AMX
        'no'
        ```
    """
    check_mixed_precision(value)
    if value is None:
        import os

        return os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if value == "auto":
        return "bf16" if native_bf16() else "no"
    if value == "bf16":
        import torch

        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise TaskEmbHubError("This GPU has no bfloat16 support, so mixed_precision 'bf16' cannot run here. Pass "
                                  "'auto' or 'no' (CLI: --mixed-precision auto).")
    return value


def check_mixed_precision(value) -> None:
    """Refuse, in one line, a `mixed_precision` other than `no`, `bf16`, `auto` or None (Accelerate's setting)."""
    if value is not None and value not in MIXED_PRECISIONS:
        raise TaskEmbHubError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)} (got {value!r}). Pass "
                              "e.g. mixed_precision='auto' (CLI: --mixed-precision auto).")


def make_accelerator(mixed_precision: str, gradient_accumulation_steps: int = 1):
    """An `accelerate.Accelerator` whose forward and backward run at `mixed_precision` (resolved here).

    Accelerate keeps one precision per process and refuses another once set; a single process (the Space, the
    tests, a notebook) that tunes a `bf16` target after an fp32 `tune` resets that shared state first. Several
    processes (`accelerate launch`) cannot switch: that is refused in one line.

    Args:
        mixed_precision: `no`, `bf16` or `auto`.
        gradient_accumulation_steps: micro-batches per optimizer step.

    Returns:
        The Accelerator (`accelerator.mixed_precision` is `no` or `bf16`).

    Example:
        ```python
        >>> make_accelerator("auto").mixed_precision
        'bf16'
        ```
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    precision = resolve_mixed_precision(mixed_precision)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", precision) != precision:
        if PartialState._shared_state and PartialState().num_processes > 1:
            raise TaskEmbHubError(f"This run's processes were started with mixed precision "
                                  f"{state['_mixed_precision']!r}, not {precision!r}. Pass --mixed-precision "
                                  f"{state['_mixed_precision']} or launch again.")
        AcceleratorState._reset_state()  # the process group (PartialState) stays; only the precision changes
    return Accelerator(gradient_accumulation_steps=gradient_accumulation_steps, mixed_precision=precision)


def cast_frozen_linear_weights(model, precision: str) -> int:
    """Store the frozen `nn.Linear` weights of `model` in bfloat16 when it tunes under bfloat16 autocast.

    Autocast casts every Linear weight to bfloat16 at each call, forward and evaluation alike; a frozen weight
    gives the same bfloat16 copy every time, so casting it once gives bit-identical outputs and gradients and
    saves the copy (about 4% of a CPU target embedding, measured on MiniLM: identical vectors). Trained
    weights (the method's, a head's, full fine-tuning's) stay float32: the optimizer updates them.

    Args:
        model: the model about to be tuned (frozen weights have `requires_grad=False`).
        precision: the run's resolved precision (`accelerator.mixed_precision`); anything but `bf16` leaves
            the model as it is.

    Returns:
        How many weights were cast.

    Example:
        ```python
        >>> cast_frozen_linear_weights(peft_model, "bf16")
        37
        ```
    """
    import torch

    if precision != "bf16":
        return 0
    cast = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and weight is not None and not weight.requires_grad \
                and weight.dtype == torch.float32:
            module.weight.data = weight.data.to(torch.bfloat16)
            cast += 1
    return cast
