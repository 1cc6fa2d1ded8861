"""Model cards: the YAML metadata that lets the Hub registry find and read an adapter entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TAG = "taskemb-hub"
CARD_NAME = "README.md"
_TEMPLATE = Path(__file__).parent / "templates" / "adapter_card.md"


def card_metadata(embedding, task=None) -> dict[str, Any]:
    """The YAML block of an entry's card: Hub fields plus a `taskemb` section."""
    meta: dict[str, Any] = {
        "library_name": "peft",
        "base_model": embedding.base_model,
        "tags": [TAG, "task-embedding", "peft", embedding.method],
        "taskemb": {"task": embedding.task, "method": embedding.method, "step": embedding.step,
                    "train_size": embedding.train_size, "metrics": embedding.metrics,
                    "signature_hash": embedding.signature_hash, "dim": embedding.dim},
    }
    info = getattr(task, "info", None) or {}
    if info.get("license", "").lower().startswith("apache-2.0"):
        meta["license"] = "apache-2.0"
    if task is not None and task.task_type:
        meta["pipeline_tag"] = "question-answering" if task.task_type == "extractive-qa" else "text-classification"
    return meta


def render_card(embedding, task=None) -> str:
    metrics = embedding.metrics or {}
    table = "\n".join(["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in metrics.items()]) \
        if metrics else "_not measured_"
    text = _TEMPLATE.read_text()
    values = {"card_data": yaml.safe_dump(card_metadata(embedding, task), sort_keys=False).strip(),
              "task": embedding.task, "method": embedding.method, "base_model": embedding.base_model,
              "step": embedding.step, "train_size": embedding.train_size, "dim": embedding.dim,
              "metrics_table": table, "tag": TAG, "signature_hash": embedding.signature_hash}
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", str(value))
    return text


def write_model_card(folder: str | Path, embedding, task=None, config=None) -> Path:
    path = Path(folder) / CARD_NAME
    path.write_text(render_card(embedding, task))
    return path


def read_card_metadata(folder: str | Path) -> dict[str, Any]:
    """The YAML metadata of a folder's README.md, or {} when it has none."""
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        return {}
    text = path.read_text()
    if not text.startswith("---"):
        return {}
    try:
        return yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return {}
