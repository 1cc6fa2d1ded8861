"""The training recipe behind an embedding, and whether a target was tuned like its sources.

Two embeddings of one method live in the same space (the signature checks that), but their
similarity only predicts transfer when both tasks were tuned the same way: a target tuned for 10
steps, or on all of its rows, sits elsewhere than the registry's 100-step, 1,000-row entries
(measured: `benchmarks/results/recipe_mismatch.json`). Every checkpoint that `tune` writes records
its recipe (`TaskEmbedding.extra["recipe"]`, from `TuningConfig.recipe`); this module compares
the target's with the sources', words the warning that `AutoSourceSelector.rank` attaches to a
`Ranking` (or raises with `strict=True`), and tunes a target from raw data with the registry's
own recipe (`targets.target_from_data`, what `taskemb-hub rank --data` runs, builds on it).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Iterable

from ..errors import IncompatibleEmbeddingError

# What changes where tuning ends up. The method, base model, modules and embedding options are
# part of the signature already: entries that differ there are never compared at all.
# The batch counts as the examples behind one optimizer step (`global_batch_size`: per-device batch x gradient
# accumulation x processes): 16 x 4 accumulated is another recipe than 16, 8 x 2 the same one.
RECIPE_KEYS = ("max_steps", "stop_step", "max_train_examples", "global_batch_size", "learning_rate",
               "head_learning_rate", "head_init", "head_pooling", "max_length", "init_seed", "warmup_ratio",
               "weight_decay", "method_kwargs")
# Recorded in a recipe but never compared: the precision of the forward/backward passes (`precision` module) moves
# a vector by a cosine of 1e-4, far less than the recipe keys do, and a target tuned in bf16 where the hardware allows
# must rank against fp32 sources without a warning; `registry_recipe` leaves it out, so a target picks its own.
NOT_COMPARED = ("mixed_precision",)
# The packaged registry's recipe: what a target gets when the registry's entries record none.
DEFAULT_RECIPE = {"max_steps": 100, "max_train_examples": 1000, "head_pooling": "mean"}
TARGET_EVAL_EXAMPLES = 300  # held-out rows scored to tell whether a target learned its task


class RecipeMismatchError(IncompatibleEmbeddingError):
    """`rank(..., strict=True)`: the target was not tuned with the sources' recipe (or records none)."""


def recipe_of(embedding) -> dict[str, Any] | None:
    """The recipe an embedding records (`extra["recipe"]`), or None for an adapter tuned elsewhere."""
    recipe = (embedding.extra or {}).get("recipe")
    return recipe if isinstance(recipe, dict) else None


def _normalised(recipe: dict[str, Any], method: str) -> dict[str, Any]:
    """The recipe's keys with the defaults they stand for filled in (None learning rate = the method's)."""
    from ..methods import get_method

    out = {k: recipe.get(k) for k in RECIPE_KEYS}
    if out["learning_rate"] is None:
        try:
            out["learning_rate"] = get_method(recipe.get("method") or method).default_learning_rate
        except Exception:  # noqa: BLE001 - an unknown method name: leave it unresolved
            pass
    out["stop_step"] = out["stop_step"] or out["max_steps"]
    if out["global_batch_size"] is None:  # recorded before the global batch was: one process, no accumulation
        out["global_batch_size"] = recipe.get("batch_size")
    out["method_kwargs"] = out["method_kwargs"] or {}
    return out


def _rows_differ(target_cap, target_rows, source_cap) -> bool:
    """Whether the sources' row cap would have given the target another number of training rows."""
    if target_cap == source_cap:
        return False
    if target_rows is None:
        return True
    if target_cap is not None and target_rows >= target_cap:  # capped: the data may hold more rows
        return True
    return source_cap is not None and source_cap < target_rows  # all its rows: would the sources' cap cut them?


def recipe_differences(target_recipe: dict[str, Any], source_recipe: dict[str, Any], *, method: str = "",
                       target_rows: int | None = None) -> dict[str, tuple[Any, Any]]:
    """Recipe fields that differ: name -> (target's value, sources' value).

    Args:
        target_recipe, source_recipe: recipes as `TuningConfig.recipe` writes them.
        method: the PEFT method, to resolve a learning rate left at the method's default.
        target_rows: the target's training rows (`TaskEmbedding.train_size`): a target whose data
            holds fewer rows than the sources' cap was tuned on the same rows the cap allows.

    Example:
        ```python
        >>> recipe_differences({"max_steps": 10, "stop_step": 10}, {"max_steps": 100, "stop_step": 100})
        {'max_steps': (10, 100), 'stop_step': (10, 100)}
        ```
    """
    t, s = _normalised(target_recipe, method), _normalised(source_recipe, method)
    diff = {}
    for key in RECIPE_KEYS:
        if key == "max_train_examples":
            if _rows_differ(t[key], target_rows, s[key]):
                diff[key] = (t[key], s[key])
        elif t[key] != s[key]:
            diff[key] = (t[key], s[key])
    return diff


