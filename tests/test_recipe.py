"""A target is ranked against sources tuned the same way, or the ranking says it was not."""

import json

import pytest
import torch

from taskemb_hub import TaskEmbedding, TuningConfig, tune
from taskemb_hub.cli import main
from taskemb_hub.tuning.recipe import (RecipeMismatchError, learning_warning, recipe_differences, recipe_warnings)
from taskemb_hub.tuning.targets import target_from_data
from taskemb_hub.registries.local import LocalRegistry
from taskemb_hub.ranking.selector import AutoSourceSelector

from conftest import DATA_DIR, needs_data

REGISTRY_RECIPE = TuningConfig(method="bitfit", max_steps=100, max_train_examples=1000).recipe(100)


def emb(task, vector, recipe=REGISTRY_RECIPE, train_size=1000, step=100):
    extra = {"recipe": recipe} if recipe is not None else {}
    return TaskEmbedding(vector=torch.tensor(vector), task=task, base_model="tiny", method="bitfit",
                         signature={"method": "bitfit", "dim": len(vector)}, step=step, train_size=train_size,
                         extra=extra)


@pytest.fixture
def selector():
    return AutoSourceSelector.from_embeddings([emb("a", [1.0, 0.1, 0.0]), emb("b", [0.5, 0.5, 0.0]),
                                              emb("c", [0.0, 0.2, 1.0])])


def test_a_target_tuned_with_the_sources_recipe_ranks_without_warnings(selector):
    ranking = selector.rank(emb("t", [1.0, 0.0, 0.0]))
    assert ranking.warnings == [] and "Warning" not in str(ranking)
    assert ranking.to_dict()["warnings"] == []


def test_a_target_tuned_for_fewer_steps_on_all_rows_is_flagged(selector):
    ten_steps = TuningConfig(method="bitfit", max_steps=10, max_train_examples=None).recipe(10)  # all rows
    ranking = selector.rank(emb("t", [1.0, 0.0, 0.0], recipe=ten_steps, train_size=8530, step=10))
    assert ranking.names == ["a", "b", "c"], "the ranking is still given"
    [warning] = ranking.warnings
    assert warning.startswith("Recipe mismatch: target 't' was tuned 10 of 10 steps on 8,530 rows")
    assert "the 3 sources were tuned 100 of 100 steps on up to 1,000 rows" in warning
    assert "max_steps 10 vs 100" in warning and "max_train_examples all vs 1000" in warning
    assert "taskemb-hub rank --data" in warning
    assert "Warning: Recipe mismatch" in str(ranking)
    assert ranking.to_dict()["warnings"] == [warning]


def test_strict_refuses_a_recipe_mismatch(selector):
    longer = TuningConfig(method="bitfit", max_steps=200, max_train_examples=1000).recipe(200)
    with pytest.raises(RecipeMismatchError, match=r"max_steps 200 vs 100.*--strict"):
        selector.rank(emb("t", [1.0, 0.0, 0.0], recipe=longer, step=200), strict=True)
    assert selector.rank(emb("t", [1.0, 0.0, 0.0]), strict=True).warnings == []


def test_a_small_target_under_the_row_cap_matches_the_recipe():
    """A target with 400 rows was tuned on all 400 under the sources' 1,000-row cap, as they would have been."""
    all_rows = TuningConfig(method="bitfit", max_steps=100, max_train_examples=None).recipe(100)
    assert recipe_differences(all_rows, REGISTRY_RECIPE, method="bitfit", target_rows=400) == {}
    assert recipe_differences(all_rows, REGISTRY_RECIPE, method="bitfit", target_rows=5000) == {
        "max_train_examples": (None, 1000)}
    explicit_default_lr = TuningConfig(method="bitfit", max_steps=100, max_train_examples=1000, learning_rate=None)
    assert recipe_differences(explicit_default_lr.recipe(100), REGISTRY_RECIPE, method="bitfit", target_rows=1000) == {}


def test_a_target_without_a_recipe_is_flagged_and_strict_refuses_it(selector):
    foreign = emb("peft-adapter", [1.0, 0.0, 0.0], recipe=None)
    [warning] = selector.rank(foreign).warnings
    assert "records no training recipe" in warning
    with pytest.raises(RecipeMismatchError):
        selector.rank(foreign, strict=True)
    # nothing recorded on either side: nothing to compare, nothing to say
    bare = AutoSourceSelector.from_embeddings([emb("a", [1.0, 0.0, 0.0], recipe=None), emb("b", [0.0, 1.0, 0.0], recipe=None)])
    assert bare.rank(foreign).warnings == []


