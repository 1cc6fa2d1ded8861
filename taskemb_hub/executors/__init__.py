"""Engines that run many fine-tunes: `local` (this machine) and `ray` (a local Ray or a cluster).

`taskemb-hub transfer-matrix --executor local|ray` and `taskemb-hub registry build --executor local|ray`
pick one. Ray is an optional extra (`pip install "taskemb-hub[ray]"`, ~245 MB installed): nothing
here imports it until the `ray` executor is asked for, so the CLI and the quickstart stay fast without it.
"""

from __future__ import annotations

from ..errors import TaskEmbHubError

EXECUTORS = ("local", "ray")
RAY_INSTALL = 'pip install "taskemb-hub[ray]"'


class ExecutorError(TaskEmbHubError):
    """An executor cannot run as asked (Ray missing, a GPU share out of range, no GPU to share)."""


def require_ray():
    """The `ray` module, or an `ExecutorError` naming the install command when the extra is not installed."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"--executor ray needs Ray, which is not installed. Install the extra with `{RAY_INSTALL}` "
                            "(~245 MB installed), or use --executor local.") from None
    return ray


def parse_gpu_share(text: str | float | None) -> float | None:
    """A GPU share per run from `1/k` or a decimal (`0.25`): k runs share one card. None stays None.

    Example:
        ```python
        >>> parse_gpu_share("1/4"), parse_gpu_share("0.5"), parse_gpu_share("0")
        (0.25, 0.5, 0.0)
        ```
    """
    if text is None or isinstance(text, (int, float)):
        value = text
    else:
        try:
            numerator, _, denominator = str(text).partition("/")
            value = float(numerator) / float(denominator) if denominator else float(numerator)
        except (ValueError, ZeroDivisionError):
            value = -1.0
    if value is not None and not (0 <= value <= 1 or float(value).is_integer() and value > 0):
        raise ExecutorError(f"--gpus-per-run {text!r} is not a GPU share. Pass 1/k (k runs per card, e.g. 1/4), a "
                            "decimal such as 0.25, a whole number of GPUs, or 0 for CPU only.")
    return None if value is None else float(value)
