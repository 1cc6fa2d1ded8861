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
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import _resume
from .adapters import CHECKPOINT_INFO_NAME, INIT_NAME
from .base_model import resolve_base_model
from .data import CLASSIFICATION, EXTRACTIVE_QA, REGRESSION, TaskData, check_trainable, load_task
from .default_registry import DEFAULT_METHOD
from .embedding import TaskEmbedding, adapter_digest
from .errors import TaskEmbHubError
from .features import Collator, encode_rows, qa_predictions
from .methods import EmbeddingOptions, get_method
from .metrics import classification_metrics, regression_metrics, squad_metrics
from .recipe import DEFAULT_RECIPE

HEAD_NAMES = ("classifier", "qa_outputs", "score")


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
        bad = [s for s in self.save_steps if not 0 < int(s) <= self.max_steps]
        if bad:
            raise TaskEmbHubError(f"save steps {bad} fall outside 1..max_steps={self.max_steps}. Raise --max-steps or drop them.")
        self.save_steps = sorted({int(s) for s in self.save_steps if int(s) <= self.last_step} | {self.last_step})
        if self.push_to_hub:
            from .publishing import check_repo_id

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


@dataclass
class Checkpoint:
    step: int
    path: Path | None
    metrics: dict[str, float]
    embedding: TaskEmbedding | None


class TaskModel(nn.Module):
    """Routes `forward(**batch)` through the method's forward, so DDP wraps the whole step."""

    def __init__(self, model: nn.Module, method_name: str):
        super().__init__()
        self.model = model
        self.method_name = method_name

    def forward(self, **batch):
        if self.method_name == "full":
            return self.model(**batch)
        return get_method(self.method_name).forward(self.model, batch)


class MeanPooler(nn.Module):
    """Stands in for BERT's CLS pooler: the masked mean of the last token states.

    The backbone's forward hands a pooler only the hidden states, so a pre-hook on the backbone
    keeps the attention mask of the current call (its last columns: prefix tuning prepends
    virtual tokens to the mask, not to the states).
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self._mask: torch.Tensor | None = None
        backbone.register_forward_pre_hook(self._keep_mask, with_kwargs=True)

    def _keep_mask(self, module, args, kwargs):
        self._mask = kwargs.get("attention_mask")

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self._mask is None:
            return hidden_states.mean(1)
        mask = self._mask[:, -hidden_states.shape[1]:].unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def build_model(task: TaskData, base_model: str | None, head_init: str = "zeros", body_state: dict | None = None,
                head_pooling: str = "cls"):
    """The base model with a head sized for the task (zeroed when `head_init="zeros"`)."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    load_from, _ = resolve_base_model(base_model)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialised head" warnings are expected here
    try:
        if task.task_type == EXTRACTIVE_QA:
            model = AutoModelForQuestionAnswering.from_pretrained(load_from)
        else:
            problem = "regression" if task.task_type == REGRESSION else "single_label_classification"
            model = AutoModelForSequenceClassification.from_pretrained(load_from, num_labels=task.num_labels,
                                                                       problem_type=problem)
    finally:
        hf_logging.set_verbosity(verbosity)
    if body_state is not None:
        missing, _ = model.base_model.load_state_dict(body_state, strict=False)
        if [m for m in missing if "pooler" not in m]:
            raise TaskEmbHubError(f"Body checkpoint lacks {len(missing)} weights, e.g. {missing[:3]}.")
    if head_pooling == "mean" and task.task_type != EXTRACTIVE_QA:
        backbone = getattr(model, model.base_model_prefix)
        backbone.pooler = MeanPooler(backbone)
    if head_init == "zeros":
        _zero_head_output(head_module(model))
    return model


