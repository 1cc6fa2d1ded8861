"""Choices made leave-one-target-out, and the combined rankers of the report (benchmarks/out_of_sample.py)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import out_of_sample as oos  # noqa: E402


def test_each_target_is_scored_with_the_choice_made_on_the_other_targets():
    # "lucky" is best in sample only because of t1; on every other target "steady" is better
    candidates = {"lucky": {"t1": {"ndcg": 1.0}, "t2": {"ndcg": 0.3}, "t3": {"ndcg": 0.3}},
                  "steady": {"t1": {"ndcg": 0.2}, "t2": {"ndcg": 0.5}, "t3": {"ndcg": 0.5}}}
    assert oos.in_sample_best(candidates) == "lucky"  # mean 0.533 vs 0.4
    rows, chosen = oos.loto_select(candidates)
    assert chosen == {"t1": "steady", "t2": "lucky", "t3": "lucky"}
    assert [rows[t]["ndcg"] for t in ("t1", "t2", "t3")] == [0.2, 0.3, 0.3]  # 0.267 out of sample, not 0.533


def test_a_choice_ignores_undefined_targets_and_candidates_missing_a_target():
    candidates = {"a": {"t1": {"ndcg": float("nan")}, "t2": {"ndcg": 0.9}, "t3": {"ndcg": 0.1}},
                  "b": {"t1": {"ndcg": 0.5}, "t2": {"ndcg": 0.5}, "t3": {"ndcg": 0.5}},
                  "partial": {"t2": {"ndcg": 1.0}}}
    assert oos.common_targets(candidates) == ["t2"]
    rows, chosen = oos.loto_select({k: v for k, v in candidates.items() if k != "partial"})
    assert chosen["t3"] == "a"  # on t1 and t2, a's mean is 0.9 (t1 undefined) against b's 0.5


def test_the_prior_never_reads_the_targets_own_row():
    complete = {("t", 0): {"base": 0.5, "a": 0.9, "b": 0.5},  # on t itself, a helps a lot
                ("u", 0): {"base": 0.5, "a": 0.5, "b": 0.6, "t": 0.5},  # elsewhere only b helps
                ("v", 0): {"base": 0.5, "a": 0.4, "b": 0.55, "t": 0.5}}
    prior = oos.prior_scorer(complete)("t", ["a", "b"], 0)
    assert prior["b"] > prior["a"] == 0.0  # a's gains are clipped at 0 on u and v; t's row is not read
    assert prior["b"] == pytest.approx((0.2 + 0.1) / 2)
    changed = dict(complete) | {("t", 0): {"base": 0.5, "a": 0.1, "b": 0.9}}
    assert oos.prior_scorer(changed)("t", ["a", "b"], 0) == prior


def test_the_strict_prior_reads_other_seeds_only():
    complete = {("u", 0): {"base": 0.5, "a": 0.8}, ("u", 1): {"base": 0.5, "a": 0.6}}
    assert oos.prior_scorer(complete, strict=True)("t", ["a"], 0)["a"] == pytest.approx(0.2)
    assert oos.prior_scorer(complete)("t", ["a"], 0)["a"] == pytest.approx((0.6 + 0.2) / 2)


def test_rank_average_mixes_ranks_not_scales():
    huge = lambda t, s, sd: {"a": 1e6, "b": 0.0, "c": -1e6}  # noqa: E731
    small = lambda t, s, sd: {"a": 0.0, "b": 0.001, "c": 0.002}  # noqa: E731
    mixed = oos.rank_average(huge, small, 0.5)("t", ["a", "b", "c"], 0)
    assert mixed == {"a": 2.0, "b": 2.0, "c": 2.0}  # opposite orders cancel whatever their scales
    assert oos.rank_average(huge, small, 1.0)("t", ["a", "b", "c"], 0) == {"a": 3.0, "b": 2.0, "c": 1.0}
    assert oos.rank_average(huge, lambda *_: None)("t", ["a"], 0) is None


def test_ensemble_averages_scores():
    one = lambda t, s, sd: {"a": 1.0, "b": 0.0}  # noqa: E731
    two = lambda t, s, sd: {"a": 0.0, "b": 0.5}  # noqa: E731
    assert oos.ensemble([one, two])("t", ["a", "b"], 0) == {"a": 0.5, "b": 0.25}


def test_normalised_places_random_at_zero_and_the_ceiling_at_one():
    assert oos.normalised(0.5, 0.5, 0.7) == 0.0 and oos.normalised(0.7, 0.5, 0.7) == 1.0
    assert oos.normalised(0.6, 0.5, 0.7) == pytest.approx(0.5)


def test_a_source_beats_base_only_beyond_two_binomial_se():
    per_seed = {("t", 0): {"base": 0.5, "a": 0.56, "b": 0.5}, ("t", 1): {"base": 0.5, "a": 0.54, "b": 0.5},
                ("u", 0): {"base": 0.5, "a": 0.52, "b": 0.5}}
    found = oos.sources_beating_base(per_seed, {"t": 1000, "u": 1000}, ["t", "u", "a", "b"])
    # SE = sqrt(0.25 / 1000) = 0.0158: t's best (a, +0.05) passes 2 SE; u's (+0.02) does not
    assert list(found) == ["t"] and found["t"]["best"] == "a" and found["t"]["seeds"] == 2
