"""Model cards the Hub understands: built with `huggingface_hub.ModelCard` / `ModelCardData`.

An entry's card carries the Hub's own fields (base_model, library_name, datasets, license, tags,
the in-task metric as eval results) and a `taskemb` block (signature, recipe) that the registry
reads. A card the user already wrote is merged, never replaced: their metadata and prose stay,
ours is added. Tags written here are what `from_hub(method=..., base_model=...)` filters on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

TAG = "taskemb-hub"
INDEX_TAG = "taskemb-hub-index"  # selector snapshots and registry indexes: never read as entries
CARD_NAME = "README.md"
_TEMPLATE = Path(__file__).parent / "templates" / "adapter_card.md"
_SECTION_START = "<!-- taskemb-hub:start -->"
_SECTION_END = "<!-- taskemb-hub:end -->"
# An absolute local path inside a metadata value, e.g. peft's own card writes `base_model: /tmp/.../model` and the
# tag `base_model:adapter:/tmp/...` when the base model was loaded from a folder.
LOCAL_PATH = re.compile(r"(^|[\s:=\"'(])(/(?!/)|~/|[A-Za-z]:[\\/](?!/))[^\s\"')]*")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")


def method_tag(method: str) -> str:
    return f"taskemb-method:{method}"


def base_model_tag(base_model: str) -> str:
    return f"taskemb-base:{base_model}"


def public_dataset_id(source: str | None) -> str | None:
    """`source` when it is a Hub dataset id, None when it is a local path (never uploaded)."""
    if not source or source.startswith((".", "/", "~")) or "\\" in source or Path(source).suffix in (
            ".csv", ".tsv", ".json", ".jsonl", ".parquet", ".gz", ".txt") or Path(source).exists():
        return None
    return source if _REPO_ID.match(source) else None


def card_data(embedding, task=None):
    """The `ModelCardData` of an entry: Hub fields plus the `taskemb` block."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = public_dataset_id((getattr(task, "source", None) or embedding.extra.get("source")))
    license_text = ((getattr(task, "info", None) or {}).get("license") or "").lower()
    pipeline = None
    if task is not None and getattr(task, "task_type", None):
        pipeline = "question-answering" if task.task_type == "extractive-qa" else "text-classification"
    metric_name, metric_value = next(iter((embedding.metrics or {}).items()), (None, None))
    eval_results = None
    if metric_name is not None:
        eval_results = [EvalResult(task_type=pipeline or "text-classification", dataset_type=dataset or embedding.task,
                                   dataset_name=embedding.task, metric_type=metric_name, metric_value=float(metric_value))]
    return ModelCardData(
        base_model=embedding.base_model, library_name="peft", datasets=[dataset] if dataset else None,
        license="apache-2.0" if license_text.startswith("apache-2.0") else None, pipeline_tag=pipeline,
        tags=entry_tags(embedding), eval_results=eval_results,
        model_name=f"{embedding.task}-{embedding.method}" if eval_results else None,
        taskemb=taskemb_block(embedding))


def entry_tags(embedding) -> list[str]:
    return [TAG, "task-embedding", "peft", embedding.method, method_tag(embedding.method),
            base_model_tag(embedding.base_model)]


def taskemb_block(embedding) -> dict[str, Any]:
    """What the registry needs to read the entry without opening it."""
    recipe = embedding.extra.get("recipe")
    return {"task": embedding.task, "method": embedding.method, "step": embedding.step,
            "train_size": embedding.train_size, "metrics": dict(embedding.metrics or {}),
            "signature_hash": embedding.signature_hash, "dim": embedding.dim, "recipe": recipe}


