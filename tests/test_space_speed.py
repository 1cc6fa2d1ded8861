"""The Space answers at once (issue 23): figures are data drawn in the browser (no matplotlib), the registry's
map is fitted once per registry version (a refresh brings a new one), the heatmap covers the top sources only,
the downloads are small files written from memory only when asked (a lookup writes none), and a lookup in an
index registry loads no vector beyond the ranking's own rows. Latency itself is measured by benchmarks/space_latency.py."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gradio", reason="the Space needs the [space] extra")

from taskemb_hub.embedding import TaskEmbedding  # noqa: E402
from taskemb_hub.registries import RegistryEntry  # noqa: E402
from taskemb_hub.ranking.selector import AutoSourceSelector  # noqa: E402
from taskemb_hub.space import _handlers as h  # noqa: E402
from taskemb_hub.space import _plots  # noqa: E402
from taskemb_hub.space._uploads import scrub_obj  # noqa: E402

SIGNATURE = {"method": "bitfit", "synthetic": True}


def _entries(n: int, dim: int = 48, seed: int = 0) -> list[RegistryEntry]:
    g = torch.Generator().manual_seed(seed)
    return [RegistryEntry(f"org/task-{i:04d}", TaskEmbedding(
        vector=torch.randn(dim, generator=g), task=f"task-{i:04d}", base_model="org/base", method="bitfit",
        signature=SIGNATURE, step=100, train_size=1000, metrics={"accuracy": 0.9},
        extra={"recipe": {"max_steps": 100}, "source": "/srv/private/data.csv"}), f"org/task-{i:04d}@{i:040x}")
        for i in range(n)]


def _state(n: int = 60, **kwargs) -> h.RegistryState:
    return h.RegistryState(None, "test", AutoSourceSelector(_entries(n, **kwargs)))


def _column(plot: dict, name: str) -> list:
    return [row[plot["columns"].index(name)] for row in plot["data"]]


def test_the_space_answers_without_matplotlib(tmp_path):
    """The page and an answer import no plotting library (matplotlib is no longer a runtime need of the Space)."""
    script = f"""
import sys
sys.modules["matplotlib"] = None  # importing it now raises ImportError
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_space_speed import _entries
from taskemb_hub.ranking.selector import AutoSourceSelector
from taskemb_hub.space import build_app, _handlers as h
state = h.RegistryState(None, "test", AutoSourceSelector(_entries(30)))
app = build_app(state=state, config=h.SpaceConfig(work_dir={str(tmp_path)!r}))
answer = h.rank_registry(state, app.space_config, "org/task-0003", top_k=5)
assert answer.ok and answer.bar["mark"] == "bar" and answer.map["mark"] == "point", answer.message
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_the_map_is_fitted_once_per_registry_version_and_a_refresh_brings_a_new_one(monkeypatch, tmp_path):
    fits = []
    real = _plots.Projection.fit.__func__

    def counting(cls, names, vectors, **kwargs):
        fits.append(len(names))
        return real(cls, names, vectors, **kwargs)

    monkeypatch.setattr(_plots.Projection, "fit", classmethod(counting))
    versions = iter([_entries(40, seed=0), _entries(50, seed=1)])
    state = h.RegistryState(lambda: AutoSourceSelector(next(versions)), "test")
    config = h.SpaceConfig(work_dir=str(tmp_path))
    first = [h.rank_registry(state, config, f"org/task-{i:04d}", top_k=3) for i in range(4)]
    assert all(a.ok for a in first) and fits == [40]  # one fit, four queries: only the targets are projected
    assert len({json.dumps(a.map["data"][-1]) for a in first}) == 4  # each target at its own point
    assert state.refresh()
    state.wait(60)
    assert fits == [40, 50]  # the refresh fitted the new registry's map before the swap
    again = h.rank_registry(state, config, "org/task-0001", top_k=3)
    assert again.ok and fits == [40, 50] and len(again.map["data"]) == 50


