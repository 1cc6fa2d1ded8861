"""A target embedding from raw data, tuned with the recipe of the registry it will be ranked against.

Above `recipe` (which compares recipes) and `training` (which tunes): keeping this here lets `recipe` stay a
leaf that `cards` and `training` import without an import circle.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from ..data import check_trainable
from ..default_registry import DEFAULT_METHOD
from ..methods import EmbeddingOptions
from .recipe import DEFAULT_RECIPE, TARGET_EVAL_EXAMPLES, batch_settings, chance_level, process_count, registry_recipe


def target_from_data(task, selector, *, progress: bool = True, base_model: str | None = None,
                     mixed_precision: str = "auto"):
    """Tune a target checkpoint of `task` with the recipe the registry's entries were tuned with.

    The recipe is the one most entries record (the packaged registry's when none does), whatever
    options the caller has, so the target lands in the sources' space; held-out rows are scored so
    a target that learned nothing is flagged (`extra["chance"]`, see `learning_warning`).

    Args:
        task: a `TaskData`.
        selector: anything with `.entries` (an `AutoSourceSelector`).
        progress: show a progress bar.
        base_model: load the base model from here (a local folder of the registry's base model).
        mixed_precision: `auto` (default: bfloat16 forward/backward where the device does it natively: 1.3-1.5x
            faster from data to embedding, cosine >= 0.9998 to the float32 vector), `bf16` or `no` (float32, as the packaged registry was
            tuned); see `TuningConfig.mixed_precision`. Never taken from the sources: it is not a compared key.

    Returns:
        The target's `TaskEmbedding`.

    Example:
        ```python
        >>> selector = AutoSourceSelector.from_default()
        >>> target = target_from_data(load_task("reviews.csv", text_column="review"), selector)
        >>> selector.rank(target, top_k=5)
        ```
    """
    from .training import TuningConfig, tune  # looked up per call: tests and benchmarks replace `training.tune`

    methods = Counter(e.embedding.method for e in selector.entries)
    method = methods.most_common(1)[0][0] if methods else DEFAULT_METHOD
    recipe = registry_recipe(selector.entries, method) or {"method": method, **DEFAULT_RECIPE}
    fields = {f.name for f in dataclasses.fields(TuningConfig)}
    config = {k: v for k, v in recipe.items() if k in fields}
    if isinstance(config.get("embedding"), dict):
        options = {f.name for f in dataclasses.fields(EmbeddingOptions)}
        config["embedding"] = {k: v for k, v in config["embedding"].items() if k in options}
    if config.get("stop_step") == config.get("max_steps"):
        config.pop("stop_step", None)
    config.update(batch_settings(recipe, process_count()))  # under `accelerate launch`, N processes share it
    if base_model:
        config["base_model"] = base_model
    else:  # the sources' base model, not the packaged default: otherwise nothing would be comparable
        bases = Counter(e.embedding.base_model for e in selector.entries if e.embedding.method == method)
        if bases:
            config["base_model"] = bases.most_common(1)[0][0]
    cfg = TuningConfig(**{**config, "eval_examples": TARGET_EVAL_EXAMPLES, "mixed_precision": mixed_precision})
    check_trainable(task, task.train_rows(cfg.max_train_examples, seed=cfg.seed))  # before loading any model
    embedding = tune(task, cfg, None, progress=progress)[-1].embedding
    chance = chance_level(task, task.eval_rows(cfg.eval_examples))
    if chance:
        embedding.extra["chance"] = chance
    return embedding