def _our_section(embedding) -> str:
    metrics = embedding.metrics or {}
    table = "\n".join(["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in metrics.items()]) \
        if metrics else "_not measured_"
    text = _TEMPLATE.read_text()
    values = {"task": embedding.task, "method": embedding.method, "base_model": embedding.base_model,
              "step": embedding.step, "train_size": embedding.train_size, "dim": embedding.dim,
              "metrics_table": table, "tag": TAG, "signature_hash": embedding.signature_hash}
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", str(value))
    return f"{_SECTION_START}\n{text.strip()}\n{_SECTION_END}"


def build_card(embedding, task=None, existing=None) -> str:
    """The entry's model card text; `existing` (the text of a card someone wrote) is merged, not replaced.

    Their metadata is kept as written (their `model-index` results, widgets, licence, datasets...),
    tags are united, and the fields that describe the embedding (base_model, library_name, our tags,
    the `taskemb` block, our eval result) are ours. Our prose goes in a marked section that a
    re-publish replaces in place, so merging a card we wrote gives the same card back.

    Example:
        ```python
        >>> text = build_card(embedding, existing=Path("runs/mine/step-100/README.md").read_text())
        >>> ModelCard(text).data.tags
        ['my-tag', 'taskemb-hub', ...]
        ```
    """
    ours = card_data(embedding, task).to_dict()
    section = _our_section(embedding)
    if existing is not None and not isinstance(existing, str):  # a ModelCard object
        existing = existing.content
    theirs, body = _split_card(existing) if existing else ({}, "")
    if not theirs and not body.strip():
        return f"---\n{_yaml(ours)}\n---\n\n{section}\n"
    theirs = drop_local_paths(theirs)
    merged = {**ours, **{k: v for k, v in theirs.items() if v not in (None, [], {})}}
    stale = ("taskemb-method:", "taskemb-base:")  # our tags of an earlier publish: ours below are current
    their_tags = [t for t in theirs.get("tags") or [] if isinstance(t, str) and not t.startswith(stale)]
    merged["tags"] = list(dict.fromkeys(their_tags + ours["tags"]))
    for key in ("base_model", "library_name", "taskemb"):  # ours is the truth about the embedding
        if ours.get(key) is not None:
            merged[key] = ours[key]
    if "model-index" in ours:  # our result replaces an older one of ours; theirs stay as written
        ours_names = {m.get("name") for m in ours["model-index"]}
        merged["model-index"] = [m for m in theirs.get("model-index") or []
                                 if not (isinstance(m, dict) and m.get("name") in ours_names)] + ours["model-index"]
    if _SECTION_START in body and _SECTION_END in body:
        head, rest = body.split(_SECTION_START, 1)
        body = head + section + rest.split(_SECTION_END, 1)[1]
    else:
        body = body.rstrip() + "\n\n" + section + "\n"
    return f"---\n{_yaml(merged)}\n---\n{body if body.startswith(chr(10)) else chr(10) + body}"


def _split_card(text: str) -> tuple[dict, str]:
    """(raw YAML metadata, body) of a card's text, as written: not normalised through ModelCardData."""
    import yaml
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    match = REGEX_YAML_BLOCK.search(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(2)) or {}
    except yaml.YAMLError:
        meta = {}
    return (meta if isinstance(meta, dict) else {}), text[match.end():]


def drop_local_paths(value):
    """`value` (card metadata) without the strings that name an existing local path: they never go to the Hub."""
    if isinstance(value, dict):
        return {k: drop_local_paths(v) for k, v in value.items() if not names_local_path(v)}
    if isinstance(value, list):
        return [drop_local_paths(v) for v in value if not names_local_path(v)]
    return value


def names_local_path(value) -> str | None:
    """The local path a string names (an absolute path that exists on this machine), or None."""
    if not isinstance(value, str):
        return None
    for match in LOCAL_PATH.finditer(value):
        token = match.group(0).lstrip(" \t:=\"'(")
        if token and Path(token).expanduser().exists():
            return token
    return None


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).strip()


def write_model_card(folder: str | Path, embedding, task=None, config=None) -> Path:
    """Write (or merge into) `folder/README.md`."""
    path = Path(folder) / CARD_NAME
    existing = path.read_text() if path.is_file() else None
    path.write_text(build_card(embedding, task, existing))
    return path


def read_card_metadata(folder: str | Path) -> dict[str, Any]:
    """The YAML metadata of a folder's README.md, or {} when it has none or it is not valid YAML."""
    import yaml

    path = Path(folder) / CARD_NAME
    if not path.is_file():
        return {}
    text = path.read_text()
    if not text.startswith("---"):
        return {}
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}
