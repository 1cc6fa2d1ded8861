"""`tune` against what users actually do: accumulate gradients or spread a run over processes, run it bare or
as the README says, press Ctrl-C and run it again."""

import json

import pytest
import torch

from taskemb_hub import TuningConfig, tune
from taskemb_hub.recipe import (DEFAULT_RECIPE, RecipeMismatchError, batch_settings, recipe_differences,
                                target_from_data)
from taskemb_hub.registries.local import LocalRegistry
from taskemb_hub.selector import AutoSourceSelector

from test_recipe import REGISTRY_RECIPE, emb


# ---- the global batch ------------------------------------------------------------------------------------
def test_the_recipe_records_the_examples_behind_each_optimizer_step():
    assert TuningConfig(batch_size=16).recipe(100)["global_batch_size"] == 16
    assert TuningConfig(batch_size=16, gradient_accumulation_steps=4).recipe(100)["global_batch_size"] == 64
    assert TuningConfig(batch_size=8, gradient_accumulation_steps=2).recipe(100, processes=3)["global_batch_size"] == 48


def test_a_target_that_saw_4x_the_examples_per_step_is_a_mismatch_even_strict():
    accumulated = TuningConfig(method="bitfit", max_steps=100, max_train_examples=1000,
                               gradient_accumulation_steps=4).recipe(100)
    assert recipe_differences(accumulated, REGISTRY_RECIPE, method="bitfit") == {"global_batch_size": (64, 16)}
    four_processes = TuningConfig(method="bitfit", max_steps=100, max_train_examples=1000).recipe(100, processes=4)
    assert recipe_differences(four_processes, REGISTRY_RECIPE, method="bitfit") == {"global_batch_size": (64, 16)}
    selector = AutoSourceSelector.from_embeddings([emb("a", [1.0, 0.1, 0.0]), emb("b", [0.0, 0.2, 1.0])])
    with pytest.raises(RecipeMismatchError, match="global_batch_size 64 vs 16"):
        selector.rank(emb("t", [1.0, 0.0, 0.0], recipe=accumulated), strict=True)


def test_the_same_global_batch_split_another_way_and_old_recipes_match():
    split = TuningConfig(method="bitfit", max_steps=100, max_train_examples=1000, batch_size=8,
                         gradient_accumulation_steps=2).recipe(100)
    assert recipe_differences(split, REGISTRY_RECIPE, method="bitfit") == {}
    old = {k: v for k, v in REGISTRY_RECIPE.items() if k not in ("global_batch_size", "gradient_accumulation_steps")}
    assert recipe_differences(REGISTRY_RECIPE, old, method="bitfit") == {}  # recorded before: batch_size is global
    assert batch_settings(old) == {"batch_size": 16, "gradient_accumulation_steps": 1}
    assert batch_settings({"batch_size": 16, "global_batch_size": 64}) == {"batch_size": 16, "gradient_accumulation_steps": 4}
    assert batch_settings({"batch_size": 16, "global_batch_size": 24}) == {"batch_size": 24, "gradient_accumulation_steps": 1}


def test_rank_from_data_tunes_the_target_with_the_registrys_accumulation(tiny_bert, sentiment_task, tmp_path):
    """`registry build` with gradient_accumulation_steps: 2 -> `rank --data` accumulates 2 micro-batches too."""
    registry = LocalRegistry(tmp_path / "reg", create=True)
    recipe = TuningConfig(base_model=tiny_bert, max_steps=3, max_train_examples=40, batch_size=4,
                          gradient_accumulation_steps=2, eval_examples=0)
    for name in ("s1", "s2"):
        sentiment_task.name = name
        registry.add(tune(sentiment_task, recipe, None, progress=False)[-1].embedding, name=name)
    sentiment_task.name = "target"
    selector = AutoSourceSelector.from_local(registry.path)
    target = target_from_data(sentiment_task, selector, progress=False, base_model=tiny_bert)
    assert target.extra["recipe"]["gradient_accumulation_steps"] == 2 and target.extra["recipe"]["global_batch_size"] == 8
    assert not any("Recipe" in w for w in selector.rank(target, strict=True).warnings)
