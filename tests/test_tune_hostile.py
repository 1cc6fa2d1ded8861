"""`tune` against what users actually do: accumulate gradients or spread a run over processes, run it bare or
as the README says, press Ctrl-C and run it again."""

import json

import pytest
import torch

from taskemb_hub import TuningConfig, tune
from taskemb_hub.tuning.recipe import (DEFAULT_RECIPE, RecipeMismatchError, batch_settings, recipe_differences)
from taskemb_hub.tuning.targets import target_from_data
from taskemb_hub.registries.local import LocalRegistry
from taskemb_hub.ranking.selector import AutoSourceSelector

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


# ---- tune's defaults are the packaged recipe -------------------------------------------------------------
def _packaged_sources():
    return [e.embedding for e in AutoSourceSelector.from_default().entries]


def test_a_bare_tuning_config_is_the_packaged_registrys_recipe():
    from taskemb_hub.tuning.recipe import registry_recipe

    packaged = registry_recipe(AutoSourceSelector.from_default().entries)
    assert recipe_differences(TuningConfig().recipe(100), packaged, method="bitfit", target_rows=5000) == {}
    assert {k: getattr(TuningConfig(), k) for k in DEFAULT_RECIPE} == DEFAULT_RECIPE


def test_step_100_of_a_200_step_run_is_not_the_registrys_recipe():
    """Its warm-up lasted 12 steps, not 6, and its learning rate is half the peak at step 100, not 0."""
    longer = TuningConfig(max_steps=200).recipe(100)
    assert recipe_differences(longer, TuningConfig().recipe(100), method="bitfit") == {"max_steps": (200, 100)}


def test_tune_plans_the_registrys_run_first():
    from taskemb_hub.tuning.training import plan_runs

    assert plan_runs([]) == [(100, [])]
    assert plan_runs([50, 100, 200]) == [(100, [50, 100]), (200, [200])]
    assert plan_runs([500]) == [(500, [500])] and plan_runs([2, 4]) == [(4, [2, 4])]  # no step 100 asked for
    assert plan_runs([50, 100]) == [(100, [50, 100])]
    assert plan_runs([50, 200], max_steps=200) == [(200, [50, 200])]


def _readme_tune_command() -> list[str]:
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return shlex.split(re.search(r"^taskemb-hub tune (.*)$", readme, re.M).group(1))


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def test_the_readme_tune_commands_step_100_ranks_against_the_packaged_recipe_without_warning(
        capsys, tiny_bert, tmp_path):
    """The README's `tune ... --save-steps 50,100,200`, then `rank --target .../step-100`: the tiny BERT stands in for
    the MiniLM (recipes are compared whatever the base model; a base model mismatch would skip every source)."""
    from taskemb_hub import TaskEmbedding
    from taskemb_hub.cli import main
    from taskemb_hub.tuning.recipe import recipe_warnings

    from conftest import _sentiment_rows

    (tmp_path / "task.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n"
                                                                 for r in _sentiment_rows(120, 0)))
    argv = _with(_with(_readme_tune_command(), "--task", str(tmp_path / "task.csv")), "--out", str(tmp_path / "run"))
    assert "--save-steps" in argv and "--max-steps" not in argv
    assert main(["tune", *argv, "--base-model", tiny_bert, "--eval-examples", "0", "--json"]) == 0
    steps = [r["step"] for r in json.loads(capsys.readouterr().out)]
    assert steps == [50, 100, 200]
    target = TaskEmbedding.load(tmp_path / "run" / "step-100")
    assert target.extra["recipe"]["max_steps"] == 100
    warnings, mismatch = recipe_warnings(target, _packaged_sources())
    assert warnings == [] and not mismatch
    later = TaskEmbedding.load(tmp_path / "run" / "step-200")  # from its own 200-step run: said so, not hidden
    assert recipe_warnings(later, _packaged_sources())[1]


# ---- Ctrl-C and resume -----------------------------------------------------------------------------------
RESUMABLE = dict(max_steps=12, save_steps=[4], batch_size=8, eval_examples=8, max_train_examples=None)


