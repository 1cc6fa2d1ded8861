"""Turn task rows into model inputs (dynamic padding) and model outputs back into predictions."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import torch

from ..data import EXTRACTIVE_QA, REGRESSION, TaskData


def encode_rows(task: TaskData, rows: list[dict], tokenizer, max_length: int, *, for_eval: bool = False) -> list[dict]:
    """Tokenize rows without padding; the collator pads each batch to its own longest row.

    For QA, a context longer than one window becomes several overlapping windows (stride
    `max_length // 4`), as in transformers' QA examples: each window is labelled with the answer
    when it holds it whole, else with CLS ("no answer here"), and carries `example_index`, the
    row it came from, so predictions can take the best span over all of a row's windows.
    """
    if task.task_type == EXTRACTIVE_QA:
        return _encode_qa(rows, tokenizer, max_length, for_eval)
    texts = [r["text"] for r in rows]
    pairs = [r["text_pair"] for r in rows] if task.pair or (rows and "text_pair" in rows[0]) else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    dtype = torch.float32 if task.task_type == REGRESSION else torch.long
    feats = []
    for i, row in enumerate(rows):
        feat = {k: enc[k][i] for k in enc.keys()}
        feat["labels"] = torch.tensor(row["label"], dtype=dtype)
        feats.append(feat)
    return feats


def _encode_qa(rows, tokenizer, max_length, for_eval):
    # A question may not take the whole window: the context needs room for at least the stride.
    stride = max_length // 4
    max_question = max_length // 2
    questions = []
    for r in rows:
        ids = tokenizer(r["question"].strip(), add_special_tokens=False)["input_ids"]
        questions.append(r["question"].strip() if len(ids) <= max_question else tokenizer.decode(ids[:max_question]))
    enc = tokenizer(questions, [r["context"] for r in rows], truncation="only_second", max_length=max_length,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
    feats = []
    for i, example in enumerate(enc["overflow_to_sample_mapping"]):
        row = rows[example]
        offsets = enc["offset_mapping"][i]
        seq_ids = enc.sequence_ids(i)
        feat = {k: enc[k][i] for k in enc.keys() if k not in ("offset_mapping", "overflow_to_sample_mapping")}
        start_tok = end_tok = 0  # CLS = unanswerable, or the answer is not (whole) in this window
        answers = row["answers"]
        if answers["text"]:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            ctx = [j for j, s in enumerate(seq_ids) if s == 1]
            if ctx and offsets[ctx[0]][0] <= start_char and offsets[ctx[-1]][1] >= end_char:
                start_tok = next(j for j in ctx if offsets[j][1] > start_char)
                end_tok = next(j for j in reversed(ctx) if offsets[j][0] < end_char)
        feat["start_positions"] = start_tok
        feat["end_positions"] = end_tok
        feat["example_index"] = example
        if for_eval:
            feat["offset_mapping"] = [o if seq_ids[j] == 1 else None for j, o in enumerate(offsets)]
        feats.append(feat)
    return feats


def sort_by_length(feats: list[dict]) -> list[dict]:
    """`feats` shortest first: batches of similar lengths pad less (for work that does not depend on row order)."""
    return sorted(feats, key=lambda feat: len(feat["input_ids"]))


class Collator:
    """Pads a batch to its longest row; keeps non-tensor fields (QA offsets) out of the model input."""

    def __init__(self, tokenizer):
        self.pad_id = tokenizer.pad_token_id or 0

    def __call__(self, feats: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in feats)
        batch: dict[str, Any] = {}
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if key in feats[0]:
                pad = self.pad_id if key == "input_ids" else 0
                batch[key] = torch.tensor([list(f[key]) + [pad] * (longest - len(f[key])) for f in feats])
        for key in ("labels", "start_positions", "end_positions"):
            if key in feats[0]:
                values = [f[key] for f in feats]
                batch[key] = torch.stack(values) if torch.is_tensor(values[0]) else torch.tensor(values)
        return batch


def qa_predictions(feats: list[dict], rows: list[dict], start_logits: np.ndarray, end_logits: np.ndarray,
                   max_answer_tokens: int = 30, n_best: int = 20) -> list[str]:
    """Best span per example over all its windows, or "" when the null (CLS) score beats every span.

    As in transformers' SQuAD v2 post-processing, the null score of an example is the lowest of its
    windows' (the window most sure the answer is somewhere in it decides whether there is one).
    """
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for i, (feat, s_log, e_log) in enumerate(zip(feats, start_logits, end_logits)):
        example = feat.get("example_index", i)
        row = rows[example]
        offsets = feat["offset_mapping"]
        n = min(len(offsets), len(s_log))
        null[example] = min(null.get(example, float("inf")), float(s_log[0] + e_log[0]))
        starts = np.argsort(s_log[:n])[::-1][:n_best]
        ends = np.argsort(e_log[:n])[::-1][:n_best]
        for s in starts:
            for e in ends:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_tokens:
                    continue
                score = float(s_log[s] + e_log[e])
                if example not in best or score > best[example][0]:
                    best[example] = (score, row["context"][offsets[s][0]:offsets[e][1]])
    preds = []
    for example in range(len(rows)):
        score, text = best.get(example, (float("-inf"), ""))
        preds.append(text if example in null and score > null[example] else "")
    return preds