def test_sources_of_several_recipes_are_flagged():
    mixed = [emb("a", [1.0, 0.0, 0.0]), emb("b", [0.0, 1.0, 0.0], recipe=TuningConfig(max_steps=50).recipe(50))]
    warnings, mismatch = recipe_warnings(emb("t", [1.0, 1.0, 0.0]), mixed)
    assert mismatch and any("2 different recipes" in w for w in warnings)


def test_a_target_at_chance_is_flagged_and_one_that_learned_is_not():
    chance = {"metric": "accuracy", "value": 0.5, "margin": 0.058, "rows": 300}
    at_chance = emb("t", [1.0, 0.0, 0.0])
    at_chance.metrics, at_chance.extra["chance"] = {"accuracy": 0.53}, chance
    assert "barely learned its task: accuracy 0.530 on 300 held-out rows" in learning_warning(at_chance)
    learned = emb("t", [1.0, 0.0, 0.0])
    learned.metrics, learned.extra["chance"] = {"accuracy": 0.81}, chance
    assert learning_warning(learned) is None
    selector = AutoSourceSelector.from_embeddings([emb("a", [1.0, 0.1, 0.0]), emb("b", [0.0, 1.0, 0.0])])
    assert any("barely learned" in w for w in selector.rank(at_chance).warnings)


def test_rank_from_data_always_uses_the_registrys_recipe(tiny_bert, sentiment_task, tmp_path):
    """Sources tuned 4 steps on 40 rows: the target from data is tuned exactly so, whatever the defaults say."""
    registry = LocalRegistry(tmp_path / "reg", create=True)
    recipe = TuningConfig(method="bitfit", base_model=tiny_bert, max_steps=4, max_train_examples=40, eval_examples=0)
    for name in ("s1", "s2"):
        sentiment_task.name = name
        registry.add(tune(sentiment_task, recipe, None, progress=False)[-1].embedding, name=name)
    sentiment_task.name = "target"
    selector = AutoSourceSelector.from_local(registry.path)
    target = target_from_data(sentiment_task, selector, progress=False, base_model=tiny_bert)
    assert target.step == 4 and target.train_size == 40
    assert recipe_differences(target.extra["recipe"], recipe.recipe(4), method="bitfit", target_rows=40) == {}
    ranking = selector.rank(target, strict=True)
    assert not any("Recipe" in w for w in ranking.warnings)
    # the tiny random model cannot learn the toy task in 4 steps: said, not hidden
    assert target.extra["chance"]["metric"] == "accuracy"
    assert any("barely learned" in w for w in ranking.warnings)


def test_cli_rank_warns_and_strict_exits_2(capsys, tiny_bert, sentiment_task, tmp_path):
    registry = LocalRegistry(tmp_path / "reg", create=True)
    for name in ("s1", "s2"):
        sentiment_task.name = name
        registry.add(tune(sentiment_task, TuningConfig(base_model=tiny_bert, max_steps=4, eval_examples=0), None,
                          progress=False)[-1].embedding, name=name)
    sentiment_task.name = "target"
    tune(sentiment_task, TuningConfig(base_model=tiny_bert, max_steps=2, eval_examples=0), tmp_path / "run", progress=False)

    code = main(["rank", "--target", str(tmp_path / "run" / "step-2"), "--registry", str(registry.path), "--json"])
    out = capsys.readouterr()
    assert code == 0 and "max_steps 2 vs 4" in json.loads(out.out)["warnings"][0]
    assert "warning: Recipe mismatch" in out.err

    code = main(["rank", "--target", str(tmp_path / "run" / "step-2"), "--registry", str(registry.path), "--strict"])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert out.err.startswith("error: Recipe mismatch") and out.err.count("\n") == 1


@needs_data
def test_a_ten_step_target_on_all_rows_is_flagged_against_the_packaged_registry():
    """The issue's case: rotten_tomatoes tuned 10 steps on all its rows, ranked against the 100-step, 1,000-row registry."""
    from taskemb_hub import load_task

    task = load_task(DATA_DIR / "rotten_tomatoes")
    target = tune(task, TuningConfig(max_steps=10, max_train_examples=None, eval_examples=0), None,
                  progress=False)[-1].embedding
    selector = AutoSourceSelector.from_default()
    ranking = selector.rank(target)
    assert any(w.startswith("Recipe mismatch") and "max_steps 10 vs 100" in w and "max_train_examples all vs 1000" in w
               for w in ranking.warnings)
    with pytest.raises(RecipeMismatchError):
        selector.rank(target, strict=True)
