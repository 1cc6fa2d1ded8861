"""Does the ranking depend on the target? Hubness measures and remedies, chosen leave-one-target-out (issue 19).

    python benchmarks/target_dependence.py          # writes results/target_dependence.json and readme_target_dependence.md

A ranker that gives (nearly) the same order whatever the target is a *hub order*: it can score well where one
family of sources helps everywhere, and it predicts nothing elsewhere. For every ranker this measures, on the 16
registry targets ranked leave-one-out over the other 15:

- **Spearman with its own target-independent order**: per target t, the Spearman between the ranker's scores of
  the sources and the mean score each source gets from the *other* targets (t never read), averaged over targets.
  For the plain cosine that order is each source's mean cosine to the other registry entries.
- **top-3 k-occurrence**: how many of the 16 top-3 lists each source appears in; the maximum is reported.
- **own family in the top 3**: task families are named from the tasks' descriptions in `task.json` (FAMILIES,
  written before any ranking was looked at); the share of targets with a relative whose top 3 holds one.
- **NDCG** (relative gain, report.py's metric) overall, on the 4 sentiment targets and on the 12 others, with the
  paired difference to the random order (mean over random permutations; tied scores are broken at random and
  averaged, never by name).

Remedies tried (all computed from the registry alone, so they run at ranking time; `taskemb_hub.ranking.similarity`):
centring on the registry mean, projecting out the registry's top principal components, per-dimension
standardisation, CSLS-style local scaling, per-source score standardisation (hub correction), and a fusion with
TextEmb. The shipped similarity is chosen leave-one-target-out on both regimes; see `choose()`.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from _common import RESULTS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting.blocks import README, replace_block  # noqa: E402
from reporting.data import load_embeddings, load_matrix, load_runs  # noqa: E402

from _dependence_metrics import (  # noqa: E402
    FAMILIES, FUSION_WEIGHTS, PEER_LEAK_SEED, SENTIMENT, TASKS, dependence, leave_two_out_orders, loto, paired,
    random_ndcg, split, target_ndcg, target_rho)
from _dependence_tables import (  # noqa: E402
    chosen_table, goal_lines, leak_free_table, null_and_ranker_lines, outside_lines, print_summary, regime_tables)

from taskemb_hub.ranking.rankers import TEXT_SIMILARITY, fuse, text_ranking  # noqa: E402
from taskemb_hub.ranking.selector import SIMILARITIES, AutoSourceSelector  # noqa: E402
from taskemb_hub.ranking.similarity import SIMILARITY_FUNCTIONS  # noqa: E402

EMBEDDING_SEEDS = (0, 1)
PACKAGED_SEED = 0  # the packaged registry holds the seed-0 vectors
FUSED_SIMILARITIES = ("centered", "pcr-1", "pcr-2")  # BitFit similarities fused with TextEmb (centred)
NULL_SIMILARITIES = ("cosine", "centered", "pcr-1")
SCORERS: dict[str, dict] = {}  # regime -> label -> (seed -> scorer | scorer); scorer(also_exclude=task) re-ranks without it
REGIMES: dict[str, dict] = {}  # regime -> the scored ground-truth rows
SCORES: dict[str, dict[str, dict]] = {}  # regime -> label -> seed-0 scores (target -> {source: score})


# ---- scores ----------------------------------------------------------------------------------------------------
def vectors(method: str, seed: int, step: str) -> dict[str, np.ndarray]:
    return {t: e.vector.double().numpy() for t, e in load_embeddings(method, seed, step).items()}


def selector_for(method: str, seed: int, step: str = "step-100", text: str | None = "textemb") -> AutoSourceSelector:
    """The product's selector over the benchmark's vectors (all 16 tasks), with TextEmb vectors attached."""
    selector = AutoSourceSelector.from_embeddings(list(load_embeddings(method, seed, step).values()))
    if text:
        selector.text_selector = AutoSourceSelector.from_embeddings(list(load_embeddings(text, 0, "final").values()),
                                                                    similarity=TEXT_SIMILARITY)
    return selector


def product_scores(selector: AutoSourceSelector, similarity: str, *, weight: float | None = None,
                   targets: dict | None = None, text_targets: dict | None = None,
                   also_exclude: str | None = None) -> dict[str, dict[str, float]]:
    """target -> {source: score} as `AutoSourceSelector.rank` gives them, every target left out of the registry.

    `weight`: fuse with TextEmb at this weight (`rankers.fuse`), else the PEFT similarity alone. `targets` /
    `text_targets`: the targets' own vectors when they differ from their registry entries (the small regime's
    200-row targets); by default each target is its registry entry, ranked leave-one-out."""
    out = {}
    for task in TASKS:
        if (targets is not None and task not in targets) or task == also_exclude:
            continue
        target = (targets or {}).get(task, task)
        text_target = (text_targets or {}).get(task, task)
        exclude = {task} | ({also_exclude} if also_exclude else set())
        peft = selector.rank(target, similarity=similarity, exclude=exclude, ranker="peft")
        ranking = peft if weight is None else fuse(peft, text_ranking(selector, text_target, exclude=exclude), None, weight)
        out[task] = {r["task"]: r["score"] for r in ranking.rows}
    return out


def numpy_scores(vecs: dict[str, np.ndarray], similarity: str, targets: dict | None = None,
                 also_exclude: str | None = None) -> dict[str, dict[str, float]]:
    """The research-only similarities of `taskemb_hub.ranking.similarity` (not offered by the selector), leave-one-out."""
    out = {}
    for target in TASKS:
        if target == also_exclude:
            continue
        sources = [t for t in TASKS if t not in (target, also_exclude) and t in vecs]
        query = (targets or vecs).get(target)
        if query is None:
            continue
        matrix = np.stack([vecs[s] for s in sources])
        out[target] = dict(zip(sources, map(float, SIMILARITY_FUNCTIONS[similarity](query, matrix))))
    return out


def peer_scores(method: str) -> dict[str, dict[str, float]]:
    out = defaultdict(dict)
    for line in (RESULTS / "peer_scores.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["method"] == method:
            out[r["target"]][r["source"]] = float(r["score"])
    return {t: s for t, s in out.items() if len(s) == len(TASKS) - 1}


# ---- choosing out of sample -------------------------------------------------------------------------------------
def joint_choice(results) -> dict:
    """One choice for both regimes, made leave-one-target-out: for each target, the candidate with the best NDCG
    on the other targets averaged over the two regimes; the target is then scored with it in each regime.
    `similarities`: the BitFit similarities alone (what `AutoSourceSelector` can ship without TextEmb vectors);
    `all`: fusions with TextEmb too."""
    regimes = results["regimes"]
    out = {}
    for pool_name, keep in (("similarities", lambda c: c.startswith("bitfit")),
                            ("all", lambda c: c.startswith(("bitfit", "fusion")))):
        labels = [c for c in regimes["limited"]["rows"] if keep(c) and c in regimes["small"]["rows"] and "null" not in c]
        by = {c: {t: np.mean([regimes[r]["rows"][c]["ndcg_by_target"][t] for r in regimes]) for t in TASKS} for c in labels}
        chosen = {}
        for target in TASKS:
            others = [t for t in TASKS if t != target]
            chosen[target] = max(labels, key=lambda c: (np.mean([by[c][t] for t in others]), c))
        entry = {"chosen": chosen, "in_sample_best": max(labels, key=lambda c: (np.mean(list(by[c].values())), c))}
        for r in regimes:
            nd = {t: regimes[r]["rows"][chosen[t]]["ndcg_by_target"][t] for t in TASKS}
            rand = {t: regimes[r]["rows"]["random"]["ndcg_by_target"][t] for t in TASKS}
            mixed = {t: SCORES[r][chosen[t]][t] for t in TASKS}  # seed-0 scores of the candidate chosen per target
            fixed = {t: leave_two_out_orders(SCORERS[r][chosen[t]][PACKAGED_SEED], {t: mixed[t]})[t] for t in TASKS}
            dep = dependence(mixed, fixed_orders=fixed)
            entry[r] = {"ndcg": split(nd), "ndcg_by_target": nd,
                        "vs_random_other": paired(nd, rand, sorted(set(TASKS) - SENTIMENT)),
                        "vs_previous_default": paired(nd, regimes[r]["rows"]["bitfit cosine"]["ndcg_by_target"]),
                        "spearman_fixed": dep["spearman_fixed"], "spearman_fixed_abs": dep["spearman_fixed_abs"],
                        "top3_max": dep["top3_max"],
                        "top3_most": dep["top3_most"], "family_top3": dep["family_top3"],
                        "family_targets": dep["family_targets"]}
        out[pool_name] = entry
    return out


def main():
    limited_runs = load_runs(RESULTS / "transfer_limited.jsonl")
    _, complete, _, _ = load_matrix(limited_runs, TASKS)
    _, small, _, _ = load_matrix(load_runs(RESULTS / "transfer_small.jsonl"), TASKS)
    regimes = {"limited": complete, "small": small}
    REGIMES.update(regimes)

    limited_scorers, small_scorers, single_scorers, small_single_scorers, text200 = build_scorers()
    SCORERS.update(limited=limited_scorers | single_scorers, small=small_scorers | small_single_scorers)
    candidates = {label: {sd: f() for sd, f in by.items()} for label, by in limited_scorers.items()}
    small_candidates = {label: {sd: f() for sd, f in by.items()} for label, by in small_scorers.items()}
    single = {label: f() for label, f in single_scorers.items()}
    single |= {"ESM-LogME": peer_scores("esm-logme"), "LogME": peer_scores("logme")}
    small_single = {label: f() for label, f in small_single_scorers.items()}
    small_single |= {"ESM-LogME": single["ESM-LogME"], "LogME": single["LogME"]}

    default_fixed = {sd: candidates["bitfit cosine"][sd] for sd in EMBEDDING_SEEDS}
    results = {"families": FAMILIES, "regimes": {},
               "small_textemb_rows": 200 if text200 else 1000}
    for regime, gt in regimes.items():
        results["regimes"][regime] = score_regime(
            regime, gt, candidates if regime == "limited" else small_candidates,
            single if regime == "limited" else small_single, default_fixed)
    results["joint"] = joint_choice(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "target_dependence.json").write_text(json.dumps(results, indent=1, default=float))
    print_summary(results)
    write_readme_block(results)


def build_scorers():
    """Every candidate's scorers: label -> {embedding seed -> scorer(also_exclude) -> target -> {source: score}}.

    Returns:
        limited, small, single (TextEmb, limited regime) and small single scorers, and the 200-row TextEmb
        target vectors ({} when not computed).
    """
    # candidates: label -> {embedding seed -> target -> {source: score}}; the selector's own options are scored
    # through AutoSourceSelector.rank (the path users run), the research-only ones through taskemb_hub.ranking.similarity
    selectors = {sd: selector_for("bitfit+mean", sd) for sd in EMBEDDING_SEEDS}
    bitfit = {sd: vectors("bitfit+mean", sd, "step-100") for sd in EMBEDDING_SEEDS}
    small_targets = {sd: load_embeddings("bitfit+mean-rows200", sd, "step-100") for sd in EMBEDDING_SEEDS}
    small_targets = {sd: v for sd, v in small_targets.items() if v}
    text200 = load_embeddings("textemb-rows200", 0, "final") if (RESULTS / "embeddings" / "textemb-rows200").is_dir() else {}
    textemb_selector = selector_for("textemb", 0, "final", text=None)
    # scorers: label -> {embedding seed -> scorer(also_exclude) -> target -> {source: score}}
    from functools import partial

    limited_scorers: dict[str, dict[int, object]] = {}
    small_scorers: dict[str, dict[int, object]] = {}
    small_vecs = {sd: {t: e.vector.double().numpy() for t, e in v.items()} for sd, v in small_targets.items()}
    for sim in SIMILARITY_FUNCTIONS:
        if sim in SIMILARITIES:
            limited_scorers[f"bitfit {sim}"] = {sd: partial(product_scores, selectors[sd], sim) for sd in EMBEDDING_SEEDS}
            small_scorers[f"bitfit {sim}"] = {sd: partial(product_scores, selectors[sd], sim, targets=small_targets[sd])
                                              for sd in small_targets}
        else:
            limited_scorers[f"bitfit {sim}"] = {sd: partial(numpy_scores, bitfit[sd], sim) for sd in EMBEDDING_SEEDS}
            small_scorers[f"bitfit {sim}"] = {sd: partial(numpy_scores, bitfit[sd], sim, targets=small_vecs[sd])
                                              for sd in small_targets}
    for sim in FUSED_SIMILARITIES:
        for w in FUSION_WEIGHTS:
            label = f"fusion: bitfit {sim} + {w:g} x textemb centered"
            limited_scorers[label] = {sd: partial(product_scores, selectors[sd], sim, weight=w) for sd in EMBEDDING_SEEDS}
            small_scorers[label] = {sd: partial(product_scores, selectors[sd], sim, weight=w, targets=small_targets[sd],
                                                text_targets=text200 or None) for sd in small_targets}
    null = vectors("bitfit+mean-null", PACKAGED_SEED, "step-100")
    if len(null) == len(TASKS):  # the null-task control: what is left after the shuffled-label run's update
        residual = {t: bitfit[PACKAGED_SEED][t] - null[t] for t in TASKS}
        for sim in NULL_SIMILARITIES:
            limited_scorers[f"bitfit null-subtracted {sim}"] = {PACKAGED_SEED: partial(numpy_scores, residual, sim)}
    single_scorers = {f"textemb {sim}": partial(product_scores, textemb_selector, sim) for sim in ("cosine", "centered")}
    small_single_scorers = dict(single_scorers)
    if text200:  # the small regime's targets read only their 200 rows
        small_single_scorers |= {f"textemb {sim}": partial(product_scores, textemb_selector, sim, targets=text200)
                                 for sim in ("cosine", "centered")}
    return limited_scorers, small_scorers, single_scorers, small_single_scorers, text200


def score_regime(regime: str, gt: dict, cands: dict, singles: dict, default_fixed: dict) -> dict:
    """Every candidate's row in one regime, the random order, and the choices made leave-one-target-out."""
    seeds_all = sorted({sd for _, sd in gt})
    leak_free = [sd for sd in seeds_all if sd != PEER_LEAK_SEED]
    rand = random_ndcg(gt)
    rand_lf = random_ndcg(gt, leak_free)
    rows = {}
    for label, by_seed in cands.items():
        if not by_seed:
            continue
        rows[label] = candidate_row(regime, label, by_seed, gt, rand, leak_free, default_fixed)
    for label, sc in singles.items():
        rows[label] = single_row(regime, label, sc, gt, rand, rand_lf, leak_free, default_fixed)
    rows["random"] = {"ndcg_by_target": rand, "ndcg": split(rand), "leak_free_by_target": rand_lf}
    out = {"random": split(rand), "random_leak_free": split(rand_lf), "seeds": seeds_all,
           "leak_free_seeds": leak_free, "rows": rows}
    # choices out of sample: best NDCG on the other targets, among the bitfit candidates (fusions included)
    embedding_labels = [c for c in rows if c.startswith(("bitfit", "fusion")) and "null" not in c]
    chosen_nd, chosen = loto({c: rows[c]["ndcg_by_target"] for c in embedding_labels})
    if regime == "limited" and any("null" in c for c in rows):  # seed-0 vectors: the only seed with a null run
        seed0 = {c: rows[c]["ndcg_by_target_seed0"] for c in rows if c.startswith(("bitfit", "fusion"))}
        with_null, chosen_null = loto(seed0)
        without, _ = loto({c: v for c, v in seed0.items() if "null" not in c})
        out["loto_seed0_with_null"] = {
            "ndcg": split(with_null), "without_null": split(without), "chosen": chosen_null,
            "vs_without_null": paired(with_null, without)}
    out["loto_all"] = {"ndcg": split(chosen_nd), "chosen": chosen,
                       "vs_random_other": paired(chosen_nd, rand, sorted(set(chosen_nd) - SENTIMENT))}
    return out