def _zero_head_output(head: nn.Module) -> None:
    """Zero the head's output layer. A head with a hidden layer (RoBERTa's dense -> tanh -> out_proj) keeps
    its seeded hidden layer: with both layers at zero neither gets a gradient and nothing ever trains."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for p in (linears[-1] if len(linears) > 1 else head).parameters():
            p.zero_()


def head_module(model: nn.Module) -> nn.Module:
    for name in HEAD_NAMES:
        if hasattr(model, name):
            return getattr(model, name)
    raise TaskEmbHubError(f"{type(model).__name__} has no task head named one of {HEAD_NAMES}.")


def _peft_task_type(task: TaskData) -> str:
    return "QUESTION_ANS" if task.task_type == EXTRACTIVE_QA else "SEQ_CLS"


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
        accelerator: an `accelerate.Accelerator`; one is made when None.
        body_state: start from these body weights instead of the base model's (intermediate-task transfer;
            such runs are not resumed).
        eval_split: split scored at checkpoints (default validation, else test).
        resume: go on from a state saved in `output_dir` by the same run; False starts over.
        run_file: name of the run's summary in `output_dir`.

    Returns:
        One `Checkpoint` per save step.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer

    task = task if isinstance(task, TaskData) else load_task(task)
    if config.push_to_hub and output_dir is None:
        raise TaskEmbHubError("push_to_hub needs an output folder: the checkpoints are pushed from disk. Pass output_dir "
                              "(CLI: --out).")
    if output_dir is not None:
        check_output_folder(Path(output_dir))  # before the model loads and trains: not after the last step
    accelerator = accelerator or Accelerator(gradient_accumulation_steps=config.gradient_accumulation_steps)
    load_from, model_id = resolve_base_model(config.base_model)
    train_rows = task.train_rows(config.max_train_examples, seed=config.seed)
    output_dir = Path(output_dir) if output_dir is not None else None
    resume_dir, state = None, None
    if output_dir is not None and config.method != "full" and body_state is None:
        resume_dir = _resume.state_dir(output_dir, _resume.run_id(config, model_id, task.name, train_rows,
                                                                  accelerator.num_processes))
        if resume:  # --restart replaces them; otherwise another run's step-N is never overwritten unasked
            _refuse_foreign_checkpoints(output_dir, config, _resume.read_state(resume_dir))
        state = _saved_state(resume_dir, output_dir, resume, progress and accelerator.is_main_process)
        if isinstance(state, list):
            return state  # the checkpoints of a run that finished before
    tokenizer = AutoTokenizer.from_pretrained(load_from)

    set_seed(config.init_seed)
    model = build_model(task, config.base_model, config.head_init, body_state, config.head_pooling)
    model, init_snapshot = _with_peft(model, task, config, model_id)
    set_seed(config.seed)

    check_trainable(task, train_rows)  # too few rows or one label: refuse rather than embed noise or zeros
    eval_rows = task.eval_rows(config.eval_examples, eval_split) if config.eval_examples else []
    collator = Collator(tokenizer)
    train_loader = DataLoader(encode_rows(task, train_rows, tokenizer, config.max_length), batch_size=config.batch_size,
                              shuffle=True, collate_fn=collator, generator=torch.Generator().manual_seed(config.seed))
    eval_feats = encode_rows(task, eval_rows, tokenizer, config.max_length, for_eval=True) if eval_rows else []
    eval_loader = DataLoader(eval_feats, batch_size=64, collate_fn=collator) if eval_feats else None

    optimizer, scheduler = _optimizer(model, config, accelerator.num_processes)
    wrapped = TaskModel(model, config.method)
    wrapped, optimizer, train_loader, scheduler = accelerator.prepare(wrapped, optimizer, train_loader, scheduler)
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)

    run = _Run(accelerator, wrapped, optimizer, scheduler, train_loader, eval_loader, eval_feats, eval_rows, task,
               config, model_id, len(train_rows), init_snapshot, output_dir, resume_dir)
    checkpoints, step, examples, elapsed = _train(run, state, progress)
    if _keep_model is not None:  # the transfer runner reuses the tuned body
        _keep_model["model"] = accelerator.unwrap_model(wrapped).model
    if output_dir is not None and accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        summary = {"task": task.name, "base_model": model_id, "config": asdict(config), "train_size": len(train_rows),
                   "seconds": round(elapsed, 2), "examples_per_second": round(examples / max(elapsed, 1e-9), 2),
                   "optimizer_steps": step, "processes": accelerator.num_processes,
                   "final_learning_rates": [float(lr) for lr in scheduler.get_last_lr()],
                   "checkpoints": [{"step": c.step, "metrics": c.metrics} for c in checkpoints]}
        (output_dir / run_file).write_text(json.dumps(summary, indent=2))
        if config.push_to_hub and checkpoints and checkpoints[-1].path is not None:
            _push(checkpoints[-1].path, config, task, revision=None)  # the default checkpoint goes on main
    if resume_dir is not None:  # what a rerun returns; the tensors of the state go
        _resume.save_state(resume_dir, accelerator=accelerator, model=None, optimizer=None, scheduler=None,
                           progress=_progress(step, 0, examples, elapsed, checkpoints), finished=True)
    return checkpoints


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


def _refuse_foreign_checkpoints(output_dir: Path, config: TuningConfig, state: dict | None) -> None:
    """Refuse to tune over `step-N` folders this run would write that hold another run's checkpoints (other options,
    same folder): replacing them silently would lose them. Folders this run saved itself (its resumable state records
    their adapter hashes) are its own to rewrite."""
    recorded = {c.get("folder"): c.get("adapter_sha256") for c in (state or {}).get("checkpoints", [])
                if isinstance(c, dict)}
    steps = sorted(set(config.save_steps) | {config.last_step})
    foreign = [f"step-{s}" for s in steps if (output_dir / f"step-{s}").exists()
               and not _resume.checkpoint_is_ours(output_dir / f"step-{s}", recorded.get(f"step-{s}"))]
    if foreign:
        raise TaskEmbHubError(f"{output_dir} holds checkpoints of another run ({' '.join(foreign)}); pass --restart "
                              "(resume=False) to replace them, or another --out (output_dir).")


def _saved_state(resume_dir: Path, output_dir: Path, resume: bool, say: bool) -> dict | list | None:
    """The state to resume from, the checkpoints of a run that finished (a list), or None to start at step 0."""
    if not resume:
        _resume.clear(resume_dir)
    state = _resume.read_state(resume_dir)
    if state is None:
        return None
    done = _saved_checkpoints(state, output_dir)
    if done is None:  # its checkpoint folders are gone or another run's now: tune again from step 0
        _say(say and bool(state.get("checkpoints")), f"{output_dir}: the checkpoints this run saved are gone or were "
             "overwritten by another run (other options, same folder); tuning again from step 0.")
        _resume.clear(resume_dir)
        return None
    if not state["finished"]:
        return state
    _say(say, f"{output_dir}: this run finished before (same options and data); its checkpoints are kept. Pass "
              "--restart (resume=False) to tune again.")
    return done


def _with_peft(model, task: TaskData, config: TuningConfig, model_id: str):
    """`model` wrapped in the method's peft model (recording `model_id`), and the init snapshot it needs."""
    if config.method == "full":
        return model, None
    from peft import get_peft_model

    method = get_method(config.method)
    peft_config = method.make_config_for_base_model(_peft_task_type(task), model.config, **config.method_kwargs)
    peft_config.base_model_name_or_path = model_id
    peft_config.modules_to_save = [n for n in HEAD_NAMES if hasattr(model, n)]
    with warnings.catch_warnings():  # peft swaps in the load path; we keep the portable id
        warnings.simplefilter("ignore")
        model = get_peft_model(model, peft_config)
    model.peft_config["default"].base_model_name_or_path = model_id
    init_snapshot = None
    if method.needs_init_snapshot:
        init_snapshot = {"prompt_embeddings": model.prompt_encoder["default"].embedding.weight.detach().clone().cpu()}
    return model, init_snapshot