def test_the_heatmap_covers_the_top_sources_and_the_map_every_top_source(monkeypatch, tmp_path):
    monkeypatch.setattr(_plots, "MAP_POINTS", 100)
    state = _state(400)
    answer = h.rank_registry(state, h.SpaceConfig(work_dir=str(tmp_path)), "org/task-0007", top_k=30)
    names = answer.ranking.names
    assert answer.ok and len(names) == 30 and _column(answer.bar, "name") == names
    assert answer.heatmap["headers"] == ["cosine", "▶ org/task-0007", *names[:h.HEATMAP_MAX]]
    assert len(answer.heatmap["data"]) == 1 + h.HEATMAP_MAX
    kinds = _column(answer.map, "kind")
    assert kinds.count("target") == 1 and kinds[-1] == "target" and kinds.count("top source") == 30
    assert kinds.count("registry entry") <= 100  # a fixed sample of the registry, the top sources drawn as such
    shown = dict(zip(_column(answer.map, "name"), zip(_column(answer.map, "x"), _column(answer.map, "y"))))
    assert set(names) <= set(shown)
    vectors = torch.stack([state.derived(state.selector).by_name[n].embedding.vector for n in ["org/task-0007", *names[:3]]])
    expected = torch.nn.functional.normalize(vectors.double(), dim=1)
    expected = (expected @ expected.T).numpy()
    got = np.array([row[1:5] for row in answer.heatmap["data"][:4]])
    assert np.allclose(got, expected, atol=1e-3)  # the cells are the cosines, rounded to 3 places
    styling = answer.heatmap["metadata"]["styling"]
    assert all(cell.startswith("background-color: #") for row in styling for cell in row[1:])


def test_the_embedding_download_holds_what_save_writes_without_server_paths(tmp_path):
    state = _state(20)
    config = h.SpaceConfig(work_dir=str(tmp_path / "answers"))
    answer = h.rank_registry(state, config, "org/task-0002", top_k=3)
    _, json_path, embedding_path = answer.downloads.write(config)
    saved = answer.ranking.target.save(tmp_path / "saved")
    with zipfile.ZipFile(embedding_path) as archive:
        assert sorted(archive.namelist()) == ["taskemb.json", "taskemb.safetensors"]
        assert archive.read("taskemb.safetensors") == (saved / "taskemb.safetensors").read_bytes()
        shown = json.loads(archive.read("taskemb.json"))
    assert shown == scrub_obj(json.loads((saved / "taskemb.json").read_text()))
    assert "/srv/private" not in json.dumps(shown) + Path(json_path).read_text()
    loaded = TaskEmbedding.load(_unzipped(embedding_path, tmp_path / "unzipped"))
    assert torch.equal(loaded.vector, answer.ranking.target.vector)


