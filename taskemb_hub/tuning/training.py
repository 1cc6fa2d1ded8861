"""Accelerate-driven PEFT tuning that keeps early checkpoints, each with its task embedding.

The loop is plain Accelerate (`prepare`, `accumulate`, `backward`, `gather_for_metrics`), so
`accelerate launch -m taskemb_hub.cli tune ...` runs it unchanged on several GPUs.

Two choices make embeddings of different tasks comparable (see the reference measurements):
- the task head starts at zero (`head_init="zeros"`), not at random: a random head steers the
  body's first updates in a direction that has nothing to do with the task;
- the PEFT weights start from one fixed seed (`init_seed`) for every task and run, so two
  runs differ by their data, not by their initial draw.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ._evaluation import evaluate  # noqa: F401 - public here, as before the split
from ._resume import read_state, run_id, save_state, state_dir
from ._task_model import (HEAD_NAMES, MeanPooler, TaskModel, _make_optimizer, _with_peft,  # noqa: F401 - public
                          build_model, head_module)
from ._training_loop import (Checkpoint, _progress, _push, _refuse_foreign_checkpoints, _Run, _saved_state,
                             _train_loop)
from ..base_model import resolve_base_model
from ..data import EXTRACTIVE_QA, TaskData, check_trainable, load_task
from ..default_registry import DEFAULT_METHOD
from ..errors import TaskEmbHubError
from .features import Collator, encode_rows, sort_by_length
from ..methods import EmbeddingOptions, get_method
from .precision import cast_frozen_linear_weights, check_mixed_precision, make_accelerator
from .recipe import DEFAULT_RECIPE


@dataclass
class TuningConfig:
    """How to tune one task.

    Args:
        method: PEFT method name (`lora`, `prompt`, `prefix`, `ia3`, `bitfit`), or `full` for
            full fine-tuning (used by the transfer-matrix runner; gives no embedding). Default:
            `bitfit`, the method of the packaged registry (how it ranks: benchmarks/RESULTS.md).
        base_model: local folder or Hub id; None = the packaged all-MiniLM-L6-v2.
        max_steps: optimizer steps to run; the learning rate warms up over `warmup_ratio` of them and
            decays linearly to 0 at the last. Default 100, with `max_train_examples` 1,000 and
            `head_pooling` mean: the packaged registry's recipe (`recipe.DEFAULT_RECIPE`), so a target
            tuned with the defaults is comparable with it. A checkpoint at step 100 of a 200-step run is
            not: its warm-up was twice as long and its learning rate is still half the peak there.
        save_steps: steps at which to keep a checkpoint (the last step is always kept).
        batch_size: examples per optimizer step per device (times `gradient_accumulation_steps`).
        learning_rate: None = the method's default.
        head_learning_rate: learning rate of the task head.
        head_init: `zeros` (deterministic; recommended for embeddings) or `random`.
        head_pooling: what a classification head reads: `mean` (the masked mean of the last
            token states, how sentence-transformers such as all-MiniLM-L6-v2 were trained; the
            default, see benchmarks/RESULTS.md) or `cls` (the model's pooler, as
            `AutoModelForSequenceClassification`).
        max_length: tokens per example (batches are padded to their own longest example).
        max_train_examples: seeded subset of the train split (default 1,000, the packaged
            registry's); None = all.
        eval_examples: validation examples scored at each checkpoint; 0 = no in-task metric.
        seed: data order and dropout.
        init_seed: initial draw of the PEFT weights, shared by every task (see module doc).
        warmup_ratio: linear warm-up share of `max_steps`, then linear decay.
        gradient_accumulation_steps: micro-batches per optimizer step.
        stop_step: stop here, before `max_steps`, keeping the schedule of a `max_steps` run (to
            reproduce an early checkpoint of a longer run cheaply).
        method_kwargs: overrides of the method's peft config (e.g. `{"r": 16}`).
        embedding: how checkpoints are embedded.
        push_to_hub: `owner/name`: push each kept checkpoint as it is saved (branch `step-N`), and
            the last one to `main` when the run ends, with the card and tags of `publish`. Only the
            main process pushes under Accelerate.
        hub_private: create that repo private.
        hub_base_model_id: the Hub id of `base_model` when it is a local folder (never uploaded).
        mixed_precision: precision of the forward and backward passes: None (the default: as Accelerate is
            configured, i.e. `accelerate launch --mixed_precision ...`, else float32, as the packaged registry's
            entries were tuned and `taskemb-hub tune` reproduces them), `no` (float32), `bf16` (Accelerate's bfloat16
            autocast; weights and embedding stay float32) or `auto` (`bf16` where the device does bfloat16
            natively, a CUDA GPU with bf16 or a CPU with AVX512_BF16/AMX, else `no`; what `target_from_data`
            uses). Measured on 2 AVX512_BF16 cores: the 100 steps in half the time, cosine >= 0.9998 to the
            float32 vector (`precision` module). Recorded as `recipe["mixed_precision"]` and in run.json, not compared between
            target and sources. An `accelerator` passed to `tune` wins over it.
    """

    method: str = DEFAULT_METHOD
    base_model: str | None = None
    max_steps: int = DEFAULT_RECIPE["max_steps"]
    save_steps: list[int] = field(default_factory=list)
    batch_size: int = 16
    learning_rate: float | None = None
    head_learning_rate: float = 1e-3
    head_init: str = "zeros"
    head_pooling: str = "mean"
    max_length: int = 128
    max_train_examples: int | None = DEFAULT_RECIPE["max_train_examples"]
    eval_examples: int = 500
    seed: int = 0
    init_seed: int = 0
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    stop_step: int | None = None
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    embedding: EmbeddingOptions = field(default_factory=EmbeddingOptions)
    push_to_hub: str | None = None
    hub_private: bool = False
    hub_base_model_id: str | None = None
    mixed_precision: str | None = None

    def __post_init__(self):
        if isinstance(self.embedding, dict):
            self.embedding = EmbeddingOptions(**self.embedding)
        if self.method != "full":
            get_method(self.method)  # fail early with the list of methods
        if self.head_pooling not in ("cls", "mean"):
            raise TaskEmbHubError(f"head_pooling must be 'cls' or 'mean', not {self.head_pooling!r}.")
        if self.head_init not in ("zeros", "random"):
            raise TaskEmbHubError(f"head_init must be 'zeros' or 'random', not {self.head_init!r}.")
        self._check_numbers()
        check_mixed_precision(self.mixed_precision)
        bad = [s for s in self.save_steps if not 0 < int(s) <= self.max_steps]
        if bad:
            raise TaskEmbHubError(f"save steps {bad} fall outside 1..max_steps={self.max_steps}. Raise --max-steps or drop them.")
        self.save_steps = sorted({int(s) for s in self.save_steps if int(s) <= self.last_step} | {self.last_step})
        if self.push_to_hub:
            from ..publishing import check_repo_id

            check_repo_id(self.push_to_hub)

    # field -> (smallest allowed, largest allowed or None, whether None is allowed, an example value)
    _LIMITS = {"max_steps": (1, None, False, 100), "batch_size": (1, None, False, 16), "max_length": (1, None, False, 128),
               "max_train_examples": (1, None, True, 1000), "eval_examples": (0, None, False, 500),
               "seed": (0, None, False, 0), "init_seed": (0, None, False, 0),
               "gradient_accumulation_steps": (1, None, False, 1), "stop_step": (1, None, True, 100)}
    _POSITIVE = {"learning_rate": (True, 1e-3), "head_learning_rate": (False, 1e-3)}

    def _check_numbers(self) -> None:
        """Refuse counts, rates and ratios no run can use (a zero batch, a negative learning rate, ...) in one line."""
        import math

        def refuse(name: str, value, wanted: str, example) -> None:
            cli = name in ("max_steps", "batch_size", "learning_rate", "max_length", "max_train_examples",
                           "eval_examples", "seed")  # the fields `taskemb-hub tune` has a flag for
            raise TaskEmbHubError(f"TuningConfig {name} must be {wanted} (got {value!r}). Pass e.g. {name}={example!r}"
                                  + (f" (CLI: --{name.replace('_', '-')} {example})." if cli else "."))

        for name, (low, high, nullable, example) in self._LIMITS.items():
            value = getattr(self, name)
            if value is None and nullable:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
                refuse(name, value, f"an integer >= {low}" + (" or None" if nullable else ""), example)
        for name, (nullable, example) in self._POSITIVE.items():
            value = getattr(self, name)
            if value is None and nullable:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                refuse(name, value, "a positive number" + (" or None (the method's default)" if nullable else ""), example)
        for name, ok, wanted in (("warmup_ratio", lambda v: 0 <= v < 1, "in [0, 1)"),
                                 ("weight_decay", lambda v: 0 <= v < math.inf, "a number >= 0")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                refuse(name, value, wanted, 0.06 if name == "warmup_ratio" else 0.0)
        if self.stop_step is not None and self.stop_step > self.max_steps:
            raise TaskEmbHubError(f"TuningConfig stop_step {self.stop_step} is past max_steps={self.max_steps}. Lower "
                                  "stop_step or raise max_steps.")

    @property
    def last_step(self) -> int:
        """The step the run ends at: `stop_step` when set, else `max_steps`."""
        return self.stop_step or self.max_steps

    def recipe(self, step: int, processes: int = 1) -> dict[str, Any]:
        """What it takes to tune another task into the same embedding space, up to `step`.

        Args:
            step: the checkpoint's step.
            processes: processes the run is spread over (Accelerate's `num_processes`): each takes
                `batch_size` examples per micro-batch.

        Returns:
            The recipe, with `global_batch_size`: the examples behind one optimizer step
            (`batch_size` x `gradient_accumulation_steps` x `processes`), what tuning depends on.
        """
        keep = ("method", "max_steps", "batch_size", "gradient_accumulation_steps", "learning_rate",
                "head_learning_rate", "head_init", "head_pooling", "max_length", "max_train_examples", "init_seed",
                "warmup_ratio", "weight_decay", "method_kwargs")
        return {k: getattr(self, k) for k in keep} | {
            "global_batch_size": self.batch_size * self.gradient_accumulation_steps * processes,
            "stop_step": step, "embedding": asdict(self.embedding)}


def plan_runs(save_steps: list[int], max_steps: int | None = None) -> list[tuple[int, list[int]]]:
    """The runs `taskemb-hub tune` makes for its save steps: `[(max_steps, save_steps), ...]`.

    A checkpoint is comparable only with runs of its own length (the learning rate warms up over a share
    of `max_steps` and decays to 0 at the last: at step 100 of a 200-step run it is still half the peak).
    Without `max_steps` a run is as long as its largest save step (100, the packaged recipe's, without
    any), but a save step at the recipe's 100 with later ones (`--save-steps 50,100,200`, the README's)
    makes two runs: steps up to 100 from a 100-step run, the registry's recipe, whose step 100 ranks
    against the packaged registry; later ones from a run as long as the largest.

    Args:
        save_steps: the steps to keep.
        max_steps: the run's length when given: one run.

    Returns:
        One or two `(max_steps, save_steps)` pairs, the registry's recipe first.
    """
    recipe_steps = DEFAULT_RECIPE["max_steps"]
    if max_steps is not None or not save_steps:
        return [(max_steps or recipe_steps, list(save_steps))]
    if recipe_steps not in save_steps or max(save_steps) == recipe_steps:
        return [(max(save_steps), list(save_steps))]
    beyond = [s for s in save_steps if s > recipe_steps]
    return [(recipe_steps, [s for s in save_steps if s <= recipe_steps]), (max(beyond), beyond)]


def tune(task: TaskData | str | Path, config: TuningConfig, output_dir: str | Path | None = None, *,
         progress: bool = True, accelerator=None, body_state: dict | None = None,
         eval_split: str | None = None, resume: bool = True, run_file: str = "run.json",
         _keep_model: dict | None = None) -> list[Checkpoint]:
    """Tune `config.method` on `task`, keeping a checkpoint (adapter + embedding + metric) at each save step.

    With an `output_dir`, a resumable state is kept there (`_resume`): Ctrl-C stops at the end of the
    current optimizer step, saves it and raises `TuningInterrupted` (a `KeyboardInterrupt`) saying so; the
    same call again goes on from that step (or from the last save step after a crash) and ends where an
    uninterrupted run would have; a run that finished returns its checkpoints without tuning again.

    Args:
        task: a `TaskData`, or anything `load_task` takes.
        config: a `TuningConfig`.
        output_dir: where `step-N/` folders go; None keeps nothing on disk (embeddings only).
        progress: show a progress bar.
        accelerator: an `accelerate.Accelerator`; one is made when None (with `config.mixed_precision`; a
            given one keeps its own precision, which the checkpoints record).
        body_state: start from these body weights instead of the base model's (intermediate-task transfer;
            such runs are not resumed).
        eval_split: split scored at checkpoints (default validation, else test).
        resume: go on from a state saved in `output_dir` by the same run; False starts over.
        run_file: name of the run's summary in `output_dir`.

    Returns:
        One `Checkpoint` per save step.
    """
    from transformers import AutoTokenizer

    task = task if isinstance(task, TaskData) else load_task(task)
    if config.push_to_hub and output_dir is None:
        raise TaskEmbHubError("push_to_hub needs an output folder: the checkpoints are pushed from disk. Pass output_dir "
                              "(CLI: --out).")
    if output_dir is not None:
        check_output_folder(Path(output_dir))  # before the model loads and trains: not after the last step
    accelerator = accelerator or make_accelerator(config.mixed_precision, config.gradient_accumulation_steps)
    load_from, model_id = resolve_base_model(config.base_model)
    train_rows = task.train_rows(config.max_train_examples, seed=config.seed)
    output_dir = Path(output_dir) if output_dir is not None else None
    resume_dir, state = _resume_point(task, config, output_dir, train_rows, model_id, accelerator,
                                      body_state=body_state, resume=resume, progress=progress)
    if isinstance(state, list):
        return state  # the checkpoints of a run that finished before
    tokenizer = AutoTokenizer.from_pretrained(load_from)
    model, init_snapshot = _load_model(task, config, model_id, body_state)
    if _keep_model is None:  # the transfer runner goes on with the body in float32
        cast_frozen_linear_weights(model, accelerator.mixed_precision)
    train_loader, eval_loader, eval_feats, eval_rows = _prepare_data(task, config, train_rows, tokenizer, eval_split)
    optimizer, scheduler = _make_optimizer(model, config, accelerator.num_processes)
    wrapped = TaskModel(model, config.method)
    wrapped, optimizer, train_loader, scheduler = accelerator.prepare(wrapped, optimizer, train_loader, scheduler)
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)

    run = _Run(accelerator, wrapped, optimizer, scheduler, train_loader, eval_loader, eval_feats, eval_rows, task,
               config, model_id, len(train_rows), init_snapshot, output_dir, resume_dir)
    checkpoints, step, examples, elapsed = _train_loop(run, state, progress)
    if _keep_model is not None:  # the transfer runner reuses the tuned body
        _keep_model["model"] = accelerator.unwrap_model(wrapped).model
    if output_dir is not None and accelerator.is_main_process:
        _write_run(run, run_file, checkpoints, step, examples, elapsed)
        if config.push_to_hub and checkpoints and checkpoints[-1].path is not None:
            _push(checkpoints[-1].path, config, task, revision=None)  # the default checkpoint goes on main
    if resume_dir is not None:  # what a rerun returns; the tensors of the state go
        save_state(resume_dir, accelerator=accelerator, model=None, optimizer=None, scheduler=None,
                   progress=_progress(step, 0, examples, elapsed, checkpoints), finished=True)
    return checkpoints


def _resume_point(task: TaskData, config: TuningConfig, output_dir: Path | None, train_rows: list, model_id: str,
                  accelerator, *, body_state: dict | None, resume: bool, progress: bool):
    """`(resume_dir, state)`: where this run keeps its resumable state (None: not resumed) and what `_saved_state`
    found there (a state to go on from, the checkpoints of a run that finished, or None)."""
    if output_dir is None or config.method == "full" or body_state is not None:
        return None, None
    resume_dir = state_dir(output_dir, run_id(config, model_id, task.name, train_rows, accelerator.num_processes,
                                               accelerator.mixed_precision))
    if resume:  # --restart replaces them; otherwise another run's step-N is never overwritten unasked
        _refuse_foreign_checkpoints(output_dir, config, read_state(resume_dir))
    return resume_dir, _saved_state(resume_dir, output_dir, resume, progress and accelerator.is_main_process)


def _load_model(task: TaskData, config: TuningConfig, model_id: str, body_state: dict | None):
    """The model to tune and its init snapshot: the peft weights drawn from `init_seed`, then the seed set for the
    data order and dropout."""
    from accelerate.utils import set_seed

    set_seed(config.init_seed)
    model = build_model(task, config.base_model, config.head_init, body_state, config.head_pooling)
    model, init_snapshot = _with_peft(model, task, config, model_id)
    set_seed(config.seed)
    return model, init_snapshot


def _prepare_data(task: TaskData, config: TuningConfig, train_rows: list, tokenizer, eval_split: str | None):
    """`(train_loader, eval_loader, eval_feats, eval_rows)`: the seeded shuffled train batches and the evaluation rows
    (no eval loader when `eval_examples` is 0)."""
    check_trainable(task, train_rows)  # too few rows or one label: refuse rather than embed noise or zeros
    eval_rows = task.eval_rows(config.eval_examples, eval_split) if config.eval_examples else []
    collator = Collator(tokenizer)
    train_loader = DataLoader(encode_rows(task, train_rows, tokenizer, config.max_length), batch_size=config.batch_size,
                              shuffle=True, collate_fn=collator, generator=torch.Generator().manual_seed(config.seed))
    eval_feats = encode_rows(task, eval_rows, tokenizer, config.max_length, for_eval=True) if eval_rows else []
    eval_loader = DataLoader(_by_length(task, eval_feats), batch_size=64, collate_fn=collator) if eval_feats else None
    return train_loader, eval_loader, eval_feats, eval_rows


def _by_length(task: TaskData, eval_feats: list[dict]) -> list[dict]:
    """The held-out features in the order they are batched: by length, so batches pad less (a classification or
    regression metric does not depend on the rows' order); QA predictions are matched to features in order."""
    return eval_feats if task.task_type == EXTRACTIVE_QA else sort_by_length(eval_feats)


def _write_run(run: _Run, run_file: str, checkpoints: list[Checkpoint], step: int, examples: int, elapsed: float):
    """The run's summary (`run.json`) beside its checkpoints."""
    run.output_dir.mkdir(parents=True, exist_ok=True)
    summary = {"task": run.task.name, "base_model": run.model_id, "config": asdict(run.config),
               "train_size": run.train_size, "seconds": round(elapsed, 2),
               "examples_per_second": round(examples / max(elapsed, 1e-9), 2),
               "optimizer_steps": step, "processes": run.accelerator.num_processes,
               "mixed_precision": run.accelerator.mixed_precision,  # what ran (`auto` resolved, or the given accelerator's)
               "final_learning_rates": [float(lr) for lr in run.scheduler.get_last_lr()],
               "checkpoints": [{"step": c.step, "metrics": c.metrics} for c in checkpoints]}
    (run.output_dir / run_file).write_text(json.dumps(summary, indent=2))


def check_output_folder(output_dir: Path) -> None:
    """Refuse, in one line, an output folder that cannot be written: a file, under a file, or read-only.

    Args:
        output_dir: the folder `tune` writes `step-N/` into (created later if missing).

    Raises:
        TaskEmbHubError: naming the problem and the fix.
    """
    existing = output_dir
    while not existing.exists() and existing != existing.parent:  # the nearest folder that exists decides
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == output_dir else f"is under {existing}, a file"
        raise TaskEmbHubError(f"Output folder {output_dir} {where}, not a folder. Pass another --out (output_dir).")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise TaskEmbHubError(f"Output folder {output_dir} cannot be written ({existing} is not writable). Pass a "
                              "folder you can write to as --out (output_dir), or fix its permissions.")


