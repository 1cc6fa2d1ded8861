"""Tuning: PEFT adapters tuned with Accelerate, each early checkpoint kept with its task embedding.

`training` holds `TuningConfig` and `tune` (the loop's parts in `_task_model`, `_training_loop`,
`_evaluation`, `_resume`), `recipe` the settings that make embeddings comparable, `targets` the
target tuned with a registry's recipe (`target_from_data`), `features`/`metrics` the encoding and
scoring of a task's rows. The names below are imported on first use (PEP 562): `recipe` is read
by `cards` and must not pull in torch.
"""

from __future__ import annotations

__all__ = ["TuningConfig", "tune", "Checkpoint", "target_from_data"]


def __getattr__(name: str):
    if name in ("TuningConfig", "tune", "Checkpoint"):
        from .training import Checkpoint, TuningConfig, tune

        return {"TuningConfig": TuningConfig, "tune": tune, "Checkpoint": Checkpoint}[name]
    if name == "target_from_data":
        from .targets import target_from_data

        return target_from_data
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
