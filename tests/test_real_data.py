"""On real data with the packaged MiniLM: a task re-tuned with another seed finds itself first."""

import pytest

from taskemb_hub import TuningConfig, load_task, tune
from taskemb_hub.registries.local import LocalRegistry
from taskemb_hub.ranking.selector import AutoSourceSelector

from conftest import DATA_DIR, needs_data

SOURCES = ["rotten_tomatoes", "epistemic_reasoning", "movie_dialog"]


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("method", ["lora", "bitfit"])
def test_own_task_with_another_seed_ranks_first(method, tmp_path):
    registry = LocalRegistry(tmp_path / "reg", create=True)
    recipe = dict(method=method, max_steps=60, max_train_examples=600, max_length=96, eval_examples=0)
    for name in SOURCES:
        checkpoint = tune(load_task(DATA_DIR / name), TuningConfig(seed=0, **recipe), tmp_path / name, progress=False)[-1]
        registry.add(checkpoint.path, name=name)
    target = tune(load_task(DATA_DIR / "rotten_tomatoes"), TuningConfig(seed=1, **recipe), None, progress=False)[-1]

    ranking = AutoSourceSelector.from_local(registry.path).rank(target.embedding)
    assert ranking.names[0] == "rotten_tomatoes", str(ranking)
    assert ranking[0]["score"] > ranking[1]["score"]
