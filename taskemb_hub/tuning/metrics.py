"""In-task metrics, computed locally (no Hub download): accuracy, macro-F1, Pearson, SQuAD EM/F1."""

from __future__ import annotations

import collections
import re
import string

import numpy as np


def classification_metrics(preds, labels) -> dict[str, float]:
    preds, labels = np.asarray(preds), np.asarray(labels)
    if len(labels) == 0:
        return {}
    f1s = []
    for c in np.union1d(np.unique(labels), np.unique(preds)):
        tp = np.sum((preds == c) & (labels == c))
        fp = np.sum((preds == c) & (labels != c))
        fn = np.sum((preds != c) & (labels == c))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(preds == labels)), "macro_f1": float(np.mean(f1s))}


def regression_metrics(preds, labels) -> dict[str, float]:
    preds, labels = np.asarray(preds, dtype=float), np.asarray(labels, dtype=float)
    if len(labels) < 2 or preds.std() == 0 or labels.std() == 0:
        pearson = 0.0
    else:
        pearson = float(np.corrcoef(preds, labels)[0, 1])
    return {"pearson": pearson, "mse": float(np.mean((preds - labels) ** 2))}


def _normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(pred: str, gold: str) -> float:
    p, g = _normalize_answer(pred).split(), _normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(preds: list[str], golds: list[list[str]]) -> dict[str, float]:
    """SQuAD v2 exact match and F1 (an empty gold list means unanswerable: the right answer is "")."""
    ems, f1s = [], []
    for pred, answers in zip(preds, golds):
        answers = answers or [""]
        ems.append(max(float(_normalize_answer(pred) == _normalize_answer(a)) for a in answers))
        f1s.append(max(_token_f1(pred, a) for a in answers))
    return {"exact_match": 100 * float(np.mean(ems)) if ems else 0.0, "f1": 100 * float(np.mean(f1s)) if f1s else 0.0}


PRIMARY_METRIC = {"text-classification": "accuracy", "regression": "pearson", "extractive-qa": "f1"}
