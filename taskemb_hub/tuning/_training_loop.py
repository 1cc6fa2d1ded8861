"""The optimizer steps of a tuning run, its checkpoints (adapter, embedding, metric, card) and the resumable
state it keeps between them (`_resume`); `training.tune` prepares the run and calls `_train_loop`.

`TuningConfig` (training.py) is named in annotations only, never imported: training imports this module."""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._evaluation import evaluate
from ._resume import (StopRequest, TuningInterrupted, checkpoint_is_ours, clear, read_state, replace_folder,
                      restore_rng, restore_weights, save_state)
from ..adapters import CHECKPOINT_INFO_NAME, INIT_NAME
from ..data import TaskData
from ..embedding import TaskEmbedding, adapter_digest
from ..errors import TaskEmbHubError


@dataclass
class Checkpoint:
    step: int
    path: Path | None
    metrics: dict[str, float]
    embedding: TaskEmbedding | None


def _refuse_foreign_checkpoints(output_dir: Path, config: TuningConfig, state: dict | None) -> None:
    """Refuse to tune over `step-N` folders this run would write that hold another run's checkpoints (other options,
    same folder): replacing them silently would lose them. Folders this run saved itself (its resumable state records
    their adapter hashes) are its own to rewrite."""
    recorded = {c.get("folder"): c.get("adapter_sha256") for c in (state or {}).get("checkpoints", [])
                if isinstance(c, dict)}
    steps = sorted(set(config.save_steps) | {config.last_step})
    foreign = [f"step-{s}" for s in steps if (output_dir / f"step-{s}").exists()
               and not checkpoint_is_ours(output_dir / f"step-{s}", recorded.get(f"step-{s}"))]
    if foreign:
        raise TaskEmbHubError(f"{output_dir} holds checkpoints of another run ({' '.join(foreign)}); pass --restart "
                              "(resume=False) to replace them, or another --out (output_dir).")


def _saved_state(resume_dir: Path, output_dir: Path, resume: bool, say: bool) -> dict | list | None:
    """The state to resume from, the checkpoints of a run that finished (a list), or None to start at step 0."""
    if not resume:
        clear(resume_dir)
    state = read_state(resume_dir)
    if state is None:
        return None
    done = _saved_checkpoints(state, output_dir)
    if done is None:  # its checkpoint folders are gone or another run's now: tune again from step 0
        _say(say and bool(state.get("checkpoints")), f"{output_dir}: the checkpoints this run saved are gone or were "
             "overwritten by another run (other options, same folder); tuning again from step 0.")
        clear(resume_dir)
        return None
    if not state["finished"]:
        return state
    _say(say, f"{output_dir}: this run finished before (same options and data); its checkpoints are kept. Pass "
              "--restart (resume=False) to tune again.")
    return done


@dataclass
class _Run:
    """What the training loop works on (built by `tune`)."""

    accelerator: Any
    wrapped: Any
    optimizer: Any
    scheduler: Any
    train_loader: Any
    eval_loader: Any
    eval_feats: list
    eval_rows: list
    task: TaskData
    config: TuningConfig
    model_id: str
    train_size: int
    init_snapshot: dict | None
    output_dir: Path | None
    resume_dir: Path | None


