"""The report's steps, in order: load the ground truth, score every ranker, write RESULTS.md and the README blocks."""

import json
from collections import defaultdict

import torch
from _common import DATA_DIR, RESULTS

from taskemb_hub.embedding import TaskEmbedding

from .blocks import write_readme
from .data import (
    BASELINES, DEFAULT_METHOD, EMB, FIRST_POOL, MAIN_STEP, SIMILARITIES, SMALL_FILE, SMALL_ROWS, SOURCES,
    load_embeddings, load_matrix, load_runs, peft_folders, seeds_of, steps_of)
from .readme_benchmarks import benchmark_table
from .readme_compare import compare_block
from .readme_evidence import headline_block, readme_evidence
from .regimes import ESM_LOGME, LOGME, peer_results, pool_comparison, rankers, regime_scores, small_target_families
from .results_md import write_report
from .scoring import (
    CEILING, DATASIZE, HYBRID, RANDOM, _row_of, checkpoint_correlations, datasize_scorer, embedding_scorer,
    evaluate_method, evaluate_scorers, hybrid_scorer, merge_runs, other_seed_scorer, random_scorers)
from .sections import regime_sections, run_devices


def main():
    torch.set_num_threads(1)  # small matrix products: extra threads only spin on a shared machine
    runs = load_runs(RESULTS / "transfer_limited.jsonl")
    cells, complete, seed_rows, mean_rows = load_matrix(runs, SOURCES)
    index = [json.loads(l) for l in (EMB / "index.jsonl").read_text().splitlines()] if (EMB / "index.jsonl").is_file() else []
    manifest = json.loads((DATA_DIR / "manifest.json").read_text())

    results = {}  # label -> metrics averaged over embedding seeds, + NDCG spread over seeds

    def add(label, scorers, method=None, similarity=None, collapse=False):
        m = evaluate_scorers(scorers, complete, mean_rows, SOURCES, collapse)
        if m:
            results[label] = m | {"method": method, "similarity": similarity}

    folders = peft_folders()
    steps = {m: steps_of(m) for m in folders}
    steps = {m: s for m, s in steps.items() if s}
    for method, method_steps in steps.items():
        step = MAIN_STEP if MAIN_STEP in method_steps else method_steps[-1]
        for sim in SIMILARITIES:
            add(f"{folders[method]} [{method}] step {step}, {sim}",
                [embedding_scorer(method, f"step-{step}", sd, sim) for sd in seeds_of(method)], method, sim)
    from taskemb_hub.default_registry import default_registry_path

    packaged = {p.name: TaskEmbedding.load(p) for p in default_registry_path().iterdir() if p.is_dir()}
    for sim in SIMILARITIES:
        add(f"packaged default registry ({next(iter(packaged.values())).method}, mean head, step 100), {sim}",
            [embedding_scorer(None, None, None, sim, packaged)])
    for base, label in BASELINES.items():
        for sim in SIMILARITIES:
            add(f"{label} [{base}], {sim}", [embedding_scorer(base, "final", sd, sim) for sd in seeds_of(base)], base, sim)
    # exploratory: does the text block add what the weight block misses? (sum of the two centred cosines =
    # centred-cosine of the concatenated unit vectors, up to a constant)
    text = load_embeddings("textemb", 0, "final")
    add(HYBRID, [hybrid_scorer(load_embeddings(DEFAULT_METHOD, sd, f"step-{MAIN_STEP}"), text)
                 for sd in seeds_of(DEFAULT_METHOD)], f"{DEFAULT_METHOD}+textemb", "centered")
    add(DATASIZE, [datasize_scorer(manifest)])
    add("measured transfer at the other ground-truth seeds (noise ceiling)", [other_seed_scorer(complete)])
    add(RANDOM, random_scorers(), collapse=True)
    results |= peer_results(complete, mean_rows)

    pools = pool_comparison(rankers(folders, steps, manifest), complete)
    test_rows = {t: min(manifest[t]["sizes"]["test"], 1000) for t in SOURCES}
    regimes = {"limited": regime_scores(complete, seed_rows, steps, test_rows,
                                        {k: results[k] for k in (ESM_LOGME, LOGME) if k in results},
                                        results[RANDOM], results[CEILING], _row_of(results, DEFAULT_METHOD, "cosine")[1])}
    small = small_regime(steps, test_rows)
    if small is not None:
        regimes["small"] = small
    curve, curve_targets, points = checkpoint_curve(steps, complete)

    headline, headline_figures = regime_sections(regimes)
    compare, compare_figures = compare_block(results, headline_figures)
    headline += ["## Side by side with hf-dataset-selector", "",
                 "ESM-LogME and LogME: `benchmarks/peer_rankers.py` (hfselect's own ESM trainer and LogME on the ground "
                 "truth's seed-0 source models, recreated with the runner's `source_body`; its `check` command compares the "
                 "pipeline with hfselect's `compute_scores`, `results/peer_check.json`).", "", compare]
    write_report(cells, complete, seed_rows, mean_rows, run_devices(runs), results, list(steps), curve, points, index,
                 test_rows, curve_targets, pools, headline)
    bench, bench_figures = benchmark_table()
    evidence, evidence_figures = readme_evidence(results, curve, curve_targets, checkpoint_correlations(points), pools, runs)
    evidence = headline_block(headline_figures) + evidence
    write_readme({"benchmarks": bench, "evidence": evidence, "compare": compare},
                 {"benchmarks": bench_figures, "evidence": evidence_figures, "compare": compare_figures,
                  "headline": headline_figures})