def candidate_row(regime: str, label: str, by_seed: dict, gt: dict, rand: dict, leak_free: list,
                  default_fixed: dict) -> dict:
    """One embedding candidate's row (every embedding seed) in a regime; its seed-0 scores kept in SCORES."""
    per_seed = {sd: target_ndcg(sc, gt) for sd, sc in by_seed.items()}
    mean_nd = {t: float(np.mean([per_seed[sd][t] for sd in per_seed])) for t in per_seed[PACKAGED_SEED]}
    by_seed = {sd: by_seed[sd] for sd in per_seed}
    scorers = SCORERS[regime][label]
    dep = {sd: dependence(sc, fixed_orders=leave_two_out_orders(scorers[sd], sc)) for sd, sc in by_seed.items()}
    dep_default = {sd: dependence(sc, default_fixed[sd]) for sd, sc in by_seed.items()}
    row = {
        "ndcg_by_target": mean_nd, "ndcg_by_target_seed0": per_seed[PACKAGED_SEED],
        "ndcg": split(mean_nd), "ndcg_seed0": split(per_seed[PACKAGED_SEED]),
        "ndcg_leak_free_seeds": split({t: np.mean([target_ndcg(sc, gt, leak_free)[t] for sc in by_seed.values()])
                                       for t in mean_nd}),
        "rho": float(np.mean([np.mean(list(target_rho(sc, gt).values())) for sc in by_seed.values()])),
        "vs_random": paired(mean_nd, rand), "vs_random_other": paired(mean_nd, rand, sorted(set(mean_nd) - SENTIMENT)),
        "spearman_fixed": float(np.mean([d["spearman_fixed"] for d in dep.values()])),
        "spearman_fixed_abs": float(np.mean([d["spearman_fixed_abs"] for d in dep.values()])),
        "spearman_default_fixed": float(np.mean([d["spearman_fixed"] for d in dep_default.values()])),
        "top3_max": float(np.mean([d["top3_max"] for d in dep.values()])),
        "top3_max_seed0": dep[PACKAGED_SEED]["top3_max"], "top3_most_seed0": dep[PACKAGED_SEED]["top3_most"],
        "family_top3": float(np.mean([d["family_top3"] for d in dep.values()])),
        "family_targets": dep[PACKAGED_SEED]["family_targets"],
        "seeds": len(by_seed), "dependence_seed0": dep[PACKAGED_SEED],
        "vs_random_other_seed0": paired(per_seed[PACKAGED_SEED], rand, sorted(set(mean_nd) - SENTIMENT)),
        "leak_free_by_target": {t: float(np.mean([target_ndcg(sc, gt, leak_free)[t] for sc in by_seed.values()]))
                                for t in mean_nd},
    }
    SCORES.setdefault(regime, {})[label] = by_seed[PACKAGED_SEED]
    return row