def _train_loop(run: _Run, state: dict | None, progress: bool) -> tuple[list[Checkpoint], int, int, float]:
    """The optimizer steps from the saved `state` (or step 0) to `last_step`: (checkpoints, step, examples, seconds)."""
    from tqdm.auto import tqdm

    acc, config = run.accelerator, run.config
    checkpoints: list[Checkpoint] = []
    step, seen, examples, before = 0, 0, 0, 0.0
    if state is not None:
        restore_weights(state, accelerator=acc, model=acc.unwrap_model(run.wrapped).model,
                                optimizer=run.optimizer, scheduler=run.scheduler)
        step, seen, examples, before = state["step"], state["batches_seen"], state["examples"], state["seconds"]
        checkpoints = _saved_checkpoints(state, run.output_dir) or []
        _say(progress and acc.is_main_process, f"Resuming {run.task.name} from step {step} of {config.last_step} "
             f"(state saved in {run.resume_dir}).")
    saved, started = step, time.perf_counter()
    bar = tqdm(total=config.last_step, initial=step, desc=f"tune {run.task.name} ({config.method})",
               disable=not progress or not acc.is_local_main_process)
    run.wrapped.train()
    batches = _batches(run.train_loader, seen, on_skipped=(lambda: restore_rng(state)) if state else None)
    try:
        with StopRequest() as stop:
            for batch in batches:
                with acc.accumulate(run.wrapped):
                    loss = run.wrapped(**batch).loss
                    acc.backward(loss)
                    run.optimizer.step()
                    run.scheduler.step()
                    run.optimizer.zero_grad()
                seen += 1
                examples += batch["input_ids"].shape[0]
                if not acc.sync_gradients:
                    continue
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                stopping = _stop_requested(stop, acc) and step < config.last_step
                if step in config.save_steps:
                    checkpoints.append(_checkpoint(run, step))
                if run.resume_dir is not None and step < config.last_step and (stopping or step in config.save_steps):
                    save_state(run.resume_dir, accelerator=acc, model=acc.unwrap_model(run.wrapped).model,
                                       optimizer=run.optimizer, scheduler=run.scheduler,
                                       progress=_progress(step, seen, examples, before + time.perf_counter() - started,
                                                          checkpoints))
                    saved = step
                if stopping:
                    raise TuningInterrupted(_interrupted(run, step, step if run.resume_dir else 0))
                if step >= config.last_step:
                    break
    except TuningInterrupted:
        raise
    except KeyboardInterrupt as err:  # a second Ctrl-C, mid-step: the last saved state stays
        raise TuningInterrupted(_interrupted(run, step, saved if run.resume_dir else 0)) from err
    finally:
        bar.close()
    return checkpoints, step, examples, before + time.perf_counter() - started


def _batches(loader, skip: int, on_skipped=None):
    """The loader's batches epoch after epoch, from batch `skip` on: the first `skip` are drawn and dropped, so
    the shuffle order goes on as in a run that trained on them; `on_skipped` runs once they are."""
    seen = 0
    if skip == 0 and on_skipped is not None:
        on_skipped()
    while True:
        for batch in loader:
            seen += 1
            if seen <= skip:
                if seen == skip and on_skipped is not None:
                    on_skipped()
                continue
            yield batch


