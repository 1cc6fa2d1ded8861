"""What the first visitor's tuning would wait for, done in a background thread as the Space launches.

A fresh server has imported torch and transformers (the page needs them) but not what tuning needs: peft
(about 2 s on 2 cores), pandas and datasets (reading an upload), the tuning modules; and the base model's
files may not be in the OS page cache yet. Measured in a fresh process on 2 cores, the first `/rank_data`
took 2-3 s longer than the next one for that reason. `start_warmup` does that work once in a daemon thread
while the server starts and waits for its first visitor, so the first tuning starts as fast as the second.
It reads only local files (the packaged model, a folder, or a Hub model already in the HF cache: nothing is
downloaded) and never raises: a failure is logged and the first visitor pays the imports as before.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from pathlib import Path

from ._config import ANY, SpaceConfig

logger = logging.getLogger("taskemb_hub.space")

# what target_from_data, text_embedding and reading an upload import on first use
WARM_MODULES = ("pandas", "pyarrow.parquet", "datasets", "peft", "accelerate", "transformers",
                "taskemb_hub.tuning.training", "taskemb_hub.tuning.targets", "taskemb_hub.baselines")
MODEL_SUFFIXES = (".safetensors", ".json", ".txt", ".model")  # weights, configs, vocabularies
MAX_CACHE_BYTES = 4 * 2**30  # a base model larger than this is left to the first tuning to read


def start_warmup(state, config: SpaceConfig) -> threading.Thread:
    """Start `warm_tuning(state, config)` in a daemon thread (named `tuning-warm`) and return it.

    Args:
        state: the Space's `RegistryState` (its largest signature group names the base model to warm).
        config: the Space's config (`base_model_paths` maps a recorded base model to a local folder).

    Returns:
        The started thread.

    Example:
        ```python
        >>> start_warmup(app.space_state, app.space_config).join()
        ```
    """
    thread = threading.Thread(target=warm_tuning, args=(state, config), name="tuning-warm", daemon=True)
    thread.start()
    return thread


def warm_tuning(state, config: SpaceConfig) -> dict:
    """Import what tuning needs and read the registry's base model files into the OS page cache.

    Args:
        state: the Space's `RegistryState`.
        config: the Space's config.

    Returns:
        What was done: `imports_s`, `modules` (those imported), `base_model_files`, `base_model_bytes`, `files_s`
        (0 files when the base model has no local copy); `error` when a step failed (logged, never raised).

    Example:
        ```python
        >>> warm_tuning(state, SpaceConfig())["modules"]
        ```
    """
    report: dict = {"modules": [], "base_model_files": 0, "base_model_bytes": 0}
    started = time.perf_counter()
    try:
        for name in WARM_MODULES:
            importlib.import_module(name)
            report["modules"].append(name)
        report["imports_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        folder = _base_model_folder(state, config)
        if folder is not None:
            report["base_model_files"], report["base_model_bytes"] = _read_into_cache(folder)
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(str(folder))  # the tokenizer classes' own lazy imports
        report["files_s"] = round(time.perf_counter() - started, 2)
    except Exception as err:  # noqa: BLE001 - a warm-up must never take the server down
        report["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        logger.warning("tuning warm-up stopped (%s); the first tuning imports what is missing", report["error"])
        return report
    logger.info("tuning warm-up: %d modules imported in %.1f s, %d base model files (%.0f MB) read in %.1f s",
                len(report["modules"]), report["imports_s"], report["base_model_files"],
                report["base_model_bytes"] / 2**20, report["files_s"])
    return report


def _base_model_folder(state, config: SpaceConfig) -> Path | None:
    """The local folder of the base model a visitor's data is tuned on (the largest group's), or None."""
    from ..base_model import resolve_base_model
    from ._registry_state import _space

    recorded = _space(state, state.selector, ANY, ANY)[0].info.base_model  # no vector loaded
    load_from, _ = resolve_base_model(config.base_model_paths.get(recorded, recorded))
    if Path(load_from).is_dir():
        return Path(load_from)
    try:  # a Hub id: its snapshot in the HF cache, if one was downloaded before (no request is made)
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(load_from, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or not a Hub id): the first tuning downloads it as before
        return None


def _read_into_cache(folder: Path) -> tuple[int, int]:
    """Read the model's files once (bytes discarded) so the first tuning's load reads from memory."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in MODEL_SUFFIXES]
    if sum(p.stat().st_size for p in files) > MAX_CACHE_BYTES:
        return 0, 0
    total = 0
    for path in files:
        with open(path, "rb") as handle:
            while chunk := handle.read(8 * 2**20):
                total += len(chunk)
    return len(files), total