def single_row(regime: str, label: str, sc: dict, gt: dict, rand: dict, rand_lf: dict, leak_free: list,
               default_fixed: dict) -> dict:
    """One single-run ranker's row (TextEmb, the peers) in a regime; its scores kept in SCORES."""
    nd = target_ndcg(sc, gt)
    scorer = SCORERS[regime].get(label)  # the peers' scores do not depend on the registry: no re-ranking
    dep = dependence(sc, fixed_orders=leave_two_out_orders(scorer, sc) if scorer else None)
    row = {"ndcg_by_target": nd, "ndcg": split(nd), "ndcg_leak_free_seeds": split(target_ndcg(sc, gt, leak_free)),
           "rho": float(np.mean(list(target_rho(sc, gt).values()))),
           "vs_random": paired(nd, rand), "vs_random_other": paired(nd, rand, sorted(set(nd) - SENTIMENT)),
           "spearman_fixed": dep["spearman_fixed"], "spearman_fixed_abs": dep["spearman_fixed_abs"],
           "spearman_default_fixed": dependence(sc, default_fixed[PACKAGED_SEED])["spearman_fixed"],
           "top3_max": dep["top3_max"], "top3_most_seed0": dep["top3_most"],
           "family_top3": dep["family_top3"], "family_targets": dep["family_targets"], "seeds": 1,
           "dependence_seed0": dep, "leak_free_by_target": target_ndcg(sc, gt, leak_free)}
    SCORES.setdefault(regime, {})[label] = sc
    if label in ("ESM-LogME", "LogME"):
        lf = target_ndcg(sc, gt, leak_free)
        row["leak_free"] = {"seeds": leak_free, "ndcg": split(lf), "vs_random": paired(lf, rand_lf),
                            "leaked_seed": split(target_ndcg(sc, gt, [PEER_LEAK_SEED]))}
    return row


SNIPPET = RESULTS / "readme_dependence.md"








def write_readme_block(results: dict) -> None:
    """results/readme_dependence.md and the README's `dependence` block."""
    out = (regime_tables(results) + chosen_table(results) + null_and_ranker_lines(results)
           + leak_free_table(results, SCORES, REGIMES) + outside_lines() + goal_lines(results))
    SNIPPET.write_text("\n".join(out) + "\n")
    readme = README.read_text()
    README.write_text(replace_block(readme, "dependence", SNIPPET.read_text()))


if __name__ == "__main__":
    main()
