"""The in-task metric a tuning run records at each checkpoint."""

from __future__ import annotations

import torch

from ..data import EXTRACTIVE_QA, REGRESSION, TaskData
from .features import qa_predictions
from .metrics import classification_metrics, regression_metrics, squad_metrics


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
