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
_PATH_TAG = re.compile(r"(^|:)(/|~/|[A-Za-z]:[\\/])")  # a tag that ends in an absolute path
# An absolute local path inside a metadata value, e.g. peft's own card writes `base_model: /tmp/.../model` and the
# tag `base_model:adapter:/tmp/...` when the base model was loaded from a folder.
LOCAL_PATH = re.compile(r"(^|[\s:=\"'(])(/(?!/)|~/|[A-Za-z]:[\\/](?!/))[^\s\"')]*")


def method_tag(method: str) -> str:
    return f"taskemb-method:{method}"


def base_model_tag(base_model: str) -> str:
    return f"taskemb-base:{base_model}"


LOCAL_SOURCE_PREFIX = "local:"  # a task `source` that names data on this machine: only its final name is kept
_DATA_FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".gz", ".bz2", ".zip", ".txt", ".arrow")


def public_source(source) -> str | None:
    """The one form of a task's `source` that may leave the machine (a file, card or index pushed or saved).

    A Hub dataset id (valid for `huggingface_hub.utils.validate_repo_id`, not a data file name and not
    an existing local path) is kept as is; anything else names data on this machine and becomes
    `local:<its final folder or file name>`, which no card lists as a dataset. Idempotent.

    Args:
        source: the recorded source (a folder, a file, a Hub id, or an already public value).

    Returns:
        The public form, or None when nothing meaningful is left (empty, `..`).

    Example:
        ```python
        >>> public_source("../shared/data/tasks/rotten_tomatoes"), public_source("glue")
        ('local:rotten_tomatoes', 'glue')
        ```
    """
    if not isinstance(source, str) or not source.strip():
        return None
    source = source.strip()
    if source.startswith(LOCAL_SOURCE_PREFIX):
        source = source[len(LOCAL_SOURCE_PREFIX):]
    elif _is_hub_dataset_id(source):
        return source
    name = re.split(r"[\\/]+", source.rstrip("/\\"))[-1]
    name = re.sub(r"[^\w.-]", "_", name)[:96]  # a name, never a path (nor a newline in a YAML value)
    return f"{LOCAL_SOURCE_PREFIX}{name}" if name.strip(".") else None


