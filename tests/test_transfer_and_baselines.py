"""The transfer-matrix runner is resumable; the baselines embed through the same TaskEmbedding interface."""

import gzip
import json
import os
import random

import pytest
import torch

from taskemb_hub.baselines import fisher_embedding, text_embedding
from taskemb_hub.evaluation.transfer import BASE, TransferConfig, load_transfer_results, run_transfer_matrix

from conftest import _sentiment_rows


def datasize_scores(train_sizes: dict[str, int]) -> dict[str, float]:
    """DataSize: bigger source first (not an embedding; moved here from taskemb_hub.baselines, its only user)."""
    return {name: float(size) for name, size in train_sizes.items()}


def random_scores(names: list[str], seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    return {name: rng.random() for name in names}


def write_task_folder(root, name, seed):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "task.json").write_text(json.dumps({"type": "text-classification", "labels": ["neg", "pos"],
                                                  "pair": False, "name": name}))
    for split, n in (("train", 32), ("test", 16)):
        with gzip.open(folder / f"{split}.jsonl.gz", "wt") as handle:
            handle.write("\n".join(json.dumps(r) for r in _sentiment_rows(n, seed + len(split))))


@pytest.fixture
def task_dir(tmp_path):
    for i, name in enumerate(["alpha", "beta", "gamma"]):
        write_task_folder(tmp_path / "tasks", name, seed=10 * i)
    return tmp_path / "tasks"


def test_transfer_matrix_writes_one_line_per_run_and_resumes(tiny_bert, task_dir, tmp_path):
    cfg = TransferConfig(tasks=["alpha", "beta", "gamma"], targets=["alpha"], data_dir=str(task_dir), base_model=tiny_bert,
                         train_examples=32, source_epochs=1, target_epochs=1, batch_size=16)
    results = tmp_path / "matrix.jsonl"
    run_transfer_matrix(cfg, results, tmp_path / "work", progress=False, log=lambda _: None)
    rows = load_transfer_results(results)
    assert sorted(r["source"] for r in rows) == [BASE, "beta", "gamma"]
    assert all(r["target"] == "alpha" and r["metric"] == "accuracy" and 0 <= r["score"] <= 1 for r in rows)
    assert sorted(p.name for p in (tmp_path / "work" / "sources").glob("*/*")) == ["beta-seed0.safetensors",
                                                                                "gamma-seed0.safetensors"]

    lines = results.read_text().splitlines()
    results.write_text("\n".join(l for l in lines if json.loads(l)["source"] != "gamma") + "\n")
    log = []
    run_transfer_matrix(cfg, results, tmp_path / "work", progress=False, log=log.append)
    assert len(log) == 1 and "gamma" in log[0], "only the missing cell is run again"
    assert len(load_transfer_results(results)) == 3


def test_a_changed_recipe_does_not_reuse_old_runs(tiny_bert, task_dir, tmp_path):
    cfg = TransferConfig(tasks=["alpha", "beta"], targets=["alpha"], data_dir=str(task_dir), base_model=tiny_bert,
                         train_examples=32, source_epochs=1, target_epochs=1)
    results = tmp_path / "m.jsonl"
    run_transfer_matrix(cfg, results, tmp_path / "work", progress=False, log=lambda _: None)
    cfg.target_epochs = 2
    run_transfer_matrix(cfg, results, tmp_path / "work", progress=False, log=lambda _: None)
    assert len(load_transfer_results(results)) == 4
    assert len(load_transfer_results(results, recipe=cfg.recipe())) == 2


def test_text_and_fisher_embeddings_rank_through_the_same_interface(tiny_bert, sentiment_task, pair_task):
    a, b = text_embedding(sentiment_task, tiny_bert), text_embedding(pair_task, tiny_bert)
    assert a.method == "textemb" and a.dim == 32 and a.similarity(a) == pytest.approx(1.0)
    assert -1 <= a.similarity(b) <= 1
    fisher = fisher_embedding(sentiment_task, tiny_bert, train_steps=2, fisher_examples=4)
    assert fisher.method == "taskemb" and torch.all(fisher.vector >= 0) and fisher.vector.sum() > 0


def test_datasize_and_random_scores():
    assert datasize_scores({"a": 10, "b": 1000}) == {"a": 10.0, "b": 1000.0}
    assert random_scores(["a", "b"], seed=1) == random_scores(["a", "b"], seed=1)


