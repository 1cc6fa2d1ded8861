"""The peer rankers' scoring (benchmarks/peer_rankers.py): the extra metrics it adds beside report.py's, and how a
partly measured peer is left out rather than ranked over fewer sources. No model is run here."""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import peer_rankers  # noqa: E402

ROW = {"base": 0.70, "a": 0.80, "b": 0.75, "c": 0.60}  # one ground-truth row: target "t", three sources


def scorer_from(scores):
    return lambda target, sources, seed: {s: scores[s] for s in sources}


def test_peer_gain_is_two_to_the_accuracy_in_points_minus_one():
    assert peer_rankers.peer_gain({"a": 0.0, "b": 0.01, "c": 0.8}) == {"a": 0.0, "b": 1.0, "c": 2.0 ** 80 - 1}


def test_extra_metrics_of_a_perfect_and_of_a_reversed_order():
    rows = {("t", 0): ROW}
    perfect = peer_rankers.extra_metrics(scorer_from({"a": 3, "b": 2, "c": 1}), rows, ["t", "a", "b", "c"])["t"]
    assert perfect == {"ndcg_peer_gain": pytest.approx(1.0), "regret@1": 0.0, "regret@5": 0.0}
    reversed_ = peer_rankers.extra_metrics(scorer_from({"a": 1, "b": 2, "c": 3}), rows, ["t", "a", "b", "c"])["t"]
    assert reversed_["regret@1"] == pytest.approx(100 * (0.80 - 0.60) / 0.80)
    assert reversed_["regret@5"] == 0.0  # all three sources are in the top 5
    gain = {s: 2 ** (100 * ROW[s]) - 1 for s in "abc"}
    dcg = gain["c"] + gain["b"] / math.log2(3) + gain["a"] / 2
    ideal = gain["a"] + gain["b"] / math.log2(3) + gain["c"] / 2
    assert reversed_["ndcg_peer_gain"] == pytest.approx(dcg / ideal)


def test_extra_metrics_average_the_ground_truth_seeds_of_a_target():
    rows = {("t", 0): ROW, ("t", 1): ROW | {"c": 0.90}}  # at seed 1, c is the best source
    got = peer_rankers.extra_metrics(scorer_from({"a": 3, "b": 2, "c": 1}), rows, ["t", "a", "b", "c"])["t"]
    assert got["regret@1"] == pytest.approx((0.0 + 100 * (0.90 - 0.80) / 0.90) / 2)


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


def test_paired_counts_a_lower_regret_as_a_win():
    results = {"ours": {"rows": {"t1": {"regret@3": 1.0, "rho": 1}, "t2": {"regret@3": 2.0, "rho": 2}}},
               "peer": {"rows": {"t1": {"regret@3": 3.0, "rho": 3}, "t2": {"regret@3": 2.0, "rho": 1}}}}
    regret = peer_rankers.paired(results, "ours", "peer", "regret@3")
    assert regret["delta"] == -1.0 and regret["wtl"] == [1, 1, 0] and regret["targets"] == 2
    assert peer_rankers.paired(results, "ours", "peer", "rho")["wtl"] == [1, 0, 1]
