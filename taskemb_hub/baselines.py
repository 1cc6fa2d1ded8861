"""Baselines ranked through the same `TaskEmbedding` / `AutoSourceSelector` interface.

- TextEmb (Vu et al. 2020): the mean of the base model's token states over a task's texts.
- TaskEmb (Vu et al. 2020): the diagonal Fisher information of a model fine-tuned on the task,
  taken over the encoder's weights (the log-likelihood of the model's own predicted label).
- SPoT-style (Vu et al. 2022): the raw tuned prompt tokens, mean-pooled (no init removed):
  the prompt method with `EmbeddingOptions(relative_to_init=False)`.
- DataSize and Random are not embeddings (the tests' `datasize_scores`, `random_scores`).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from .base_model import resolve_base_model
from .data import EXTRACTIVE_QA, TaskData
from .embedding import TaskEmbedding
from .tuning.features import Collator, encode_rows, sort_by_length
from .tuning.training import TuningConfig, tune


def _loader(task: TaskData, tokenizer, rows: int, max_length: int, batch_size: int, seed: int = 0,
            by_length: bool = False):
    feats = encode_rows(task, task.train_rows(rows, seed=seed), tokenizer, max_length)
    # an average over rows does not depend on their order
    return DataLoader(sort_by_length(feats) if by_length else feats, batch_size=batch_size,
                      collate_fn=Collator(tokenizer))


@torch.no_grad()
def text_embedding(task: TaskData, base_model: str | None = None, max_examples: int = 500, max_length: int = 128,
                   batch_size: int = 64) -> TaskEmbedding:
    """TextEmb: average over examples of the mean (over real tokens) of the last hidden states."""
    from transformers import AutoModel, AutoTokenizer

    load_from, model_id = resolve_base_model(base_model)
    tokenizer, model = AutoTokenizer.from_pretrained(load_from), AutoModel.from_pretrained(load_from).eval()
    total, count = None, 0
    for batch in _loader(task, tokenizer, max_examples, max_length, batch_size, by_length=True):
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        states = model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        means = (states * mask).sum(1) / mask.sum(1)
        total = means.sum(0) if total is None else total + means.sum(0)
        count += means.shape[0]
    return TaskEmbedding(vector=total / count, task=task.name, base_model=model_id, method="textemb",
                         signature={"method": "textemb", "max_length": max_length}, train_size=len(task.splits["train"]))


def fisher_embedding(task: TaskData, base_model: str | None = None, train_steps: int = 100, fisher_examples: int = 128,
                     max_length: int = 128, max_train_examples: int | None = 1000, seed: int = 0) -> TaskEmbedding:
    """TaskEmb: fine-tune the whole model briefly, then average squared per-example gradients of
    log p(ŷ|x) (ŷ the predicted label) over the encoder's weight matrices."""
    from transformers import AutoTokenizer

    load_from, model_id = resolve_base_model(base_model)
    keep: dict = {}
    tune(task, TuningConfig(method="full", base_model=base_model, max_steps=train_steps, learning_rate=1e-4,
                            head_init="random", head_pooling="cls", max_length=max_length, max_train_examples=max_train_examples,
                            eval_examples=0, seed=seed, init_seed=seed), None, progress=False, _keep_model=keep)
    model = keep["model"].eval()
    tokenizer = AutoTokenizer.from_pretrained(load_from)
    params = {n: p for n, p in model.base_model.named_parameters() if "encoder" in n and p.dim() == 2}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    used = 0
    for batch in _loader(task, tokenizer, fisher_examples, max_length, 1, seed=seed + 1):
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        model.zero_grad()
        out = model(**inputs)
        if task.task_type == EXTRACTIVE_QA:
            logp = out.start_logits.log_softmax(-1).max() + out.end_logits.log_softmax(-1).max()
        else:
            logits = out.logits
            logp = -((logits.squeeze(-1)) ** 2).sum() if logits.shape[-1] == 1 else logits.log_softmax(-1).max()
        logp.backward()
        for n, p in params.items():
            fisher[n] += p.grad.detach() ** 2
        used += 1
    vector = torch.cat([(fisher[n] / used).reshape(-1) for n in sorted(fisher)])
    return TaskEmbedding(vector=vector, task=task.name, base_model=model_id, method="taskemb",
                         signature={"method": "taskemb", "params": sorted(fisher), "train_steps": train_steps},
                         train_size=len(task.splits["train"]))


def isometric_copies(embeddings: list[TaskEmbedding]) -> list[TaskEmbedding]:
    """Exact small stand-ins for a set of huge vectors (TaskEmb has one value per encoder weight).

    Each vector is replaced by its coordinates in an orthonormal basis of the set's span: n vectors
    become n values each, with every inner product, norm and mean preserved, so cosine and centred
    rankings *within this set* are unchanged. Adding a task means recomputing all of them.

    Args:
        embeddings: embeddings sharing one signature.

    Returns:
        New `TaskEmbedding`s (same metadata) whose vectors have `len(embeddings)` values.
    """
    for emb in embeddings[1:]:
        embeddings[0].check_compatible(emb)
    stacked = torch.stack([e.vector.double() for e in embeddings])
    values, basis = torch.linalg.eigh(stacked @ stacked.T)
    coords = basis * values.clamp_min(0).sqrt()  # coords @ coords.T == the Gram matrix
    tasks = [e.task for e in embeddings]
    out = []
    for emb, row in zip(embeddings, coords):
        signature = {"method": emb.method, "isometric_copy_of": tasks, "full_signature": emb.signature_hash}
        out.append(TaskEmbedding(vector=row.float(), task=emb.task, base_model=emb.base_model, method=emb.method,
                                 signature=signature, step=emb.step, train_size=emb.train_size, metrics=dict(emb.metrics),
                                 extra={**emb.extra, "full_dim": emb.dim}))
    return out