@pytest.mark.parametrize("similarity", ["cosine", "centered"])
def test_isometric_copies_rank_exactly_like_the_huge_vectors(similarity):
    from taskemb_hub import AutoSourceSelector, TaskEmbedding
    from taskemb_hub.baselines import isometric_copies

    generator = torch.Generator().manual_seed(0)
    full = [TaskEmbedding(vector=torch.rand(5000, generator=generator), task=f"t{i}", base_model="m", method="taskemb",
                          signature={"method": "taskemb"}) for i in range(6)]
    small = isometric_copies(full)

    assert [e.dim for e in small] == [6] * 6 and small[0].extra["full_dim"] == 5000
    big_rank = AutoSourceSelector.from_embeddings(full[1:]).rank(full[0], similarity=similarity)
    small_rank = AutoSourceSelector.from_embeddings(small[1:]).rank(small[0], similarity=similarity)
    assert big_rank.names == small_rank.names
    assert [r["score"] for r in big_rank] == pytest.approx([r["score"] for r in small_rank], abs=1e-5)
    with pytest.raises(Exception, match="signature|incompatible|space"):
        AutoSourceSelector.from_embeddings(small).rank(full[0])  # a copy never mixes with full-size vectors


def test_workers_sharing_a_results_file_never_run_a_cell_twice(tiny_bert, task_dir, tmp_path):
    import os

    from taskemb_hub.methods.base import signature_hash

    cfg = TransferConfig(tasks=["alpha", "beta", "gamma"], targets=["alpha"], data_dir=str(task_dir), base_model=tiny_bert,
                         train_examples=32, source_epochs=1, target_epochs=1, batch_size=16)
    results, work = tmp_path / "matrix.jsonl", tmp_path / "work"
    claims = work / "claims" / signature_hash(cfg.recipe())
    claims.mkdir(parents=True)
    # a live worker (our parent process) holds beta -> alpha; a dead one held gamma -> alpha
    (claims / "beta--alpha--seed0.json").write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename,
                                                               "started": 0}))
    (claims / "gamma--alpha--seed0.json").write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": os.uname().nodename,
                                                                "started": 0}))
    ran = []
    run_transfer_matrix(cfg, results, work, progress=False, log=ran.append)
    assert sorted(line.split("->")[0].strip() for line in ran) == [BASE, "gamma"], "held cell skipped, dead claim taken over"
    assert sorted(p.name for p in claims.iterdir()) == ["beta--alpha--seed0.json"], "finished claims are released"


def test_a_worker_rereads_the_results_before_each_run(tiny_bert, task_dir, tmp_path):
    cfg = TransferConfig(tasks=["alpha", "beta", "gamma"], targets=["alpha"], data_dir=str(task_dir), base_model=tiny_bert,
                         train_examples=32, source_epochs=1, target_epochs=1, batch_size=16)
    results = tmp_path / "matrix.jsonl"

    def other_worker_finishes_gamma(_line):
        if "gamma" not in results.read_text():
            row = {"source": "gamma", "target": "alpha", "seed": 0, "metric": "accuracy", "score": 0.5, "recipe": cfg.recipe()}
            with results.open("a") as handle:
                handle.write(json.dumps(row) + "\n")

    ran = []
    run_transfer_matrix(cfg, results, tmp_path / "work", progress=False,
                        log=lambda line: (ran.append(line), other_worker_finishes_gamma(line)))
    assert len(ran) == 2 and not any(line.strip().startswith("gamma") for line in ran)
    assert sorted(r["source"] for r in load_transfer_results(results)) == [BASE, "beta", "gamma"]


def test_a_cell_finished_just_before_our_claim_is_not_run_again(tiny_bert, task_dir, tmp_path, monkeypatch):
    # The race seen on a GPU grid with 11 workers: we read the results (gamma missing), the other
    # worker writes gamma and releases its claim, then our claim succeeds.
    import taskemb_hub.evaluation.transfer as transfer

    cfg = TransferConfig(tasks=["alpha", "beta", "gamma"], targets=["alpha"], data_dir=str(task_dir), base_model=tiny_bert,
                         train_examples=32, source_epochs=1, target_epochs=1, batch_size=16)
    results = tmp_path / "matrix.jsonl"
    real_claim = transfer._claim

    def claim_after_the_other_worker_finished(path):
        if path.name.startswith("gamma--"):
            row = {"source": "gamma", "target": "alpha", "seed": 0, "metric": "accuracy", "score": 0.5, "recipe": cfg.recipe()}
            with results.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
        return real_claim(path)

    monkeypatch.setattr(transfer, "_claim", claim_after_the_other_worker_finished)
    ran = []
    run_transfer_matrix(cfg, results, tmp_path / "work", progress=False, log=ran.append)
    assert sorted(line.split("->")[0].strip() for line in ran) == [BASE, "beta"]
    assert sorted(r["source"] for r in load_transfer_results(results)) == [BASE, "beta", "gamma"], "no duplicate row"
    assert not list((tmp_path / "work" / "claims").rglob("gamma--*")), "the claim is released"


