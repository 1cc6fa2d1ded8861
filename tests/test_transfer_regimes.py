"""The grid's "small" regime and its local multi-process executor (`transfer-matrix --workers K`)."""

import json

from taskemb_hub.evaluation.transfer import (BASE, TransferConfig, _finetune, load_transfer_results,
                                             run_local_workers, run_transfer_matrix)

from test_transfer_and_baselines import task_dir  # noqa: F401  (fixture)


def _config(tiny_bert, task_dir, **overrides) -> TransferConfig:
    settings = dict(tasks=["alpha", "beta", "gamma"], targets=["alpha"], data_dir=str(task_dir), base_model=tiny_bert,
                    train_examples=32, source_epochs=1, target_epochs=1, batch_size=16)
    return TransferConfig(**{**settings, **overrides})


def test_the_small_regime_tunes_targets_on_fewer_rows_with_the_same_sources(tiny_bert, task_dir, tmp_path):
    limited, small = _config(tiny_bert, task_dir), _config(tiny_bert, task_dir, target_train_examples=20)
    assert "target_train_examples" not in limited.recipe(), "older result lines keep matching the limited recipe"
    assert small.recipe()["target_train_examples"] == 20
    assert small.source_recipe() == limited.recipe(), "a source body does not depend on the target's rows"

    from taskemb_hub.data import load_task

    target = load_task(task_dir / "alpha")
    tuning = _finetune(target, small, 0, small.target_epochs, small.target_train_examples)
    assert (tuning.max_train_examples, tuning.max_steps) == (20, 2)

    results, work = tmp_path / "m.jsonl", tmp_path / "work"
    run_transfer_matrix(limited, results, work, progress=False, log=lambda _: None)
    run_transfer_matrix(small, results, work, progress=False, log=lambda _: None)
    assert len(load_transfer_results(results, limited.recipe())) == 3
    assert len(load_transfer_results(results, small.recipe())) == 3
    assert len(list((work / "sources").iterdir())) == 1, "the small regime reused the limited regime's source bodies"


def test_local_workers_run_every_cell_exactly_once(tiny_bert, task_dir, tmp_path):
    cfg = _config(tiny_bert, task_dir, seeds=[0, 1])
    results = tmp_path / "m.jsonl"
    run_local_workers(cfg, results, tmp_path / "work", workers=2)
    cells = [(r["source"], r["target"], r["seed"]) for r in load_transfer_results(results)]
    assert sorted(cells) == sorted((s, "alpha", seed) for seed in (0, 1) for s in (BASE, "beta", "gamma"))
    assert all(json.loads(line) for line in results.read_text().splitlines()), "no torn or empty lines"


def test_a_deadline_stops_the_workers_and_the_next_start_finishes_the_grid(tiny_bert, task_dir, tmp_path):
    cfg, results, work = _config(tiny_bert, task_dir), tmp_path / "m.jsonl", tmp_path / "work"
    run_local_workers(cfg, results, work, workers=2, deadline_s=0.1)  # stopped while still importing: no cell done
    assert len(load_transfer_results(results)) < 3
    run_local_workers(cfg, results, work, workers=2)
    cells = [(r["source"], r["seed"]) for r in load_transfer_results(results)]
    assert sorted(cells) == [(BASE, 0), ("beta", 0), ("gamma", 0)], "claims of the stopped workers were taken over"


def test_failing_workers_are_an_error_not_a_silent_exit(task_dir, tmp_path):
    import pytest

    from taskemb_hub.evaluation.transfer import WorkerError

    cfg = TransferConfig(tasks=["alpha", "beta"], targets=["alpha"], data_dir=str(task_dir),
                         base_model=str(tmp_path / "no-such-model"), train_examples=32)
    with pytest.raises(WorkerError, match="2 of 2 workers failed"):
        run_local_workers(cfg, tmp_path / "m.jsonl", tmp_path / "work", workers=2)


