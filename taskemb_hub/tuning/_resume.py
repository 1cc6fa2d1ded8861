"""What `tune` needs to go on after Ctrl-C (or a killed process): a resumable state in the output folder.

The state is tensors in safetensors (the tuned weights, the optimizer's moments, the RNG states) and
everything else in JSON (step, scheduler, optimizer settings, Python and NumPy RNG): nothing is pickled, so
a state file someone else left in a folder cannot run code when it is read. It is saved at every save step
and when a Ctrl-C stops the run at the end of an optimizer step, under `<out>/.taskemb-resume/<run id>/`,
where the run id hashes everything that decides the run (config, base model, task and its training rows):
a rerun of the same command finds it, another command never mixes with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESUME_DIR = ".taskemb-resume"
STATE_JSON, STATE_TENSORS = "state.json", "state.safetensors"
FORMAT = 1
# Fields that change nothing about the trajectory: where checkpoints are pushed to.
_NOT_IDENTITY = ("push_to_hub", "hub_private", "hub_base_model_id", "mixed_precision")  # precision: the resolved one


class TuningInterrupted(KeyboardInterrupt):
    """`tune` was stopped by Ctrl-C; the message says from which step a rerun goes on."""


def run_id(config, model_id: str, task_name: str, train_rows: list[dict], processes: int,
           mixed_precision: str = "no") -> str:
    """A hash of everything that decides a run's trajectory (16 hex digits); `mixed_precision` is the one that runs
    (`auto` resolved), and float32 (`no`) leaves the hash as it was before precision was an option: such saved
    states still resume."""
    rows = hashlib.sha256(json.dumps(train_rows, sort_keys=True, default=str).encode()).hexdigest()
    fields = {k: v for k, v in asdict(config).items() if k not in _NOT_IDENTITY}
    key = {"format": FORMAT, "config": fields, "base_model": model_id, "task": task_name, "rows": rows,
           "processes": processes} | ({"mixed_precision": mixed_precision} if mixed_precision != "no" else {})
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def state_dir(output_dir: Path, identity: str) -> Path:
    return output_dir / RESUME_DIR / identity


def read_state(folder: Path) -> dict[str, Any] | None:
    """The saved state's JSON (with its tensors under `"tensors"` unless the run finished), or None.

    A state that cannot be read (a crash while writing, a hand-edited file) is ignored: the run starts over.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / STATE_JSON).read_text())
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            return None
        if not state.get("finished"):
            state["tensors"] = load_file(str(folder / state["tensors_file"]))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError):
        return None
    return state


def save_state(folder: Path, *, accelerator, model, optimizer, scheduler, progress: dict[str, Any],
               finished: bool = False) -> None:
    """Write the state (main process only). The JSON is written last and names its tensor file: a crash
    midway leaves the previous state whole."""
    from safetensors.torch import save_file

    if not accelerator.is_main_process:
        return
    folder.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "finished": finished, **progress}
    if not finished:
        tensors, state["optimizer"] = _tensors(model, optimizer)
        state.update(scheduler=scheduler.state_dict(), accumulation_step=accelerator.step, python_rng=_python_rng(),
                     numpy_rng=_numpy_rng())
        name = f"state-{progress['step']}.safetensors"
        save_file(tensors, str(folder / (name + ".tmp")))
        os.replace(folder / (name + ".tmp"), folder / name)
        state["tensors_file"] = name
    tmp = folder / (STATE_JSON + ".tmp")
    tmp.write_text(json.dumps(state, default=_json_default))
    os.replace(tmp, folder / STATE_JSON)
    for old in folder.glob("state-*.safetensors"):  # the JSON no longer names them
        if old.name != state.get("tensors_file"):
            old.unlink(missing_ok=True)


def restore_weights(state: dict, *, accelerator, model, optimizer, scheduler) -> None:
    """Put back the tuned weights, the optimizer and the scheduler (the RNG comes later: `restore_rng`)."""
    tensors = state["tensors"]
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.copy_(tensors[f"param.{name}"].to(param.device, param.dtype))
    saved = state["optimizer"]
    optim_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, field = key.split(".", 2)
            optim_state.setdefault(int(index), {})[field] = value
    for index, fields in saved["scalars"].items():
        optim_state.setdefault(int(index), {}).update(fields)
    optimizer.load_state_dict({"state": optim_state, "param_groups": saved["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    accelerator.step = int(state.get("accumulation_step", 0))


def restore_rng(state: dict) -> None:
    """The RNG states at the saved step (dropout draws go on as in an uninterrupted run)."""
    tensors = state["tensors"]
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy_rng"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def checkpoint_is_ours(folder: Path, adapter_sha256) -> bool:
    """Whether a checkpoint folder a saved state records still holds what this run wrote there: the adapter
    bytes whose sha256 the state recorded, and an embedding tied to them. Another run (other options, same
    output folder) may have written its own `step-N` over it since; a state from before hashes were recorded
    proves nothing.

    Args:
        folder: the `step-N` folder.
        adapter_sha256: the hash the state recorded for it (None: not recorded).
    """
    from ..embedding import TaskEmbedding, adapter_digest

    if not isinstance(adapter_sha256, str) or adapter_digest(folder) != adapter_sha256:
        return False
    try:
        return TaskEmbedding.load(folder).adapter_sha256 == adapter_sha256
    except Exception:  # noqa: BLE001 - missing, unreadable or stale embedding files: not this run's checkpoint
        return False


def replace_folder(target: Path, write) -> Path:
    """Write a folder with `write(staging)` beside `target`, then swap it in: a reader never sees a mix of an
    earlier run's files (an adapter of one run beside another's embedding or init file) and this one's, and a
    crash leaves the earlier folder whole.

    Args:
        target: the folder to (re)write.
        write: fills the staging folder it is given.

    Returns:
        `target`.
    """
    import tempfile

    from ..embedding import default_mode

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    try:
        os.chmod(staging, default_mode(directory=True))  # mkdtemp's 0700 would hide the checkpoint from the group
        write(staging)
        if target.exists():
            backup = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, backup)  # an empty folder: replaced by the old one
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(backup, target)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def clear(folder: Path) -> None:
    """Forget a saved state (`tune(..., resume=False)` / `--restart`)."""
    shutil.rmtree(folder, ignore_errors=True)


def _tensors(model, optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {f"param.{n}": p.detach().cpu().clone().contiguous() for n, p in model.named_parameters()
               if p.requires_grad}
    sd = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, fields in sd["state"].items():
        for field, value in fields.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{field}"] = value.detach().cpu().clone().contiguous()
            else:
                scalars.setdefault(str(index), {})[field] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i:03d}"] = s
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _python_rng():
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _numpy_rng():
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _json_default(value):
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if torch.is_tensor(value) and value.numel() == 1:
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class StopRequest:
    """Ctrl-C during `tune` asks to stop at the end of the current optimizer step, where a consistent state
    can be saved; a second Ctrl-C stops at once (the state of the last save step stays). Only the main
    thread can receive signals: elsewhere Ctrl-C is not caught here."""

    def __init__(self):
        self.requested = False
        self._installed = False
        self._previous = None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("Stopping after this step to save a resumable state (press Ctrl-C again to stop at once).",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)

