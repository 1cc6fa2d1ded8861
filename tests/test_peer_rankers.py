"""The peer rankers are scored by report.py's own functions (benchmarks/peer_rankers.py, benchmarks/report.py): the
metrics added for the comparison (the peer's NDCG gain 2^(100 acc)-1, Regret@1/5), a partly measured peer left out
rather than ranked over fewer sources, and paired differences read the right way for lower-is-better metrics.
No model is run here."""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import peer_rankers  # noqa: E402
import report  # noqa: E402

ROW = {"base": 0.70, "a": 0.80, "b": 0.75, "c": 0.60}  # one ground-truth row: target "t", three sources


def scorer_from(scores):
    return lambda target, sources, seed: {s: scores[s] for s in sources}


def test_every_row_gets_the_peer_gain_and_regret_at_1_3_5():
    transfer = {s: ROW[s] for s in "abc"}
    perfect = report.score_row({"a": 3, "b": 2, "c": 1}, transfer, ROW["base"])
    assert perfect["ndcg_peer_gain"] == pytest.approx(1.0)
    assert perfect["regret@1"] == perfect["regret@3"] == perfect["regret@5"] == 0.0
    reversed_ = report.score_row({"a": 1, "b": 2, "c": 3}, transfer, ROW["base"])
    assert reversed_["regret@1"] == pytest.approx(100 * (0.80 - 0.60) / 0.80)
    assert reversed_["regret@5"] == 0.0  # all three sources are in the top 5
    gain = {s: 2 ** (100 * ROW[s]) - 1 for s in "abc"}
    dcg = gain["c"] + gain["b"] / math.log2(3) + gain["a"] / 2
    ideal = gain["a"] + gain["b"] / math.log2(3) + gain["c"] / 2
    assert reversed_["ndcg_peer_gain"] == pytest.approx(dcg / ideal)


def test_a_targets_metrics_average_its_ground_truth_seeds():
    rows = {("t", 0): ROW, ("t", 1): ROW | {"c": 0.90}}  # at seed 1, c is the best source
    got = report.evaluate_method(scorer_from({"a": 3, "b": 2, "c": 1}), rows, ["t", "a", "b", "c"])["rows"]["t"]
    assert got["regret@1"] == pytest.approx((0.0 + 100 * (0.90 - 0.80) / 0.90) / 2)
    assert got["rho"] == pytest.approx((1 + 3) / 2)


def test_a_target_missing_any_source_score_is_not_ranked(tmp_path, monkeypatch):
    scores = tmp_path / "peer_scores.jsonl"
    lines = [{"method": "logme", "target": "t", "source": s, "rows": 1000, "score": v} for s, v in (("a", 1.0), ("b", 2.0))]
    lines.append({"method": "logme", "target": "t", "source": "c", "rows": 200, "score": 3.0})  # other row count
    scores.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setattr(peer_rankers, "SCORES", scores)
    scorer = peer_rankers.peer_scorer("logme", 1000)
    assert scorer("t", ["a", "b"], 0) == {"a": 1.0, "b": 2.0}
    assert scorer("t", ["a", "b", "c"], 0) is None
    assert peer_rankers.peer_scorer("esm-logme", 1000)("t", ["a"], 0) is None
    m = report.evaluate_method(scorer, {("t", 0): ROW}, ["t", "a", "b", "c"])
    assert m is None  # the target lacks c's score: left out, not ranked over a and b only


def test_paired_counts_a_lower_regret_or_rho_as_a_win():
    results = {"ours": {"rows": {"t1": {"regret@3": 1.0, "rho": 1}, "t2": {"regret@3": 2.0, "rho": 2}}},
               "peer": {"rows": {"t1": {"regret@3": 3.0, "rho": 3}, "t2": {"regret@3": 2.0, "rho": 1}}}}
    regret = report._paired(results, "ours", "peer", key="regret@3")
    assert regret["delta"] == -1.0 and regret["wtl"] == [1, 1, 0] and regret["targets"] == 2
    assert report._paired(results, "ours", "peer", key="rho")["wtl"] == [1, 0, 1]


def test_stored_bytes_of_an_entry_count_its_files(tmp_path):
    entry = tmp_path / "task" / "seed0" / "step-100"
    entry.mkdir(parents=True)
    (entry / "taskemb.safetensors").write_bytes(b"x" * 100)
    (entry / "taskemb.json").write_bytes(b"{}")
    assert peer_rankers.stored_bytes(tmp_path) == 102
    assert peer_rankers.stored_bytes(tmp_path / "absent") is None
