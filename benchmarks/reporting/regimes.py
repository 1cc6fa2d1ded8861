"""Every choice made out of sample (leave-one-target-out) for one ground truth (a regime), and the pool comparison."""

from collections import defaultdict

import numpy as np

from .data import (
    BASELINES, DEFAULT_METHOD, FIRST_POOL, MAIN_STEP, SIMILARITIES, SMALL_ROWS, SOURCES, load_embeddings,
    old_sketch, seeds_of)
from .scoring import (
    DATASIZE, HYBRID, RANDOM, cross_scorer, datasize_scorer, embedding_scorer, evaluate_scorers,
    hybrid_scorer, memo, merged_evaluation, random_scorers, summarize)


def rankers(folders, steps, manifest):
    """Seed-0 scorers of every method that has a vector for all 16 classification tasks: label -> scorer."""
    found = {}
    for method in list(steps) + list(BASELINES):
        step = "final" if method in BASELINES else f"step-{MAIN_STEP if MAIN_STEP in steps[method] else steps[method][-1]}"
        embs = load_embeddings(method, 0, step)
        if all(t in embs for t in SOURCES):
            for sim in SIMILARITIES:
                found[f"{folders.get(method) or BASELINES[method]} [{method}], {sim}"] = embedding_scorer(method, step, 0, sim, embs)
    weights, text = load_embeddings(DEFAULT_METHOD, 0, f"step-{MAIN_STEP}"), load_embeddings("textemb", 0, "final")
    if all(t in weights and t in text for t in SOURCES):
        found[HYBRID] = hybrid_scorer(weights, text)
    found[DATASIZE] = datasize_scorer(manifest)
    return found


def pool_comparison(scorers, complete):
    """Each method ranking (a) only the first 10 tasks as sources and (b) all 15 others, on the same rows."""
    pools = {"core10": FIRST_POOL, "all 15": SOURCES}
    table = {}
    # each candidate makes its scorers afresh for each pool (the random orders draw from a new generator)
    candidates = [(label, lambda sc=scorer: [sc]) for label, scorer in scorers.items()] + [(RANDOM, random_scorers)]
    for label, make_scorers in candidates:
        runs = {name: merged_evaluation(make_scorers(), complete, pool) for name, pool in pools.items()}
        if all(runs.values()):
            table[label] = runs
    return table


# ---- out of sample: every choice made leave-one-target-out (helpers in out_of_sample.py) ----------------------
COMBINE_WEIGHTS = (0.25, 0.5, 0.75)  # weight of our similarity's rank; 0 and 1 (either ranker alone) are candidates too
OOS_KEYS = ("ndcg", "ndcg_peer_gain", "ndcg_shifted", "rho", "regret@1", "regret@3", "regret@5", "spearman")
ESM_LOGME, LOGME = "ESM-LogME (hf-dataset-selector)", "LogME of the fine-tuned source model"
PRIOR, PRIOR_STRICT = "source prior (mean gain on the other targets)", "source prior, other ground-truth seeds only"


def peer_results(complete, mean_rows) -> dict[str, dict]:
    """ESM-LogME and LogME (`peer_rankers.py`'s scores) scored like every other ranker; a target lacking the
    peer's score for any of its sources is left out (LogME covers only the targets it was run on)."""
    import peer_rankers

    if not peer_rankers.SCORES.is_file():
        return {}
    found = {}
    for method, label in ((m, peer_rankers.PEER_LABELS[m]) for m in peer_rankers.METHODS):
        m = evaluate_scorers([peer_rankers.peer_scorer(method, peer_rankers.ROWS)], complete, mean_rows, SOURCES)
        if m:
            found[label] = m | {"method": method, "similarity": None}
    return found


def regime_scores(complete, seed_rows, steps, test_rows, peers, random_row, ceiling_row, shipped, extra=None) -> dict:
    """Everything the out-of-sample sections need for one ground truth (a regime)."""
    import out_of_sample as oos

    return {"oos": out_of_sample(complete, steps, peers, extra), "random": random_row, "ceiling": ceiling_row,
            "shipped": shipped, "beats": oos.sources_beating_base(seed_rows, test_rows, SOURCES),
            "beats_by_noise": oos.sources_beating_base_by_seed_noise(seed_rows, SOURCES),
            "targets": len({t for t, _ in complete}), "rows": len(complete), "own_targets": own_targets(),
            "seeds": sorted({sd for _, sd in seed_rows}),
            "cells": {sd: sum(len(r) for (t, s), r in seed_rows.items() if s == sd) for sd in sorted({s for _, s in seed_rows})}}