def test_a_torn_line_is_skipped_and_its_cell_runs_again(tiny_bert, task_dir, tmp_path):
    # A worker killed mid-write leaves half a JSON line: every other worker used to stop on it (JSONDecodeError).
    cfg = TransferConfig(tasks=["alpha", "beta"], targets=["alpha"], data_dir=str(task_dir), base_model=tiny_bert,
                         train_examples=32, source_epochs=1, target_epochs=1, batch_size=16)
    results = tmp_path / "matrix.jsonl"
    row = {"source": BASE, "target": "alpha", "seed": 0, "metric": "accuracy", "score": 0.5, "recipe": cfg.recipe()}
    # torn in the middle of the file (closed by a later append), then the end of the file torn too
    results.write_text('{"source": "beta", "target": "al\n' + json.dumps(row) + "\n" + '{"source": "beta", "targ')
    with pytest.warns(UserWarning, match="torn line"):  # the whole torn line is skipped with a warning
        run_transfer_matrix(cfg, results, tmp_path / "work", progress=False, log=lambda _: None)
    with pytest.warns(UserWarning, match="torn line"):
        rows = load_transfer_results(results)
    assert sorted(r["source"] for r in rows) == [BASE, "beta"], "the torn cell ran again, on a line of its own"


def test_concurrent_claims_of_one_cell_have_exactly_one_winner(tmp_path):
    import threading

    import taskemb_hub.evaluation.transfer as transfer

    for trial in range(20):
        claim = tmp_path / "claims" / f"cell{trial}.json"
        if trial % 2:  # half the trials: the cell was held by a worker that died (dead pid on this host)
            claim.parent.mkdir(parents=True, exist_ok=True)
            claim.write_text(json.dumps({"pid": 2 ** 22 + 4321, "host": os.uname().nodename, "started": 0}))
        wins, start = [], threading.Barrier(8)

        def worker():
            start.wait()
            wins.append(transfer._claim(claim))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wins.count(True) == 1, (trial, wins)
        assert json.loads(claim.read_text())["pid"] == os.getpid()


def test_a_claim_being_written_is_not_taken_over(tmp_path):
    # The old claim was created empty and filled afterwards; a reader in between took '{}' for an expired claim.
    import taskemb_hub.evaluation.transfer as transfer

    claim = tmp_path / "claims" / "cell.json"
    claim.parent.mkdir(parents=True)
    claim.write_text("")  # what another worker's claim looked like between its create and its write
    assert transfer._claim(claim) is False


def test_textemb_batches_rows_by_length_and_its_vector_is_the_file_order_one(monkeypatch, tiny_bert, sentiment_task):
    """Sorting the rows by length pads less; the average over rows stays the same up to float rounding."""
    import dataclasses

    from taskemb_hub import baselines

    varied = [{"text": r["text"] + " very" * (i % 9), "label": r["label"]}
              for i, r in enumerate(sentiment_task.splits["train"] * 2)]
    task = dataclasses.replace(sentiment_task, splits={"train": varied})
    lengths = []
    real = baselines._loader

    def recording(*args, **kwargs):
        loader = real(*args, **kwargs)
        lengths.append([len(f["input_ids"]) for f in loader.dataset])
        return loader

    monkeypatch.setattr(baselines, "_loader", recording)
    by_length = text_embedding(task, tiny_bert, batch_size=8).vector
    monkeypatch.setattr(baselines, "_loader", lambda *a, **k: recording(*a, **{**k, "by_length": False}))
    in_file_order = text_embedding(task, tiny_bert, batch_size=8).vector
    assert lengths[0] == sorted(lengths[1]) != lengths[1]  # the same rows, reordered
    assert torch.allclose(by_length, in_file_order, rtol=1e-5, atol=1e-6)