def describe_recipe(recipe: dict[str, Any], rows: int | None = None) -> str:
    """`100 of 100 steps on 1,000 rows, mean-pooling head` — the gist of a recipe."""
    steps = f"{recipe.get('stop_step') or recipe.get('max_steps')} of {recipe.get('max_steps')} steps"
    cap = recipe.get("max_train_examples")
    on = f"{rows:,} rows" if rows is not None else ("all rows" if cap is None else f"up to {cap:,} rows")
    return f"{steps} on {on}, {recipe.get('head_pooling', 'cls')}-pooling head"


def _value(v) -> str:
    return "all" if v is None else json.dumps(v) if isinstance(v, dict) else str(v)


def registry_recipe(entries: Iterable, method: str | None = None) -> dict[str, Any] | None:
    """The recipe most of `entries` (`RegistryEntry` objects) record, among those of `method` if given, without the
    keys that are recorded but not compared (`NOT_COMPARED`): entries tuned in bf16 and fp32 count as one recipe."""
    counts = Counter(json.dumps({k: v for k, v in recipe_of(e.embedding).items() if k not in NOT_COMPARED},
                                sort_keys=True) for e in entries
                     if recipe_of(e.embedding) and (method is None or e.embedding.method == method))
    return json.loads(counts.most_common(1)[0][0]) if counts else None


def recipe_warnings(target, sources: list, counts: list[int] | None = None) -> tuple[list[str], bool]:
    """Warnings about how `target` and the compatible `sources` (TaskEmbeddings) were tuned.

    Args:
        target: the target embedding.
        sources: the compatible sources, or one source per distinct (recipe, method) with `counts`.
        counts: how many sources each of `sources` stands for (a large registry passes one
            representative per recipe instead of a million entries).

    Returns:
        (warnings, mismatch): `mismatch` is True when the target's recipe differs from the
        sources' or cannot be checked (what `strict` refuses).
    """
    counts = list(counts) if counts is not None else [1] * len(sources)
    weight = {id(s): c for s, c in zip(sources, counts)}
    known = [s for s, c in zip(sources, counts) if c and recipe_of(s)]
    if not known:
        return [], False  # nothing recorded on either side of the comparison: nothing to check against
    n_known, n_sources = sum(weight[id(s)] for s in known), sum(counts)
    counts = Counter()
    for s in known:
        counts[json.dumps(_normalised(recipe_of(s), s.method), sort_keys=True)] += weight[id(s)]
    common = max(known, key=lambda s: counts[json.dumps(_normalised(recipe_of(s), s.method), sort_keys=True)])
    source_recipe = recipe_of(common)
    warnings, mismatch = [], False
    fix = ("Tune the target with the sources' recipe (`taskemb-hub rank --data <file>` does that for you; in Python, "
           "`taskemb_hub.tuning.target_from_data`), or pass --strict / strict=True to refuse such rankings.")
    theirs = f"the {n_known} sources were tuned {describe_recipe(source_recipe)}"
    target_recipe = recipe_of(target)
    if target_recipe is None:
        mismatch = True
        warnings.append(f"Target {target.task!r} records no training recipe (an adapter tuned outside taskemb-hub?), "
                        f"so its comparability cannot be checked: {theirs}. {fix}")
    else:
        differ = [s for s in known if recipe_differences(target_recipe, recipe_of(s), method=s.method,
                                                         target_rows=target.train_size)]
        if differ:
            n_differ = sum(weight[id(s)] for s in differ)
            mismatch = True
            diff = recipe_differences(target_recipe, source_recipe, method=target.method, target_rows=target.train_size)
            fields = ", ".join(f"{k} {_value(a)} vs {_value(b)}" for k, a, b in ((k, *v) for k, v in diff.items()))
            warnings.append(f"Recipe mismatch: target {target.task!r} was tuned "
                            f"{describe_recipe(target_recipe, target.train_size)}; {theirs}"
                            + (f" ({fields})" if fields else "")
                            + (f"; {n_differ} of {n_known} sources differ from the target" if n_differ < n_known else "")
                            + ". Similarities across recipes rank sources less well (benchmarks/RESULTS.md). " + fix)
    if len(counts) > 1:
        warnings.append(f"The {n_known} sources were tuned with {len(counts)} different recipes; their scores are "
                        "not on one scale. Rank against entries of one recipe.")
    if n_known < n_sources:
        warnings.append(f"{n_sources - n_known} of {n_sources} sources record no training recipe; their "
                        "comparability with the target cannot be checked.")
    return warnings, mismatch