def small_regime(steps, test_rows) -> dict | None:
    """The small regime's out-of-sample scores (200 target rows), None when its ground truth is not measured."""
    small = RESULTS / SMALL_FILE
    if not small.is_file():
        return None
    small_runs = [r for r in load_runs(small) if r.get("recipe", {}).get("target_train_examples") == SMALL_ROWS]
    _, s_complete, s_seed_rows, s_mean = load_matrix(small_runs, SOURCES)
    return regime_scores(s_complete, s_seed_rows, steps, test_rows, peer_results(s_complete, s_mean),
                         evaluate_scorers(random_scorers(), s_complete, None, SOURCES, collapse=True),
                         evaluate_scorers([other_seed_scorer(s_complete)], s_complete, None, SOURCES),
                         evaluate_scorers([embedding_scorer(DEFAULT_METHOD, f"step-{MAIN_STEP}", sd, "cosine")
                                           for sd in seeds_of(DEFAULT_METHOD)], s_complete, None, SOURCES),
                         small_target_families())


def checkpoint_curve(steps, complete):
    """NDCG by checkpoint and the in-task metric vs ranking quality, on the first 10 tasks as sources and targets: the
    200- and 500-step schedules were run for those 10 only, and every row is then scored alike.

    Returns:
        curve (method -> step -> NDCG), curve_targets (method -> targets its curve is scored on: rows differ, compare
        within a row) and points (method -> (in-task metric, NDCG, target)).
    """
    first_rows = {k: v for k, v in complete.items() if k[0] in FIRST_POOL}
    curve = defaultdict(dict)
    curve_targets = {}  # method -> targets its curve is scored on (rows differ: compare within a row)
    points = defaultdict(list)  # method -> (in-task metric, NDCG, target)
    for method, method_steps in steps.items():
        for step in method_steps:
            per_seed = []
            for sd in seeds_of(method):
                embs = load_embeddings(method, sd, f"step-{step}")
                m = evaluate_method(embedding_scorer(method, f"step-{step}", sd, "cosine", embs), first_rows, FIRST_POOL)
                if not m:
                    continue
                per_seed.append(m)
                points[method] += [(next(iter(embs[t].metrics.values())), r["ndcg"], t)
                                   for t, r in m["rows"].items() if embs[t].metrics]
            if per_seed:
                merged = merge_runs(per_seed)
                curve[method][step] = merged["ndcg"]
                curve_targets[method] = merged["targets"]
    return curve, curve_targets, points