def _unzipped(path: str, folder: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    return folder


def test_a_lookup_in_an_index_loads_no_vector_beyond_the_rankings_rows(tmp_path):
    from taskemb_hub.registries.index import write_index

    write_index(_entries(300), tmp_path / "index")
    selector = AutoSourceSelector.from_index(tmp_path / "index")
    state = h.RegistryState(None, "index", selector)
    state.warm()
    answer = h.rank_registry(state, h.SpaceConfig(work_dir=str(tmp_path / "answers")), "org/task-0100", top_k=5)
    assert answer.ok and answer.map is not None and len(answer.heatmap["data"]) == 6
    loaded = [e.name for e in selector.entries if e._embedding is not None]
    assert len(loaded) <= 10, loaded  # the map and the heatmap read the selector's matrix, not each entry


def test_a_failed_answer_has_no_figures_and_no_files(tmp_path):
    answer = h.rank_registry(_state(10), h.SpaceConfig(work_dir=str(tmp_path)), "no/such-entry", top_k=3)
    assert answer.message.startswith("⚠️") and "\n" not in answer.message
    assert (answer.bar, answer.map, answer.heatmap, answer.downloads) == (None, None, None, None)


def test_a_lookup_writes_no_file_and_its_downloads_are_written_once_when_asked(tmp_path):
    state = _state(40)
    config = h.SpaceConfig(work_dir=str(tmp_path / "answers"))
    answer = h.rank_registry(state, config, "org/task-0005", top_k=4, similarity="cosine")
    assert answer.ok and not (tmp_path / "answers").exists()  # nothing written to answer
    paths = answer.downloads.write(config)
    assert [Path(p).name for p in paths] == ["ranking-task-0005.csv", "ranking-task-0005.json", "taskemb-task-0005.zip"]
    csv_path, json_path, _ = map(Path, paths)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert list(rows[0]) == ["rank", "source", "task", "score", "method", "step", "train_size", "metric",
                             "metric_name", "repo_url", "dataset", "dataset_url"]
    assert [r["source"] for r in rows] == answer.ranking.names and rows[0]["rank"] == "1"
    assert [float(r["score"]) for r in rows] == pytest.approx([r["score"] for r in answer.ranking.rows])
    written = json.loads(json_path.read_text(encoding="utf-8"))
    assert written == answer.downloads.payload()  # what the MCP tools return, built without a file
    assert written["target"] == "org/task-0005" and written["registry"] == "test" and written["similarity"] == "cosine"
    assert [r["source"] for r in written["ranking"]] == answer.ranking.names
    assert answer.downloads.write(config) == paths and len(list((tmp_path / "answers").iterdir())) == 1  # once
    again = h.rank_registry(state, config, "org/task-0005", top_k=4, similarity="cosine")
    assert again.downloads.write(config) != paths  # another answer: its own folder, the same file names


def test_the_warm_up_imports_what_tuning_needs_and_reads_the_base_model_files():
    """In a fresh process (as a server starts): peft and the others are not imported until the warm-up, which then
    reads the packaged MiniLM's files; the first visitor's tuning no longer pays for them."""
    script = """
import sys
from taskemb_hub.space import _handlers as h
from taskemb_hub.space._warmup import WARM_MODULES, warm_tuning
from taskemb_hub.space.app import registry_loader
state = h.RegistryState(registry_loader("default"), "default")
before = [m for m in ("peft", "pandas", "taskemb_hub.tuning.training") if m in sys.modules]
report = warm_tuning(state, h.SpaceConfig())
assert before == [], before
assert "error" not in report and report["modules"] == list(WARM_MODULES), report
assert all(m in sys.modules for m in WARM_MODULES), report
assert report["base_model_files"] >= 3 and report["base_model_bytes"] > 10 * 2**20, report
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_a_warm_up_without_a_local_model_or_with_a_failure_never_raises(monkeypatch, caplog):
    from taskemb_hub.space import _warmup

    report = _warmup.warm_tuning(_state(10), h.SpaceConfig())  # base model "org/base": no folder, not in the cache
    assert "error" not in report and report["base_model_files"] == 0

    def broken(state, config):
        raise OSError("disk gone")

    monkeypatch.setattr(_warmup, "_base_model_folder", broken)
    with caplog.at_level("WARNING", logger="taskemb_hub.space"):
        report = _warmup.warm_tuning(_state(10), h.SpaceConfig())
    assert report["error"] == "OSError: disk gone" and any("warm-up stopped" in r.message for r in caplog.records)


def test_launch_starts_the_warm_up_in_the_background(monkeypatch, tmp_path):
    import socket

    from taskemb_hub.space import _warmup, launch

    started = []
    monkeypatch.setattr(_warmup, "start_warmup", lambda state, config: started.append((state, config)))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    selector = AutoSourceSelector(_entries(12))
    app = launch(selector=selector, port=port, config=h.SpaceConfig(work_dir=str(tmp_path)), prevent_thread_lock=True,
                 quiet=True)
    try:
        assert len(started) == 1 and started[0][0] is app.space_state and started[0][1] is app.space_config
    finally:
        app.close()