def _interrupt_at(monkeypatch, call: int, how: str = "sigint"):
    """Ctrl-C during the `call`-th forward pass of training: a real SIGINT, or a KeyboardInterrupt raised mid-step
    (what a second Ctrl-C does)."""
    import os
    import signal

    from taskemb_hub.tuning.training import TaskModel

    forward, calls = TaskModel.forward, {"n": 0}

    def interrupted(self, **batch):
        if self.training:
            calls["n"] += 1
            if calls["n"] == call:
                if how == "sigint":
                    os.kill(os.getpid(), signal.SIGINT)
                else:
                    raise KeyboardInterrupt
        return forward(self, **batch)

    monkeypatch.setattr(TaskModel, "forward", interrupted)
    return calls


@pytest.fixture
def uninterrupted(tiny_bert, sentiment_task, tmp_path_factory):
    return tune(sentiment_task, TuningConfig(base_model=tiny_bert, **RESUMABLE), tmp_path_factory.mktemp("whole"),
                progress=False)


@pytest.mark.parametrize("how, stops_at, resumes_from", [("sigint", 10, 10), ("raise", 10, 4)])
def test_ctrl_c_saves_a_state_and_a_rerun_ends_where_an_uninterrupted_run_does(
        how, stops_at, resumes_from, uninterrupted, tiny_bert, sentiment_task, tmp_path, monkeypatch, capsys):
    """Step 10 lies in the second epoch (8 batches each): the shuffle order, the dropout draws, the optimizer's
    moments and the schedule all go on from where they were."""
    from taskemb_hub.tuning._resume import RESUME_DIR, TuningInterrupted

    cfg = TuningConfig(base_model=tiny_bert, **RESUMABLE)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, stops_at, how)
        with pytest.raises(TuningInterrupted, match=f"resume from step {resumes_from}") as err:
            tune(sentiment_task, cfg, tmp_path, progress=False)
    assert isinstance(err.value, KeyboardInterrupt) and "\n" not in str(err.value)
    files = {p.suffix for p in (tmp_path / RESUME_DIR).rglob("*") if p.is_file()}
    assert files == {".json", ".safetensors"}  # nothing pickled
    resumed = tune(sentiment_task, cfg, tmp_path, progress=True)
    assert f"from step {resumes_from} of 12" in capsys.readouterr().err
    assert [c.step for c in resumed] == [4, 12]
    for mine, whole in zip(resumed, uninterrupted):  # resuming is exact: every weight, draw and step as before
        assert torch.equal(mine.embedding.vector, whole.embedding.vector)
    assert resumed[-1].metrics == uninterrupted[-1].metrics
    calls = _interrupt_at(monkeypatch, 10**9)  # a finished run is not tuned again
    again = tune(sentiment_task, cfg, tmp_path, progress=False)
    assert calls["n"] == 0 and [c.step for c in again] == [4, 12]
    assert all(torch.equal(a.embedding.vector, r.embedding.vector) for a, r in zip(again, resumed))


def test_cli_ctrl_c_is_one_line_with_how_to_resume_and_the_rerun_resumes(tiny_bert, tmp_path, monkeypatch, capsys):
    from taskemb_hub.cli import main

    from conftest import _sentiment_rows

    (tmp_path / "task.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n"
                                                                 for r in _sentiment_rows(64, 0)))
    argv = ["tune", "--task", str(tmp_path / "task.csv"), "--out", str(tmp_path / "run"), "--base-model", tiny_bert,
            "--max-steps", "6", "--eval-examples", "0", "--batch-size", "8"]
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 3)
        assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("interrupted:") == 1
    assert "resume from step 3" in err.splitlines()[-1]
    assert main(argv) == 0
    assert "Resuming" in capsys.readouterr().err and (tmp_path / "run" / "step-6").is_dir()
    calls = _interrupt_at(monkeypatch, 10**9)
    assert main(argv + ["--restart"]) == 0 and calls["n"] == 6  # --restart tunes all 6 steps again
