"""The Space's lookup: ranks a packaged-registry task leave-one-out; bad input is a message, not a crash."""

import importlib.util
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "spaces" / "app.py"


@pytest.fixture(scope="module")
def app_module():
    spec = importlib.util.spec_from_file_location("space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lookup_ranks_other_tasks(app_module):
    selector = app_module.load_selector("default")
    rows, note = app_module.lookup(selector, "rotten_tomatoes", 3, "cosine")
    assert len(rows) == 3 and "rotten_tomatoes" not in [r[1] for r in rows]
    assert rows[0][0] == 1 and rows[0][2] >= rows[1][2] >= rows[2][2]
    assert "rotten_tomatoes" in note


def test_bad_target_is_reported_not_raised(app_module):
    selector = app_module.load_selector("default")
    rows, note = app_module.lookup(selector, "no-such-task", 3, "cosine")
    assert rows == [] and "neither a folder nor an entry" in note
    assert app_module.lookup(selector, "", 3, "cosine")[1] == "Pick a target task."


def test_app_builds_when_gradio_is_installed(app_module):
    pytest.importorskip("gradio", reason="the Space needs the [space] extra")
    assert app_module.build_app(app_module.load_selector("default")) is not None