def _is_hub_dataset_id(source: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if source.startswith((".", "~")) or source.lower().endswith(_DATA_FILE_SUFFIXES):
        return False
    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    try:
        return not Path(source).expanduser().exists()
    except OSError:  # a name too long for the filesystem is no local path
        return True


def public_dataset_id(source: str | None) -> str | None:
    """`source` when it is a Hub dataset id (see `public_source`), None when it names local data."""
    public = public_source(source)
    return None if public is None or public.startswith(LOCAL_SOURCE_PREFIX) else public


def public_extra(extra: dict) -> dict:
    """`extra` (an embedding's or a checkpoint info's) with every `source` in its public form (`public_source`);
    a source with no public form is left out."""
    out = {}
    for key, value in extra.items():
        if key == "source" and isinstance(value, str):
            value = public_source(value)
            if value is None:
                continue
        out[key] = public_extra(value) if isinstance(value, dict) else value
    return out


def card_data(embedding, task=None):
    """The `ModelCardData` of an entry: Hub fields plus the `taskemb` block."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = card_dataset(embedding, task)
    license_text = ((getattr(task, "info", None) or {}).get("license") or "").lower()
    pipeline = None
    if task is not None and getattr(task, "task_type", None):
        pipeline = "question-answering" if task.task_type == "extractive-qa" else "text-classification"
    metric_name, metric_value = next(iter((embedding.metrics or {}).items()), (None, None))
    eval_results = None
    if metric_name is not None:  # a local task is named `local:<task>`, never as if it were a Hub dataset id
        eval_results = [EvalResult(task_type=pipeline or "text-classification",
                                   dataset_type=dataset or public_source(LOCAL_SOURCE_PREFIX + embedding.task),
                                   dataset_name=embedding.task, metric_type=metric_name, metric_value=float(metric_value))]
    return ModelCardData(
        base_model=embedding.base_model, base_model_relation="adapter", library_name="peft",
        datasets=[dataset] if dataset else None,
        license="apache-2.0" if license_text.startswith("apache-2.0") else None, pipeline_tag=pipeline,
        tags=entry_tags(embedding), eval_results=eval_results,
        model_name=f"{embedding.task}-{embedding.method}" if eval_results else None,
        taskemb=taskemb_block(embedding))


def card_dataset(embedding, task=None) -> str | None:
    """The Hub dataset id the entry was tuned on, or None for local data: a source recorded as local
    (`local:<name>`, decided where the data was read) stays local from any working directory."""
    sources = [getattr(task, "source", None), (embedding.extra or {}).get("source")]
    sources = [str(s) for s in sources if s]
    if not sources or any(s.startswith(LOCAL_SOURCE_PREFIX) for s in sources):
        return None
    return public_dataset_id(sources[0])


def entry_tags(embedding) -> list[str]:
    return [TAG, "task-embedding", "peft", embedding.method, method_tag(embedding.method),
            base_model_tag(embedding.base_model)]


def taskemb_block(embedding) -> dict[str, Any]:
    """What the registry needs to read the entry without opening it."""
    recipe = embedding.extra.get("recipe")
    return {"task": embedding.task, "method": embedding.method, "step": embedding.step,
            "train_size": embedding.train_size, "metrics": dict(embedding.metrics or {}),
            "signature_hash": embedding.signature_hash, "dim": embedding.dim, "recipe": recipe}


def _our_section(embedding, task=None) -> str:
    metrics = embedding.metrics or {}
    table = "\n".join(["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in metrics.items()]) \
        if metrics else "_not measured_"
    dataset = card_dataset(embedding, task)
    recipe = (embedding.extra or {}).get("recipe")
    values = {"task": embedding.task, "method": embedding.method, "base_model": embedding.base_model,
              "step": embedding.step, "train_size": embedding.train_size, "dim": embedding.dim,
              "metrics_table": table, "tag": TAG, "signature_hash": embedding.signature_hash,
              "dataset": f"[{dataset}](https://huggingface.co/datasets/{dataset})" if dataset else "local data, not on the Hub",
              "recipe": _recipe_text(recipe, embedding.train_size)}
    text = _TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", str(value))
    return f"{_SECTION_START}\n{text.strip()}\n{_SECTION_END}"


def _recipe_text(recipe, rows: int | None) -> str:
    from .tuning.recipe import describe_recipe

    if not isinstance(recipe, dict):
        return "not recorded (tuned outside taskemb-hub)"
    details = [f"{label} {recipe[key]}" for key, label in (("batch_size", "batch"), ("learning_rate", "learning rate"),
                                                              ("max_length", "max length")) if recipe.get(key) is not None]
    return ", ".join([describe_recipe(recipe, rows)] + details) + " (all of it in the card's `taskemb.recipe` metadata)"


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
    section = _our_section(embedding, task)
    if existing is not None and not isinstance(existing, str):  # a ModelCard object
        existing = existing.content
    theirs, body = _split_card(existing) if existing else ({}, "")
    body, template = drop_template_prose(body)
    if not theirs and not body.strip():
        return f"---\n{_yaml(ours)}\n---\n\n{section}\n"
    theirs = drop_local_paths(theirs)
    merged = {**ours, **{k: v for k, v in theirs.items() if v not in (None, [], {})}}
    stale = ("taskemb-method:", "taskemb-base:")  # our tags of an earlier publish: ours below are current
    their_tags = [t for t in theirs.get("tags") or [] if isinstance(t, str) and not t.startswith(stale)
                  and not _PATH_TAG.search(t)]  # peft's `base_model:adapter:/path`, from any machine
    merged["tags"] = list(dict.fromkeys(their_tags + ours["tags"]))
    for key in ("base_model", "base_model_relation", "library_name", "taskemb"):  # ours: the truth about the entry
        if ours.get(key) is not None:
            merged[key] = ours[key]
    if "model-index" in ours:  # our result replaces an older one of ours; theirs stay as written
        ours_names = {m.get("name") for m in ours["model-index"]}
        merged["model-index"] = [m for m in theirs.get("model-index") or []
                                 if not (isinstance(m, dict) and m.get("name") in ours_names)] + ours["model-index"]
    if _SECTION_START in body and _SECTION_END in body:
        head, rest = body.split(_SECTION_START, 1)
        body = head + section + rest.split(_SECTION_END, 1)[1]
    elif template:  # what is left of an empty template (peft's version line) goes below our card
        body = "\n" + section + "\n" + (f"\n{body.strip()}\n" if body.strip() else "")
    else:
        body = body.rstrip() + "\n\n" + section + "\n"
    return f"---\n{_yaml(merged)}\n---\n{body if body.startswith(chr(10)) else chr(10) + body}"


PLACEHOLDER = "[More Information Needed]"
_PEFT_LINES = re.compile(r"^(### Framework versions|- PEFT [\w.+-]+)$")  # what peft appends to any card it saves


_GENERATED_KEYS = ("datasets", "license", "model-index", "pipeline_tag")  # what card_data writes


def merge_cards(base: str | None, over: str | None) -> str | None:
    """One card from the repo's (`base`) and the adapter folder's (`over`): the folder's wins where it says
    something. Its metadata values replace the repo's (tags are united); its prose replaces the repo's
    when it has any besides the taskemb-hub section and peft's empty template (a folder card written by
    `tune` has none, so a card written on the Hub stays).

    Args:
        base: the repo's card text, or None.
        over: the folder's README.md text, or None.

    Returns:
        The merged card text (None when both are None), for `build_card(existing=...)`.
    """
    if not base or not over:
        return over or base
    base_meta, base_body = _split_card(base)
    over_meta, over_body = _split_card(over)
    # Keys `tune` writes into every folder card fill in what the repo's card lacks but never undo an edit made
    # on the Hub (a `datasets:` corrected there would come back at each publish); the rest of the folder's win.
    meta = {**base_meta, **{k: v for k, v in over_meta.items() if v not in (None, [], {})
                            and not (k in _GENERATED_KEYS and k in base_meta)}}
    tags = [t for t in (base_meta.get("tags") or []) + (over_meta.get("tags") or []) if isinstance(t, str)]
    if tags:
        meta["tags"] = list(dict.fromkeys(tags))
    body = over_body if _own_prose(over_body).strip() else base_body
    return f"---\n{_yaml(meta)}\n---\n{body}" if meta else body


def _own_prose(body: str) -> str:
    """What someone wrote in a card's body: not the taskemb-hub section, not peft's (empty) template."""
    if _SECTION_START in body and _SECTION_END in body:
        head, rest = body.split(_SECTION_START, 1)
        body = head + rest.split(_SECTION_END, 1)[1]
    return drop_template_prose(body)[0] if PLACEHOLDER in body else "\n".join(
        line for line in body.splitlines() if not _PEFT_LINES.match(line.strip()))


def drop_template_prose(body: str) -> tuple[str, bool]:
    """(`body` without the unfilled parts of the Hub's card template, whether it held any).

    `peft`'s `save_pretrained` writes the Hub's template (39 x "[More Information Needed]", HTML hints,
    boilerplate sentences) into every adapter folder. Its placeholder lines, hints and boilerplate go,
    and so does every heading left with nothing under it; what someone wrote into it stays.
    """
    if PLACEHOLDER not in body:
        return body, False
    boilerplate, headings = _template_lines()
    text = re.sub(r"<!--.*?-->", "", body, flags=re.S)
    kept = [line for line in text.splitlines()
            if PLACEHOLDER not in line and line.strip() not in boilerplate and not _PEFT_LINES.match(line.strip())]
    return _drop_empty_headings(kept, headings), True


def _template_lines() -> tuple[set[str], set[str]]:
    """(the non-heading lines of the Hub's own model card template and its placeholder title, its headings)."""
    from huggingface_hub import ModelCard, ModelCardData

    text = re.sub(r"<!--.*?-->", "", ModelCard.from_template(ModelCardData()).content, flags=re.S)
    lines = {line.strip() for line in _split_card(text)[1].splitlines() if line.strip()}
    headings = {line for line in lines if line.startswith("#")}
    return (lines - headings) | {"# Model Card for Model ID"}, headings


def _drop_empty_headings(lines: list[str], template_headings: set[str]) -> str:
    """`lines` without the headings that have no text under them. A heading of the template needs text of
    its own or a kept template sub-heading (peft appends `### Framework versions` under the last one)."""
    fenced, levels = False, []
    for line in lines:  # a `# comment` inside a code block is no heading
        fenced ^= line.lstrip().startswith("```")
        levels.append(0 if fenced or not line.startswith("#") else len(line) - len(line.lstrip("#")))
    out: list[tuple[str, int]] = []
    for line, level in zip(reversed(lines), reversed(levels)):  # bottom-up: a heading stays when text follows it
        if level:
            below = []
            for other, other_level in reversed(out):
                if other_level and other_level <= level:
                    break
                if line.strip() in template_headings and other_level and other.strip() not in template_headings:
                    break  # a section someone added under an empty template heading does not keep it
                below.append(other)
            if not any(b.strip() for b in below):
                continue
        out.append((line, level))
    out = [line for line, _ in out]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(reversed(out))).strip("\n") + "\n"


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
        token = match.group(0).lstrip(" \t:=\"'(").rstrip(",;]}")
        if len(token) > 1 and _exists(token):
            return token
    return None


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, RuntimeError):  # a name too long, a `~user` of no such user
        return False


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).strip()


def write_model_card(folder: str | Path, embedding, task=None) -> Path:
    """Write (or merge into) `folder/README.md`."""
    path = Path(folder) / CARD_NAME
    existing = path.read_text() if path.is_file() else None
    path.write_text(build_card(embedding, task, existing))
    return path
