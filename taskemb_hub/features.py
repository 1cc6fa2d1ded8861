"""Turn task rows into model inputs (dynamic padding) and model outputs back into predictions."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import torch

from .data import EXTRACTIVE_QA, REGRESSION, TaskData


def encode_rows(task: TaskData, rows: list[dict], tokenizer, max_length: int, *, for_eval: bool = False) -> list[dict]:
    """Tokenize rows without padding; the collator pads each batch to its own longest row.

    For QA, each row becomes one feature: the window holding the answer (training) or the
    first window (evaluation, with offsets kept to map logits back to text).
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
    enc = tokenizer([r["question"].strip() for r in rows], [r["context"] for r in rows], truncation="only_second",
                    max_length=max_length, return_offsets_mapping=True, padding=False)
    feats = []
    for i, row in enumerate(rows):
        offsets = enc["offset_mapping"][i]
        seq_ids = enc.sequence_ids(i)
        feat = {k: enc[k][i] for k in enc.keys() if k != "offset_mapping"}
        start_tok = end_tok = 0  # CLS = unanswerable or answer outside the window
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
        if for_eval:
            feat["offset_mapping"] = [o if seq_ids[j] == 1 else None for j, o in enumerate(offsets)]
        feats.append(feat)
    return feats


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
    """Best span per example, or "" when the null (CLS) score beats every span."""
    preds = []
    for feat, row, s_log, e_log in zip(feats, rows, start_logits, end_logits):
        offsets = feat["offset_mapping"]
        n = min(len(offsets), len(s_log))
        null_score = s_log[0] + e_log[0]
        best, best_score = "", null_score
        starts = np.argsort(s_log[:n])[::-1][:n_best]
        ends = np.argsort(e_log[:n])[::-1][:n_best]
        for s in starts:
            for e in ends:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_tokens:
                    continue
                score = s_log[s] + e_log[e]
                if score > best_score:
                    best_score, best = score, row["context"][offsets[s][0]:offsets[e][1]]
        preds.append(best)
    return preds
