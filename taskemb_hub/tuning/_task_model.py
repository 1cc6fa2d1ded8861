"""The model a tuning run trains: the base model with a task head, wrapped in the method's peft model,
and the optimizer with its learning-rate schedule (used by `training.tune`).

`TuningConfig` (training.py) is named in annotations only, never imported: training imports this module."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..base_model import resolve_base_model
from ..data import EXTRACTIVE_QA, REGRESSION, TaskData
from ..errors import TaskEmbHubError
from ..methods import get_method

HEAD_NAMES = ("classifier", "qa_outputs", "score")


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


def _make_optimizer(model, config: TuningConfig, processes: int):
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