# ---- did the target learn its task? -----------------------------------------------------------
def chance_level(task, rows: list[dict]) -> dict[str, Any] | None:
    """What a model that learned nothing scores on `rows`: the primary metric of the majority class (accuracy),
    of a constant (Pearson 0) or of always answering "no answer" (SQuAD F1); with the noise margin of `rows`.

    Returns:
        `{"metric", "value", "margin", "rows"}`, or None without rows.
    """
    from ..data import CLASSIFICATION, EXTRACTIVE_QA

    n = len(rows)
    if n < MIN_CHANCE_ROWS:
        return None  # too few held-out rows to tell learning from chance
    if task.task_type == CLASSIFICATION:
        share = Counter(r["label"] for r in rows).most_common(1)[0][1] / n
        if share >= 1.0:
            return None  # one class only: a perfect model and a constant one score alike
        return {"metric": "accuracy", "value": share, "margin": 2 * math.sqrt(share * (1 - share) / n) + 1e-9, "rows": n}
    if task.task_type == EXTRACTIVE_QA:
        share = sum(not r["answers"]["text"] for r in rows) / n
        return {"metric": "f1", "value": 100 * share, "margin": 100 * 2 * math.sqrt(0.25 / n), "rows": n}
    return {"metric": "pearson", "value": 0.0, "margin": 2 / math.sqrt(n), "rows": n}


MIN_CHANCE_ROWS = 10  # below this the held-out rows cannot tell learning from chance


def learning_warning(target) -> str | None:
    """A warning when the target's in-task metric is within noise of chance (`extra["chance"]`), else None."""
    chance = (target.extra or {}).get("chance")
    if not chance or chance.get("metric") not in (target.metrics or {}):
        return None
    score = target.metrics[chance["metric"]]
    if score > chance["value"] + chance["margin"]:
        return None
    return (f"Target {target.task!r} barely learned its task: {chance['metric']} {score:.3f} on {chance['rows']} "
            f"held-out rows, where a model that learned nothing scores {chance['value']:.3f} (± {chance['margin']:.3f}). "
            "Its embedding may say little about the task: check the text and label columns, or add rows.")


# ---- a target from raw data, tuned with the registry's recipe -----------------------------------
def batch_settings(recipe: dict[str, Any], processes: int = 1) -> dict[str, int]:
    """`batch_size` and `gradient_accumulation_steps` that give `processes` processes the recipe's global batch.

    Args:
        recipe: a recorded recipe (one without `global_batch_size` was tuned on one process without
            accumulation: its `batch_size` is the global batch).
        processes: processes the new run is spread over.

    Returns:
        The two `TuningConfig` fields: the recipe's per-device batch when it divides the global batch,
        else the global batch split over the processes in one micro-batch.

    Raises:
        TaskEmbHubError: the global batch cannot be split over `processes`.
    """
    from ..errors import TaskEmbHubError

    batch = int(recipe.get("batch_size") or 16)
    total = int(recipe.get("global_batch_size") or batch)
    if total % (batch * processes) == 0:
        return {"batch_size": batch, "gradient_accumulation_steps": total // (batch * processes)}
    if total % processes == 0:
        return {"batch_size": total // processes, "gradient_accumulation_steps": 1}
    raise TaskEmbHubError(f"The sources' global batch of {total} examples cannot be split over {processes} processes. "
                          "Run on a number of processes that divides it.")


def process_count() -> int:
    """The processes a run started now is spread over: Accelerate's, once its state is set up, else the
    launcher's `WORLD_SIZE` (`accelerate launch` and `torchrun` set it in every process), else 1."""
    import os

    try:
        from accelerate import PartialState

        if PartialState._shared_state:  # set up already (an Accelerator exists): its count is the run's
            return int(PartialState().num_processes)
    except Exception:  # noqa: BLE001 - no accelerate state to read: the launcher's count
        pass
    try:
        return max(1, int(os.environ.get("WORLD_SIZE") or 1))
    except ValueError:
        return 1