def own_targets() -> list[str]:
    """Targets with a vector embedded from the small regime's rows (`<default method>-rows200`)."""
    return sorted(load_embeddings(f"{DEFAULT_METHOD}-rows{SMALL_ROWS}", 0, f"step-{MAIN_STEP}"))


def small_target_families() -> dict[str, dict[str, list]]:
    """The small regime's own ranker: BitFit sources (1,000 rows) against a target embedded from its 200 rows
    (`embed_tasks.py --train-examples 200`, folder `<method>-rows200`), when those target vectors exist."""
    folder = f"{DEFAULT_METHOD}-rows{SMALL_ROWS}"
    targets = load_embeddings(folder, 0, f"step-{MAIN_STEP}")
    if not targets:
        return {}
    sources = load_embeddings(DEFAULT_METHOD, 0, f"step-{MAIN_STEP}")
    return {f"ours, target embedded from its {SMALL_ROWS} rows ({DEFAULT_METHOD} step {MAIN_STEP}, seed 0): similarity":
            {f"{folder} target, {sim}": [cross_scorer(sources, targets, sim)] for sim in SIMILARITIES}}


def out_of_sample(complete, steps, fixed: dict[str, dict], extra: dict[str, dict[str, list]] | None = None) -> dict:
    """Families of rankers whose choices are made leave-one-target-out, and fixed rankers beside them.

    Args:
        complete: the scored ground-truth rows of a regime.
        steps: PEFT folder -> checkpoint steps embedded (`steps_of`).
        fixed: label -> an `evaluate_scorers` result on the same rows for rankers without choices (random, the
            noise ceiling, the peers).

        extra: more families, name -> {candidate label -> scorers (one per embedding seed)}.

    Returns:
        {"families": name -> {"rows", "chosen", "chosen_counts", "in_sample", "candidates", metric means},
        "fixed": label -> result, "configs": the embedding configurations, "all_candidates": label -> result}.
    """
    import out_of_sample as oos

    def evaluate(scorers):
        return evaluate_scorers(scorers, complete, None, SOURCES)

    n_targets = len({t for t, _ in complete})
    methods = [m for m in steps if not old_sketch(m)]  # the first, biased LoRA sketch is no longer an option

    def full(m):
        return m is not None and m["targets"] == n_targets

    configs = {}  # (method, step, similarity) -> result, every embedding seed merged
    for method in methods:
        for step in steps[method]:
            for sim in SIMILARITIES:
                m = evaluate([embedding_scorer(method, f"step-{step}", sd, sim) for sd in seeds_of(method)])
                if full(m):
                    configs[f"{method} step {step}, {sim}"] = m
    main = {label: m for label, m in configs.items() if f" step {MAIN_STEP}," in label}
    prior, strict = memo(oos.prior_scorer(complete)), oos.prior_scorer(complete, strict=True)
    fixed = dict(fixed) | {PRIOR: evaluate([prior]), PRIOR_STRICT: evaluate([strict])}
    ensembles = {}
    for method in methods:
        seeds = [sd for sd in seeds_of(method) if load_embeddings(method, sd, f"step-{MAIN_STEP}")]
        for sim in SIMILARITIES:
            if len(seeds) > 1 and full(m := evaluate([oos.ensemble([embedding_scorer(method, f"step-{MAIN_STEP}", sd, sim)
                                                                      for sd in seeds])])):
                ensembles[f"{method} step {MAIN_STEP}, {sim}, mean of {len(seeds)} seeds' similarities"] = m
    combos = _rank_averages(main, fixed, prior, evaluate, full)
    textemb = {f"textemb, {sim}": evaluate([embedding_scorer("textemb", "final", sd, sim) for sd in seeds_of("textemb")])
               for sim in SIMILARITIES}
    taskemb = {f"taskemb, {sim}": evaluate([embedding_scorer("taskemb", "final", sd, sim) for sd in seeds_of("taskemb")])
               for sim in SIMILARITIES}
    everything = dict(configs) | ensembles | {PRIOR: fixed[PRIOR]} | {
        k: v for c in combos.values() for k, v in c.items() if k != "ESM-LogME alone"}  # ours, alone or combined
    candidates = {
        "ours: an embedding (method, similarity, step; the mean-pooling head fixed earlier, in sample)": configs,
        "TextEmb (Vu et al. 2020): similarity": {k: v for k, v in textemb.items() if full(v)},
        "TaskEmb (Vu et al. 2020): similarity": {k: v for k, v in taskemb.items() if full(v)},
        "ours: mean similarity over embedding seeds (method, similarity)": ensembles,
        **{f"ours + {other}, rank average (method, similarity, weight)": c for other, c in combos.items()},
        "all the candidates above pooled (embeddings, seed means, the prior, rank averages)": everything,
        **{name: {label: m for label, scorers in cands.items() if full(m := evaluate(scorers))}
           for name, cands in (extra or {}).items()},
    }
    families = {}
    for name, cands in candidates.items():
        if not cands:
            continue
        rows_of = {label: m["rows"] for label, m in cands.items()}
        rows, chosen = oos.loto_select(rows_of)
        best = oos.in_sample_best(rows_of)
        counts = defaultdict(int)
        for label in chosen.values():
            counts[label] += 1
        families[name] = summarize(rows) | {"chosen": chosen, "chosen_counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
                                            "in_sample": {"label": best, **{k: cands[best][k] for k in OOS_KEYS}},
                                            "candidates": len(cands)}
    return {"families": families, "fixed": fixed, "configs": configs,
            "all_candidates": {label: m for cands in candidates.values() for label, m in cands.items()}}