def _stop_requested(stop, accelerator) -> bool:
    """Whether Ctrl-C asked to stop; under several processes, whether any did (all stop at the same step)."""
    if accelerator.num_processes == 1:
        return stop.requested
    flag = torch.tensor([int(stop.requested)], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum").item())


def _checkpoint(run: _Run, step: int) -> Checkpoint:
    acc = run.accelerator
    metrics = (evaluate(run.wrapped, run.eval_loader, run.task, run.eval_feats, run.eval_rows, acc)
               if run.eval_loader is not None else {})
    checkpoint = _save_checkpoint(acc, run.wrapped, run.task, run.config, run.model_id, step, run.train_size, metrics,
                                  run.init_snapshot, run.output_dir, run.eval_rows)
    run.wrapped.train()
    return checkpoint


def _progress(step: int, seen: int, examples: int, seconds: float, checkpoints: list[Checkpoint]) -> dict:
    return {"step": step, "batches_seen": seen, "examples": examples, "seconds": seconds,
            "checkpoints": [{"step": c.step, "folder": c.path.name, "metrics": c.metrics,
                             "adapter_sha256": c.embedding.adapter_sha256} for c in checkpoints if c.path is not None]}


def _saved_checkpoints(state: dict, output_dir: Path) -> list[Checkpoint] | None:
    """The checkpoints a saved state records, read back from their folders; None when one is gone or no longer
    holds the adapter this run saved there (another run wrote its own `step-N` over it: `checkpoint_is_ours`)."""
    out = []
    for c in state.get("checkpoints", []):
        path = output_dir / str(c.get("folder"))
        if not checkpoint_is_ours(path, c.get("adapter_sha256")):
            return None
        out.append(Checkpoint(step=c["step"], path=path, metrics=c.get("metrics", {}), embedding=TaskEmbedding.load(path)))
    return out


def _interrupted(run: _Run, step: int, saved: int) -> str:
    if not saved:
        return (f"Interrupted at step {step} of {run.config.last_step}, before any state was saved: a rerun starts "
                "from step 0.")
    return (f"Interrupted at step {step} of {run.config.last_step}; the state of step {saved} is saved in "
            f"{run.output_dir}. Run the same tune again (same options and output folder) to resume from step {saved}; "
            "--restart (resume=False) starts over.")


def _say(show: bool, message: str) -> None:
    if show:
        print(message, file=sys.stderr, flush=True)


def _save_checkpoint(accelerator, wrapped, task, config, model_id, step, train_size, metrics, init_snapshot, output_dir,
                     eval_rows=()):
    from ..cards import public_source

    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(wrapped).model
    if config.method == "full":
        return Checkpoint(step=step, path=None, metrics=metrics, embedding=None)
    info = {"task": task.name, "base_model": model_id, "method": config.method, "step": step, "train_size": train_size,
            "metrics": metrics, "seed": config.seed, "labels": task.labels,
            "source": public_source(task.source),  # decided here, where a relative path still resolves
            "recipe": config.recipe(step, accelerator.num_processes)}
    # the precision that ran, for the record: not a compared recipe key (recipe.NOT_COMPARED), so a bf16 target
    # ranks against fp32 sources without a mismatch warning (cosine >= 0.9998 between the two)
    info["recipe"]["mixed_precision"] = accelerator.mixed_precision
    # what curation judges an entry by (taskemb_hub/curation.py): the split it was tuned on (`train_rows` reads
    # "train"), and what a model that learned nothing scores on the held-out rows the metric comes from
    from .recipe import chance_level

    info["train_split"] = "train"
    if metrics and (chance := chance_level(task, list(eval_rows))):
        info["chance"] = chance
    # what BitFit's embedding depends on, so the adapter folder embeds the same without the base model at hand
    base_config = model.get_base_model().config
    info["base_model_config"] = {k: getattr(base_config, k) for k in ("model_type", "position_embedding_type")
                                 if isinstance(getattr(base_config, k, None), str)}
    embedding = TaskEmbedding.from_peft_model(model, task=task.name, info=info, options=config.embedding,
                                              init=init_snapshot)
    path = None
    if output_dir is not None and accelerator.is_main_process:
        import shutil

        from safetensors.torch import save_file

        from ..cards import CARD_NAME, write_model_card

        target = output_dir / f"step-{step}"

        def write(folder: Path) -> None:
            if (target / CARD_NAME).is_file():  # a card someone edited there is merged into, as before, not lost
                shutil.copy2(target / CARD_NAME, folder / CARD_NAME)
            model.save_pretrained(str(folder), safe_serialization=True, save_embedding_layers=False)
            if init_snapshot is not None:
                save_file(init_snapshot, str(folder / INIT_NAME))
            (folder / CHECKPOINT_INFO_NAME).write_text(json.dumps(info, indent=2))
            embedding.adapter_sha256 = adapter_digest(folder)  # the bytes just saved from the model embedded
            embedding.save(folder)
            write_model_card(folder, embedding, task=task)

        path = replace_folder(target, write)  # another run's step-N: replaced whole, never mixed
        if config.push_to_hub:
            _push(path, config, task, revision=f"step-{step}")
    return Checkpoint(step=step, path=path, metrics=metrics, embedding=embedding)


def _push(path: Path, config: TuningConfig, task: TaskData, revision: str | None) -> None:
    """Publish one checkpoint folder (main process only: the caller checks).

    A failed push never stops the run (the checkpoint is on disk; `taskemb-hub publish` can push it
    later): it is warned about and recorded in `push_errors.json` beside the checkpoints.
    """
    from ..publishing import publish

    try:
        publish(path, config.push_to_hub, private=config.hub_private, revision=revision, task=task,
                base_model_id=config.hub_base_model_id)
    except Exception as err:  # the Hub may fail mid-run: keep training, report how to finish the push
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        warnings.warn(f"Could not push {path} to {config.push_to_hub} ({revision or 'main'}): {reason}. Training goes "
                      f"on; push it later with `taskemb-hub publish {path} --repo-id {config.push_to_hub}"
                      + (f" --revision {revision}`." if revision else "`."), stacklevel=2)
        log = path.parent / "push_errors.json"
        errors = json.loads(log.read_text()) if log.is_file() else []
        log.write_text(json.dumps(errors + [{"checkpoint": path.name, "revision": revision or "main",
                                             "reason": reason}], indent=2))
