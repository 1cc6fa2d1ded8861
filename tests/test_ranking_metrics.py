"""Ranking metrics on hand-computed cases, and the same through `evaluate.load` by path."""

import math

import pytest

from taskemb_hub.evaluation.ranking_metrics import best_source_rank, evaluate_ranking, gains, ndcg, regret_at_k

TRANSFER = {"a": 0.84, "b": 0.80, "c": 0.70}  # measured target scores after each source
BASE = 0.80


def test_relative_gain_clips_negative_transfer():
    assert gains(TRANSFER, BASE) == pytest.approx({"a": 0.05, "b": 0.0, "c": 0.0})
    assert gains(TRANSFER, BASE, "shifted") == pytest.approx({"a": 0.14, "b": 0.10, "c": 0.0})


def test_perfect_and_reversed_orders():
    perfect = evaluate_ranking({"a": 3, "b": 2, "c": 1}, TRANSFER, BASE)
    assert perfect["ndcg"] == pytest.approx(1.0) and perfect["rho"] == 1 and perfect["regret@3"] == 0
    worst = evaluate_ranking({"a": 1, "b": 2, "c": 3}, TRANSFER, BASE, k=1)
    assert worst["rho"] == 3 and worst["spearman"] == pytest.approx(-1.0)
    assert worst["ndcg"] == pytest.approx(1 / math.log2(4))  # the only gain sits at position 3
    assert worst["regret@1"] == pytest.approx(100 * (0.84 - 0.70) / 0.84)


def test_ndcg_is_undefined_when_no_source_helps():
    assert math.isnan(ndcg(["a", "b"], {"a": 0.0, "b": 0.0}))
    assert regret_at_k(["b", "a"], {"a": 0.5, "b": 0.4}, k=2) == 0


def test_evaluate_metric_module_loads_by_path():
    import evaluate

    from taskemb_hub.evaluate_metrics import TRANSFER_RANKING

    metric = evaluate.load(TRANSFER_RANKING)
    result = metric.compute(predictions=[1.0, 2.0, 3.0], references=[0.84, 0.80, 0.70], base_score=0.80)
    assert result["rho"] == 3 and result["ndcg"] == pytest.approx(1 / math.log2(4))


def test_rho_of_tied_best_sources_is_their_mean_rank_whatever_their_listing_order():
    tied = {"a": 0.70, "b": 0.84, "c": 0.84}  # b and c tie for best (same accuracy on the same test rows)
    scores = {"a": 3, "b": 2, "c": 1}  # predicted order a, b, c: the tied best sit at ranks 2 and 3
    assert evaluate_ranking(scores, tied, BASE)["rho"] == 2.5
    listed_otherwise = {"c": 0.84, "b": 0.84, "a": 0.70}  # the first-listed best used to decide rho (3 here, 2 above)
    assert evaluate_ranking(scores, listed_otherwise, BASE)["rho"] == 2.5
    assert best_source_rank(["b", "a", "c"], tied) == 2.0  # ranks 1 and 3


def test_exponential_gain_is_hf_dataset_selectors_and_several_regret_cutoffs_at_once():
    assert gains({"a": 0.0, "b": 0.01}, BASE, "exponential") == {"a": 0.0, "b": 1.0}
    got = evaluate_ranking({"a": 1, "b": 2, "c": 3}, TRANSFER, BASE, k=(1, 3))
    assert got["regret@1"] == pytest.approx(100 * (0.84 - 0.70) / 0.84) and got["regret@3"] == 0