def _rank_averages(main: dict, fixed: dict, prior, evaluate, full) -> dict[str, dict]:
    """Our step-100 embeddings' ranks averaged with the source prior's (and ESM-LogME's, when it scored every
    target) at each weight: other ranker -> {candidate label -> result}, the other ranker alone included."""
    import out_of_sample as oos

    combos = {}
    others = {"source prior": prior}
    if full(fixed.get(ESM_LOGME)):
        import peer_rankers

        others["ESM-LogME"] = memo(peer_rankers.peer_scorer("esm-logme", peer_rankers.ROWS))
    for other, other_scorer in others.items():
        combos[other] = {f"{other} alone": fixed[PRIOR if other == "source prior" else ESM_LOGME]} | dict(main)
        for label in main:
            method, rest = label.split(" step ")
            sim = rest.split(", ")[1]
            for w in COMBINE_WEIGHTS:
                m = evaluate([oos.rank_average(embedding_scorer(method, f"step-{MAIN_STEP}", sd, sim), other_scorer, w)
                              for sd in seeds_of(method)])
                if full(m):
                    combos[other][f"{label} ranks × {w} + {other} ranks × {1 - w}"] = m
    return combos


def normalised_scores(table: dict[str, dict], random_row: dict, ceiling_row: dict, key: str = "ndcg") -> dict[str, float]:
    """(NDCG − random) / (noise ceiling − random) of each result, all three averaged over the same targets: those
    where the noise ceiling is measured (a target with more than one ground-truth seed) and `key` is defined."""
    import out_of_sample as oos

    out = {}
    for label, m in table.items():
        shared = [t for t in ceiling_row["rows"] if t in m["rows"] and t in random_row["rows"]
                  and all(r["rows"][t][key] == r["rows"][t][key] for r in (m, random_row, ceiling_row))]
        if shared:
            mean = lambda r: float(np.mean([r["rows"][t][key] for t in shared]))  # noqa: E731
            out[label] = oos.normalised(mean(m), mean(random_row), mean(ceiling_row))
    return out


OURS, TEXTEMB_FAMILY, EVERYTHING = ("ours: an embedding (method, similarity, step; the mean-pooling head fixed earlier, in sample)",
                                    "TextEmb (Vu et al. 2020): similarity",
                                    "all the candidates above pooled (embeddings, seed means, the prior, rank averages)")
SHIPPED = (f"the previous default ({DEFAULT_METHOD} step {MAIN_STEP}, cosine; chosen on these targets earlier), "
           "expected over 2 embedding seeds")


def headline_pairs(families: dict, fixed: dict) -> list[tuple[str, str]]:
    """(a, b) pairs for the out-of-sample paired table: our choices against each baseline and peer."""
    every = (ESM_LOGME, LOGME, TEXTEMB_FAMILY, "TaskEmb (Vu et al. 2020): similarity")
    wanted = [(OURS, every), (EVERYTHING, (ESM_LOGME, TEXTEMB_FAMILY)), (SHIPPED, (ESM_LOGME, TEXTEMB_FAMILY)),
              (PRIOR, (ESM_LOGME,))] + [(f, (ESM_LOGME,)) for f in families if f.startswith("ours + ")] + [
        (f, (ESM_LOGME, TEXTEMB_FAMILY)) for f in families if f.startswith("ours, target embedded")]
    return [(a, b) for a, bs in wanted for b in bs if (a in families or a in fixed) and (b in families or b in fixed)]