def test_bad_input_fails_once_before_any_worker_starts(tiny_bert, task_dir, tmp_path):
    import pytest

    from taskemb_hub.errors import DataError

    with pytest.raises(DataError):
        run_local_workers(_config(tiny_bert, task_dir, data_dir=str(tmp_path / "nowhere")), tmp_path / "m.jsonl",
                          tmp_path / "work", workers=2)
    with pytest.raises(DataError, match="positive number of rows"):
        _config(tiny_bert, task_dir, target_train_examples=0)


def test_a_claim_left_by_a_killed_worker_is_taken_over(tiny_bert, task_dir, tmp_path):
    import os

    from taskemb_hub.methods.base import signature_hash

    cfg, results, work = _config(tiny_bert, task_dir), tmp_path / "m.jsonl", tmp_path / "work"
    claims = work / "claims" / signature_hash(cfg.recipe())
    claims.mkdir(parents=True)
    (claims / "beta--alpha--seed0.json").write_text(json.dumps({"pid": 2 ** 22 + 4321, "host": os.uname().nodename,
                                                               "started": 0}))  # its process is gone
    run_local_workers(cfg, results, work, workers=2)
    assert sorted(r["source"] for r in load_transfer_results(results)) == [BASE, "beta", "gamma"]


def test_finished_cells_are_read_incrementally_whole_lines_only(tmp_path):
    import os

    import pytest

    from taskemb_hub.evaluation.transfer import FinishedCells

    recipe, other = {"epochs": 1}, {"epochs": 2}
    results = tmp_path / "m.jsonl"
    line = lambda source, recipe: json.dumps({"source": source, "target": "t", "seed": 0, "recipe": recipe}) + "\n"
    finished = FinishedCells(results, recipe)
    assert finished.refresh() == set(), "no file yet: nothing finished"
    results.write_text(line("a", recipe) + line("b", other))
    assert finished.refresh() == {("a", "t", 0)}, "another recipe's line does not count"
    read_up_to = finished.offset
    with results.open("a") as handle:  # a writer mid-line: not read until its newline lands
        handle.write(line("c", recipe)[:20])
    assert ("c", "t", 0) not in finished and finished.offset == read_up_to
    with results.open("a") as handle:
        handle.write(line("c", recipe)[20:])
    assert ("c", "t", 0) in finished and finished.offset == results.stat().st_size
    with results.open("a") as handle:  # a torn line closed by the next append is skipped, not fatal
        handle.write('{"source": "d", "tar\n' + line("e", recipe))
    with pytest.warns(UserWarning, match=r"m\.jsonl:4: skipping a torn line"):
        assert finished.refresh() == {("a", "t", 0), ("c", "t", 0), ("e", "t", 0)}

    results.write_text(line("f", recipe))  # replaced by a shorter file: read again from its start
    assert finished.refresh() == {("f", "t", 0)}
    replacement = tmp_path / "merged.jsonl"  # replaced by a longer file (a new inode): read again too
    replacement.write_text(line("g", recipe) * 3 + line("h", recipe) * 3)
    os.replace(replacement, results)
    assert finished.refresh() == {("g", "t", 0), ("h", "t", 0)}
    results.write_text(line("i", recipe) * 8)  # rewritten in place, longer: the offset no longer ends a line
    assert finished.refresh() == {("i", "t", 0)}
    results.unlink()
    assert finished.refresh() == set(), "a removed file holds no finished cells"


def test_a_complete_last_row_without_a_newline_counts_and_is_read_whole_later(tmp_path):
    from taskemb_hub.evaluation.transfer import FinishedCells, _append

    results = tmp_path / "m.jsonl"
    rows = [{"source": s, "target": "t", "seed": 0, "recipe": {}} for s in ("a", "b")]
    results.write_text("\n".join(json.dumps(r) for r in rows))  # written by a script: no final newline
    finished = FinishedCells(results, {})
    assert ("b", "t", 0) in finished, "its last cell would otherwise run again"
    _append(results, {"source": "c", "target": "t", "seed": 0, "recipe": {}})  # closes the line first
    assert finished.refresh() == {("a", "t", 0), ("b", "t", 0), ("c", "t", 0)}
    assert finished.offset == results.stat().st_size