def _optimizer(model, config: TuningConfig, processes: int):
    """AdamW over the trainable weights (the head at its own rate) and the linear warm-up/decay schedule."""
    from transformers import get_linear_schedule_with_warmup

    head_params = [p for n, p in model.named_parameters() if p.requires_grad and any(h in n for h in HEAD_NAMES)]
    body_params = [p for n, p in model.named_parameters() if p.requires_grad and not any(h in n for h in HEAD_NAMES)]
    body_lr = config.learning_rate or (get_method(config.method).default_learning_rate if config.method != "full" else 5e-5)
    groups = [{"params": body_params, "lr": body_lr}]
    if head_params:
        groups.append({"params": head_params, "lr": config.head_learning_rate if config.method != "full" else body_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    # Accelerate's prepared scheduler steps once per process at every optimizer step (it assumes the
    # schedule counts per-process batches), so a schedule of `max_steps` would reach zero after
    # max_steps / N steps under N processes: count the schedule in per-process steps.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * config.max_steps) * processes,
                                                config.max_steps * processes)
    return optimizer, scheduler


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


def _train(run: _Run, state: dict | None, progress: bool) -> tuple[list[Checkpoint], int, int, float]:
    """The optimizer steps from the saved `state` (or step 0) to `last_step`: (checkpoints, step, examples, seconds)."""
    from tqdm.auto import tqdm

    acc, config = run.accelerator, run.config
    checkpoints: list[Checkpoint] = []
    step, seen, examples, before = 0, 0, 0, 0.0
    if state is not None:
        _resume.restore_weights(state, accelerator=acc, model=acc.unwrap_model(run.wrapped).model,
                                optimizer=run.optimizer, scheduler=run.scheduler)
        step, seen, examples, before = state["step"], state["batches_seen"], state["examples"], state["seconds"]
        checkpoints = _saved_checkpoints(state, run.output_dir) or []
        _say(progress and acc.is_main_process, f"Resuming {run.task.name} from step {step} of {config.last_step} "
             f"(state saved in {run.resume_dir}).")
    saved, started = step, time.perf_counter()
    bar = tqdm(total=config.last_step, initial=step, desc=f"tune {run.task.name} ({config.method})",
               disable=not progress or not acc.is_local_main_process)
    run.wrapped.train()
    batches = _batches(run.train_loader, seen, on_skipped=(lambda: _resume.restore_rng(state)) if state else None)
    try:
        with _resume.StopRequest() as stop:
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
                    _resume.save_state(run.resume_dir, accelerator=acc, model=acc.unwrap_model(run.wrapped).model,
                                       optimizer=run.optimizer, scheduler=run.scheduler,
                                       progress=_progress(step, seen, examples, before + time.perf_counter() - started,
                                                          checkpoints))
                    saved = step
                if stopping:
                    raise _resume.TuningInterrupted(_interrupted(run, step, step if run.resume_dir else 0))
                if step >= config.last_step:
                    break
    except _resume.TuningInterrupted:
        raise
    except KeyboardInterrupt as err:  # a second Ctrl-C, mid-step: the last saved state stays
        raise _resume.TuningInterrupted(_interrupted(run, step, saved if run.resume_dir else 0)) from err
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
    holds the adapter this run saved there (another run wrote its own `step-N` over it: `_resume.checkpoint_is_ours`)."""
    out = []
    for c in state.get("checkpoints", []):
        path = output_dir / str(c.get("folder"))
        if not _resume.checkpoint_is_ours(path, c.get("adapter_sha256")):
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


@torch.no_grad()
def evaluate(wrapped, eval_loader, task: TaskData, eval_feats, eval_rows, accelerator) -> dict[str, float]:
    """The in-task metric on the evaluation rows (gathered across processes)."""
    wrapped.eval()
    outs: dict[str, list] = {"a": [], "b": [], "labels": []}
    for batch in eval_loader:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "start_positions", "end_positions")}
        out = wrapped(**inputs)
        if task.task_type == EXTRACTIVE_QA:
            s, e = accelerator.pad_across_processes((out.start_logits, out.end_logits), dim=1, pad_index=-1e4)
            s, e = accelerator.gather_for_metrics((s, e))
            outs["a"].extend(list(s.float().cpu().numpy()))
            outs["b"].extend(list(e.float().cpu().numpy()))
        else:
            logits, labels = accelerator.gather_for_metrics((out.logits, batch["labels"]))
            preds = logits.squeeze(-1) if task.task_type == REGRESSION else logits.argmax(-1)
            outs["a"].extend(preds.float().cpu().tolist())
            outs["labels"].extend(labels.float().cpu().tolist())
    if task.task_type == EXTRACTIVE_QA:
        preds = qa_predictions(eval_feats, eval_rows, outs["a"], outs["b"])
        return squad_metrics(preds, [r["answers"]["text"] for r in eval_rows])
    if task.task_type == REGRESSION:
        return regression_metrics(outs["a"], outs["labels"])
    return classification_metrics(outs["a"], outs["labels"])


def _save_checkpoint(accelerator, wrapped, task, config, model_id, step, train_size, metrics, init_snapshot, output_dir,
                     eval_rows=()):
    from .cards import public_source

    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(wrapped).model
    if config.method == "full":
        return Checkpoint(step=step, path=None, metrics=metrics, embedding=None)
    info = {"task": task.name, "base_model": model_id, "method": config.method, "step": step, "train_size": train_size,
            "metrics": metrics, "seed": config.seed, "labels": task.labels,
            "source": public_source(task.source),  # decided here, where a relative path still resolves
            "recipe": config.recipe(step, accelerator.num_processes)}
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

        from .cards import CARD_NAME, write_model_card

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
            write_model_card(folder, embedding, task=task, config=config)

        path = _resume.replace_folder(target, write)  # another run's step-N: replaced whole, never mixed
        if config.push_to_hub:
            _push(path, config, task, revision=f"step-{step}")
    return Checkpoint(step=step, path=path, metrics=metrics, embedding=embedding)


def _push(path: Path, config: TuningConfig, task: TaskData, revision: str | None) -> None:
    """Publish one checkpoint folder (main process only: the caller checks).

    A failed push never stops the run (the checkpoint is on disk; `taskemb-hub publish` can push it
    later): it is warned about and recorded in `push_errors.json` beside the checkpoints.
    """
    from .publishing import publish

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
