"""Generate benchmarks/RESULTS.md (+ PNG plots) from the measured transfer matrix and the embeddings.

    python benchmarks/report.py

Inputs: `results/transfer_limited.jsonl` (ground truth), `results/embeddings/` (embed_tasks.py)
and `results/target_embedding_cost.json` (target_embedding_cost.py). The sources are the `core10`
tasks; the targets are those 10 plus any other classification task measured from them. A target
row is scored once it has its base run and at least MIN_SOURCES measured sources; rankings are
then over the measured sources only, and the report lists every missing cell. A second section
ranks a wider pool, every other classification task of the suite as a source, on the target rows
where all 15 of them are measured.
"""

import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from _common import DATA_DIR, RESULTS

from taskemb_hub.default_registry import DEFAULT_METHOD as PACKAGED_METHOD
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.ranking_metrics import evaluate_ranking, nanmean
from taskemb_hub.selector import _scores
from taskemb_hub.transfer import BASE, TASK_SETS

HERE = Path(__file__).resolve().parent
EMB = RESULTS / "embeddings"
MIN_SOURCES = 4
MAIN_STEP = 100  # the step every PEFT method is compared at (the packaged registry's step)
SIMILARITIES = ("cosine", "centered")
# folder under results/embeddings -> what it is. "+mean": the task head reads the mean of the token
# states (TuningConfig.head_pooling="mean", the default); "lora" alone: the CLS-pooler head.
PEFT = {
    "lora+mean": "LoRA (ΔW sketch)",
    "bitfit+mean": "BitFit (BEFT bias)",
    "ia3+mean": "IA3 (l − 1)",
    "prompt+mean": "prompt tuning (mean of tuned − init)",
    "spot+mean": "SPoT-style (mean of the raw tuned prompt)",
    "prefix+mean": "prefix tuning (mean of tuned − init)",
    "lora": "LoRA, CLS-pooler head",
    "lora-cls-step100of100": "LoRA, CLS-pooler head, first packaged registry",
}
BASELINES = {"textemb": "TextEmb (Vu et al. 2020)", "taskemb": "TaskEmb, Fisher (Vu et al. 2020)"}
DEFAULT_METHOD = f"{PACKAGED_METHOD}+mean"  # the packaged registry's recipe (mean-pooling head)
HEATMAP_METHODS = (DEFAULT_METHOD, "textemb")
WIDE = TASK_SETS["classification16"]  # the wider source pool: every classification task of the suite


def load_matrix(path: Path, tasks: list[str]):
    """The measured runs from `tasks` (the sources); targets = those tasks, then any other classification
    task of the suite measured from them."""
    runs = [json.loads(line) for line in path.read_text().splitlines()]
    measured = {r["target"] for r in runs}
    targets = tasks + [t for t in TASK_SETS["classification16"] if t not in tasks and t in measured]
    cells = defaultdict(list)  # (source, target) -> scores over seeds
    per_seed = defaultdict(dict)  # (target, seed) -> {source: score}
    for r in runs:
        if r["target"] in targets and (r["source"] in tasks or r["source"] == BASE):
            cells[(r["source"], r["target"])].append(r["score"])
            per_seed[(r["target"], r["seed"])][r["source"]] = r["score"]
    complete = {k: v for k, v in sorted(per_seed.items()) if BASE in v and len(v) - 1 >= MIN_SOURCES
                # a row where every source scored the same (e.g. all stuck at the majority class) ranks nothing
                and len({round(x, 6) for s, x in v.items() if s != BASE}) > 1}
    return targets, cells, complete, per_seed


def load_embeddings(method: str, seed: int, step: str) -> dict[str, TaskEmbedding]:
    return {f.parts[-3]: TaskEmbedding.load(f) for f in sorted((EMB / method).glob(f"*/seed{seed}/{step}"))}


def steps_of(method: str) -> list[int]:
    return sorted({int(p.name.split("-")[1]) for p in (EMB / method).glob("*/seed*/step-*")})


def seeds_of(method: str) -> list[int]:
    return sorted({int(p.name[4:]) for p in (EMB / method).glob("*/seed*")})


def score_sources(embs: dict, target: str, sources: list[str], similarity: str) -> dict[str, float] | None:
    if target not in embs or any(s not in embs for s in sources):
        return None
    matrix = torch.stack([embs[s].vector for s in sources]).double()
    scores = _scores(embs[target].vector.double(), matrix, (matrix ** 2).sum(1), similarity)
    return dict(zip(sources, scores.tolist()))


def evaluate_method(scorer, complete, tasks) -> dict | None:
    """Metrics averaged over ground-truth seeds within a target, then over targets (each target counts once)."""
    rows = defaultdict(list)  # target -> metrics of each scored seed
    for (target, seed), row in complete.items():
        sources = [t for t in tasks if t != target and t in row]
        scores = scorer(target, sources, seed)
        if scores is None:
            continue
        transfer = {s: row[s] for s in sources}
        m = evaluate_ranking(scores, transfer, row[BASE], k=3)
        m["ndcg_shifted"] = evaluate_ranking(scores, transfer, row[BASE], gain_kind="shifted")["ndcg"]
        rows[target].append(m)
    if not rows:
        return None
    keys = next(iter(rows.values()))[0]
    return summarize({t: {k: nanmean([m[k] for m in ms]) for k in keys} for t, ms in sorted(rows.items())})


def summarize(per_target: dict[str, dict]) -> dict:
    """Means over targets of per-target metrics, kept beside the per-target values they come from."""
    keys = next(iter(per_target.values()))
    return {k: nanmean([m[k] for m in per_target.values()]) for k in keys} | {"targets": len(per_target), "rows": per_target}


def merge_runs(runs: list[dict]) -> dict:
    """Several runs (embedding seeds, random orders) -> one: each target averaged over the runs that scored
    it, then the targets averaged, so a target that only some runs cover still counts once."""
    targets = sorted({t for r in runs for t in r["rows"]})
    keys = next(iter(runs[0]["rows"].values()))
    return summarize({t: {k: nanmean([r["rows"][t][k] for r in runs if t in r["rows"]]) for k in keys} for t in targets})


def seed_spread(runs: list[dict]) -> float:
    """NDCG spread over runs, on the targets every run scored (so the spread is not a change of targets)."""
    common = set.intersection(*(set(r["rows"]) for r in runs))
    if len(runs) < 2 or not common:
        return float("nan")
    return statistics.pstdev([nanmean([r["rows"][t]["ndcg"] for t in common]) for r in runs])


def other_seed_scorer(complete):
    """Rank by the measured transfer of another ground-truth seed: the ceiling that run-to-run noise allows."""
    def scorer(target, sources, seed):
        others = [row for (t, sd), row in complete.items() if t == target and sd != seed]
        if not others or any(s not in others[0] for s in sources):
            return None
        return {s: others[0][s] for s in sources}
    return scorer


def peft_folders() -> dict[str, str]:
    """PEFT embedding folders present -> label; `<method>@<n>` is that method on an n-step schedule."""
    found = {}
    for method, label in PEFT.items():
        if (EMB / method).is_dir():
            found[method] = label
        for folder in sorted(EMB.glob(f"{method}@*")):
            found[folder.name] = f"{label}, {folder.name.split('@')[1]}-step schedule"
    return found


def embedding_scorer(method, step, seed, similarity, embs=None):
    embs = load_embeddings(method, seed, step) if embs is None else embs
    return lambda target, sources, _seed: score_sources(embs, target, sources, similarity)


def hybrid_scorer(weights: dict, text: dict):
    def scorer(target, sources, _seed):
        a, b = score_sources(weights, target, sources, "centered"), score_sources(text, target, sources, "centered")
        return None if a is None or b is None else {s: a[s] + b[s] for s in sources}
    return scorer


def main():
    tasks = TASK_SETS["core10"]  # the sources
    targets, cells, complete, seed_rows = load_matrix(RESULTS / "transfer_limited.jsonl", tasks)
    index = [json.loads(l) for l in (EMB / "index.jsonl").read_text().splitlines()] if (EMB / "index.jsonl").is_file() else []
    manifest = json.loads((DATA_DIR / "manifest.json").read_text())

    results = {}  # label -> metrics averaged over embedding seeds, + NDCG spread over seeds

    def add(label, per_seed, method=None, similarity=None):
        per_seed = [m for m in per_seed if m]
        if not per_seed:
            return
        results[label] = merge_runs(per_seed) | {"method": method, "similarity": similarity,
                                                 "ndcg_sd": seed_spread(per_seed), "seeds": len(per_seed)}

    folders = peft_folders()
    steps = {m: steps_of(m) for m in folders}
    steps = {m: s for m, s in steps.items() if s}
    for method, method_steps in steps.items():
        step = MAIN_STEP if MAIN_STEP in method_steps else method_steps[-1]
        for sim in SIMILARITIES:
            add(f"{folders[method]} [{method}] step {step}, {sim}",
                [evaluate_method(embedding_scorer(method, f"step-{step}", sd, sim), complete, tasks) for sd in seeds_of(method)],
                method, sim)
    from taskemb_hub.default_registry import default_registry_path

    packaged = {p.name: TaskEmbedding.load(p) for p in default_registry_path().iterdir() if p.is_dir()}
    for sim in SIMILARITIES:
        add(f"packaged default registry ({next(iter(packaged.values())).method}, mean head, step 100), {sim}",
            [evaluate_method(lambda t, s, _seed: score_sources(packaged, t, s, sim), complete, tasks)])
    for base, label in BASELINES.items():
        for sim in SIMILARITIES:
            add(f"{label} [{base}], {sim}",
                [evaluate_method(embedding_scorer(base, "final", sd, sim), complete, tasks) for sd in seeds_of(base)],
                base, sim)
    # exploratory: does the text block add what the weight block misses? (sum of the two centred cosines =
    # centred-cosine of the concatenated unit vectors, up to a constant)
    text = load_embeddings("textemb", 0, "final")
    add(f"{DEFAULT_METHOD} centered + TextEmb centered, summed (exploratory hybrid)",
        [evaluate_method(hybrid_scorer(load_embeddings(DEFAULT_METHOD, sd, f"step-{MAIN_STEP}"), text), complete, tasks)
         for sd in seeds_of(DEFAULT_METHOD)], f"{DEFAULT_METHOD}+textemb", "centered")
    add("DataSize (bigger source first)",
        [evaluate_method(lambda t, s, _seed: {x: manifest[x]["sizes"]["train"] for x in s}, complete, tasks)])
    add("measured transfer at another ground-truth seed (noise ceiling)", [evaluate_method(other_seed_scorer(complete), complete, tasks)])
    rng = np.random.default_rng(0)
    runs = [evaluate_method(lambda t, s, _seed: dict(zip(s, rng.random(len(s)))), complete, tasks) for _ in range(200)]
    if runs[0]:
        add("Random (mean of 200 orders)", [merge_runs(runs)])

    _, wide_cells, _, wide_rows = load_matrix(RESULTS / "transfer_limited.jsonl", WIDE)  # every source measured
    wide = wide_pool(rankers(folders, steps, manifest), wide_rows)

    # early-checkpoint curve and the in-task metric vs ranking quality
    curve = defaultdict(dict)
    curve_targets = {}  # method -> targets its curve is scored on (rows differ: compare within a row)
    points = defaultdict(list)  # method -> (in-task metric, NDCG, target)
    for method, method_steps in steps.items():
        for step in method_steps:
            per_seed = []
            for sd in seeds_of(method):
                embs = load_embeddings(method, sd, f"step-{step}")
                m = evaluate_method(embedding_scorer(method, f"step-{step}", sd, "cosine", embs), complete, tasks)
                if not m:
                    continue
                per_seed.append(m)
                points[method] += [(next(iter(embs[t].metrics.values())), r["ndcg"], t)
                                   for t, r in m["rows"].items() if embs[t].metrics]
            if per_seed:
                merged = merge_runs(per_seed)
                curve[method][step] = merged["ndcg"]
                curve_targets[method] = merged["targets"]

    test_rows = {t: min(manifest[t]["sizes"]["test"], 1000) for t in targets}
    write_report(tasks, targets, cells, complete, seed_rows, results, list(steps), curve, points, index, test_rows,
                 curve_targets, wide, wide_cells)


def rankers(folders, steps, manifest):
    """Seed-0 scorers of every method that has a vector for all 16 classification tasks: label -> scorer."""
    found = {}
    for method in list(steps) + list(BASELINES):
        step = "final" if method in BASELINES else f"step-{MAIN_STEP if MAIN_STEP in steps[method] else steps[method][-1]}"
        embs = load_embeddings(method, 0, step)
        if all(t in embs for t in WIDE):
            for sim in SIMILARITIES:
                found[f"{folders.get(method) or BASELINES[method]} [{method}], {sim}"] = embedding_scorer(method, step, 0, sim, embs)
    weights, text = load_embeddings(DEFAULT_METHOD, 0, f"step-{MAIN_STEP}"), load_embeddings("textemb", 0, "final")
    if all(t in weights and t in text for t in WIDE):
        found[f"{DEFAULT_METHOD} centered + TextEmb centered, summed (exploratory hybrid)"] = hybrid_scorer(weights, text)
    found["DataSize (bigger source first)"] = lambda t, s, _seed: {x: manifest[x]["sizes"]["train"] for x in s}
    return found


def wide_pool(scorers, seed_rows):
    """Each method on the target rows where all 15 other classification tasks are measured as sources,
    ranking (a) only the `core10` sources and (b) all 15, so the two pools are scored on the same rows."""
    full = {k: v for k, v in sorted(seed_rows.items())
            if BASE in v and all(s in v for s in WIDE if s != k[0])
            and len({round(x, 6) for s, x in v.items() if s != BASE}) > 1}
    pools = {"core10": TASK_SETS["core10"], "all 15": WIDE}
    table = {}
    for label, scorer in scorers.items():
        runs = {name: evaluate_method(scorer, full, pool) for name, pool in pools.items()}
        if all(runs.values()):
            table[label] = runs
    rng = np.random.default_rng(0)
    table["Random (mean of 200 orders)"] = {
        name: merge_runs([evaluate_method(lambda t, s, _seed: dict(zip(s, rng.random(len(s)))), full, pool)
                          for _ in range(200)]) for name, pool in pools.items()} if full else {}
    return full, table, seed_rows


def wide_pool_section(full, table, seed_rows) -> list[str]:
    lines = ["## A wider pool: every other classification task as a source", "",
             "The same rankings on the target rows where all 15 other classification tasks of the suite are measured",
             "as sources (each ground-truth seed where they are; seed-0 embeddings), first ranking only the `core10` sources,",
             "then all 15. More candidates make the task harder: a random order's ρ is (n + 1) / 2, 5–5.5 for the 9–10",
             "`core10` sources (9 when the target is one of them) and 8 for 15, so compare each row with the Random row.", ""]
    extra = [t for t in WIDE if t not in TASK_SETS["core10"]]
    lines += [f"Target rows with all 15 sources: {len(full)} ({', '.join(f'{t} seed {sd}' for t, sd in full) or 'none'}). Seed-0 cells",
              "from the 6 sources outside `core10`, by target (a row whose every source ties, e.g. all at the majority",
              "class, ranks nothing and is not scored):", "",
              "| target | of the 6 measured | missing |", "|---|---|---|"]
    for t in WIDE:
        row = seed_rows.get((t, 0), {})
        wanted = [s for s in extra if s != t]
        missing = [s for s in wanted if s not in row]
        lines.append(f"| {t} | {len(wanted) - len(missing)}/{len(wanted)} | {', '.join(missing) if missing else '–'} |")
    lines.append("")
    if not full or not table.get("Random (mean of 200 orders)"):
        return lines
    lines += ["`± targets` = standard error of the 15-pool NDCG mean over targets.", "",
              "| method | NDCG core10 pool | NDCG 15 pool | ± targets | ρ core10 pool | ρ 15 pool | Regret@3 core10 | Regret@3 15 | targets |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, runs in sorted(table.items(), key=lambda kv: -kv[1]["all 15"]["ndcg"] if kv[1]["all 15"]["ndcg"] == kv[1]["all 15"]["ndcg"] else 1):
        a, b = runs["core10"], runs["all 15"]
        per = [r["ndcg"] for r in b["rows"].values() if r["ndcg"] == r["ndcg"]]
        se = float(np.std(per, ddof=1) / np.sqrt(len(per))) if len(per) > 1 else float("nan")
        lines.append(f"| {label} | {fmt(a['ndcg'])} | {fmt(b['ndcg'])} | {fmt(se)} | {fmt(a['rho'], '.2f')} | {fmt(b['rho'], '.2f')} | "
                     f"{fmt(a['regret@3'], '.2f')} | {fmt(b['regret@3'], '.2f')} | {b['targets']} |")
    best = {}
    for (t, _), row in full.items():
        srcs = {s: v for s, v in row.items() if s != BASE}
        best[t] = max(srcs, key=srcs.get)
    lines += ["", "Truly best source of each row among the 15: " + "; ".join(f"{t}: {s}" for t, s in best.items()) + ".", ""]
    return lines


def fmt(x, spec=".3f"):
    return "–" if x != x else format(x, spec)


def write_report(tasks, targets, cells, complete, seed_rows, results, peft_methods, curve, points, index, test_rows,
                 curve_targets, wide, wide_cells):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["# Does the ranking predict transfer?", "",
             "Generated by `python benchmarks/report.py` from the files in `benchmarks/results/`; do not edit by hand.", "",
             "## Ground truth: measured transfer (limited regime)", "",
             "Full fine-tuning of the packaged all-MiniLM-L6-v2 (`taskemb-hub transfer-matrix`): 1,000 train examples per task,",
             "2 epochs on the source, then 2 epochs on the target, lr 1e-4, batch 16, 128 tokens; the target's test accuracy",
             "(≤1,000 test rows). `base` = the target fine-tuned from the plain base model.",
             f"Sources (`core10`): {', '.join(tasks)}.",
             f"Targets: those 10" + (f", and {', '.join(t for t in targets if t not in tasks)} (other classification tasks of"
                                     " the suite, measured from the 10 sources only)" if len(targets) > len(tasks) else "") + ".", ""]
    expected = {(s, t) for t in targets for s in [BASE] + [x for x in tasks if x != t]}
    seeds = sorted({seed for _, seed in seed_rows})
    for seed in seeds:
        measured = {(s, t) for (t, sd), row in seed_rows.items() if sd == seed for s in row} & expected
        rows = sorted(t for (t, sd) in complete if sd == seed)
        partial = [f"{t} ({len(row) - (BASE in row)} sources{'' if BASE in row else ', no base'})"
                   for (t, sd), row in sorted(seed_rows.items()) if sd == seed and (t, sd) not in complete]
        lines.append(f"- seed {seed}: {len(measured)} of {len(expected)} cells; target rows scored (base + at least "
                     f"{MIN_SOURCES} sources, not all tied): {len(rows)} ({', '.join(rows) or 'none'})"
                     + (f"; not scored: {', '.join(partial)}" if partial else "") + ".")
    lines += ["", "The table pools the seeds (mean over the seeds measured); `missing` = cells measured at no seed.", ""]
    lines += ["`SE` = binomial standard error of one accuracy on the target's test rows, √(p(1−p)/n): a source whose",
              "gain is under about 2·SE (or 2.8·SE for a difference of two runs) is within test noise at one seed.", "",
              "| target | test rows | base | SE | sources measured | sources that help | best source (score) | worst source (score) | missing |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in targets:
        have = {s: np.mean(cells[(s, t)]) for s in tasks if s != t and (s, t) in cells}
        base = np.mean(cells[(BASE, t)]) if (BASE, t) in cells else None
        missing = ([] if base is not None else [BASE]) + [s for s in tasks if s != t and s not in have]
        best = max(have, key=have.get) if have else None
        worst = min(have, key=have.get) if have else None
        helps = sum(v > base for v in have.values()) if base is not None else 0
        se = (base * (1 - base) / test_rows[t]) ** 0.5 if base is not None else float("nan")
        lines.append(f"| {t} | {test_rows[t]} | {fmt(base) if base is not None else 'missing'} | {fmt(se)} | "
                     f"{len(have)}/{len(tasks) - (t in tasks)} | {helps} | "
                     + (f"{best} ({have[best]:.3f}) | {worst} ({have[worst]:.3f})" if have else " | ")
                     + f" | {', '.join(missing) if len(missing) < len(tasks) else 'all'} |")
    lines.append("")

    lines += seed_agreement(tasks, targets, seed_rows)

    lines += ["## Rankings against the ground truth", "",
              "Per target, the sources are ranked by the similarity of their embedding to the target's (cosine, or cosine",
              "after centring on the sources' mean), then scored against the measured row (`taskemb_hub/ranking_metrics.py`):",
              "**NDCG** with gain = relative transfer gain (p(s→t) − p(t)) / p(t), negatives clipped to 0 (a target where no",
              "source helps has no NDCG and is left out); **NDCG shifted** with gain = p(s→t) − min_s p(s→t) (defined on every",
              "target); **ρ** = predicted rank of the truly best source (1 = perfect); **Regret@3** in %; **Spearman** between",
              "similarity and p(s→t). Means over the scored targets; `± targets` = standard error of the NDCG mean over",
              "targets (how much the figure would move with other targets); `seed sd` = NDCG spread over embedding seeds.",
              "The noise-ceiling row ranks with another ground-truth seed's measurements, so it is scored only on the",
              "targets measured at two seeds (its `targets` column) and is not comparable row for row with the others.", "",
              "| method | NDCG | ± targets | NDCG shifted | ρ | Regret@3 | Spearman | targets | seeds | seed sd |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(results.items(), key=lambda kv: -(kv[1]["ndcg"] if kv[1]["ndcg"] == kv[1]["ndcg"] else -1))
    for name, m in order:
        per = [r["ndcg"] for r in m["rows"].values() if r["ndcg"] == r["ndcg"]]
        se = float(np.std(per, ddof=1) / np.sqrt(len(per))) if len(per) > 1 else float("nan")
        lines.append(f"| {name} | {fmt(m['ndcg'])} | {fmt(se)} | {fmt(m['ndcg_shifted'])} | {fmt(m['rho'], '.2f')} | "
                     f"{fmt(m['regret@3'], '.2f')} | {fmt(m['spearman'])} | {m['targets']:.0f} | {m['seeds']} | {fmt(m['ndcg_sd'])} |")
    if not results:
        lines.append("| (no complete target row yet) | | | | | | | | | |")
    lines.append("")
    scored = sorted({t for m in results.values() for t in m["rows"]})
    if scored:
        lines += ["### NDCG per target", "", "| method | " + " | ".join(scored) + " |", "|---|" + "---|" * len(scored)]
        for name, m in order:
            if "centered" in name:
                continue
            lines.append(f"| {name.replace(', cosine', '')} | " + " | ".join(fmt(m['rows'].get(t, {}).get('ndcg', float('nan')))
                                                                    for t in scored) + " |")
        lines += ["", "(cosine rows; `–` = no source improved on base for that target, so its NDCG is undefined)", ""]

    lines += paired_comparison(results, peft_methods)
    lines += wide_pool_section(*wide)

    if curve:
        all_steps = sorted({s for p in curve.values() for s in p})
        plt.figure(figsize=(6.5, 4))
        for method, pts in curve.items():
            xs = sorted(pts)
            plt.plot(xs, [pts[x] for x in xs], marker="o", label=method)
        plt.xscale("log"); plt.xlabel("checkpoint step"); plt.ylabel("NDCG (cosine)"); plt.legend(fontsize=7)
        plt.tight_layout(); plt.savefig(HERE / "results" / "early_checkpoints.png", dpi=120); plt.close()
        lines += ["## Early checkpoints", "",
                  "NDCG (cosine) of the embedding taken at each checkpoint of one tuning run (`embed_tasks.py`). A plain row is",
                  "the 100-step schedule that the packaged registry and `AutoSourceSelector` use; `@200` / `@500` rows are runs",
                  "whose learning-rate schedule ends at step 200 / 500 (so their step 100 is a different checkpoint). The last",
                  "column of each row is the end of its run. Mean over the embedding seeds measured.", "", "![NDCG by checkpoint](results/early_checkpoints.png)", "",
                  "`targets` = the targets a row is scored on: rows with fewer targets are not comparable with the others.", "",
                  "| method | targets | " + " | ".join(str(s) for s in all_steps) + " |", "|---|---|" + "---|" * len(all_steps)]
        for method, pts in curve.items():
            lines.append(f"| {method} | {curve_targets[method]} | "
                         + " | ".join(fmt(pts[s]) if s in pts else "" for s in all_steps) + " |")
        lines.append("")

    if points:
        from scipy.stats import spearmanr

        lines += ["## In-task metric vs ranking quality", "",
                  "The paper's claim that the embedding's value is not just how well the task was learned: Spearman between a",
                  "checkpoint's in-task accuracy (held-out validation rows) and the NDCG of the ranking its embedding gives,",
                  "over every (step, target) point of a method.", "",
                  "| method | Spearman(in-task accuracy, NDCG) | points |", "|---|---|---|"]
        pooled = []
        for method, pts in points.items():
            ok = [(a, b, t) for a, b, t in pts if b == b]
            pooled += ok
            rho = spearmanr([a for a, _, _ in ok], [b for _, b, _ in ok]).statistic if len(ok) > 2 else float("nan")
            lines.append(f"| {method} | {fmt(rho)} | {len(ok)} |")
        rho = spearmanr([a for a, _, _ in pooled], [b for _, b, _ in pooled]).statistic if len(pooled) > 2 else float("nan")
        within = []
        for target in sorted({t for _, _, t in pooled}):
            pts = [(a, b) for a, b, t in pooled if t == target]
            if len(pts) > 2 and len({a for a, _ in pts}) > 1 and len({b for _, b in pts}) > 1:
                within.append(spearmanr(*zip(*pts)).statistic)
        lines += [f"| all methods pooled | {fmt(rho)} | {len(pooled)} |",
                  f"| all methods, within each target (mean of {len(within)} per-target correlations) | "
                  f"{fmt(nanmean(within))} | {len(pooled)} |", "",
                  "Targets differ in how learnable they are, so the pooled figure mixes target difficulty with ranking",
                  "quality; the within-target row compares checkpoints of the same target only.", ""]

    cost_file = RESULTS / "target_embedding_cost.json"
    uncontended = {r["method"]: r for r in json.loads(cost_file.read_text())["rows"]} if cost_file.is_file() else {}
    grid = defaultdict(list)
    for r in index:
        grid[r["method"]].append(r["seconds"])
    if grid or uncontended:
        lines += ["## Cost to embed one task", "",
                  "`alone`: `benchmarks/target_embedding_cost.py` (one target, rotten_tomatoes, from raw data to a step-100",
                  "embedding, model load included, 2 CPU cores; `load` = 1-minute load average when the row started, 0 = the",
                  "machine was otherwise idle, 2 = both cores busy with other jobs). `grid`: median over the tasks of",
                  "`embed_tasks.py` (all checkpoints of one run; 1 thread, alongside the transfer-matrix job, so only",
                  "comparable within the column). Dimension and bytes are those of the stored vector.", "",
                  "| method | seconds alone | load | peak RSS MB alone | seconds grid (median) | tasks | dimension | bytes (float32) |",
                  "|---|---|---|---|---|---|---|---|"]
        for method in sorted(set(grid) | {f"{m}+mean" for m in uncontended if m not in BASELINES} | set(BASELINES)):
            base = method.split("+")[0]
            alone = {} if "@" in method else uncontended.get(base, {})  # "alone" rows are 100-step runs
            dim = alone.get("dim")
            sample = next((EMB / method).glob("*/seed0/*/taskemb.json"), None) if (EMB / method).is_dir() else None
            if sample:
                info = json.loads(sample.read_text())
                dim = info.get("extra", {}).get("full_dim") or info.get("dim", dim)
            if not (alone or grid.get(method)):
                continue
            lines.append(f"| {method} | {fmt(alone.get('seconds', float('nan')), '.1f')} | "
                         f"{fmt(alone.get('load_before', float('nan')), '.1f')} | "
                         f"{fmt(alone.get('peak_rss_mb', float('nan')), '.0f')} | "
                         f"{fmt(statistics.median(grid[method]), '.1f') if grid.get(method) else '–'} | {len(grid.get(method, []))} | "
                         f"{dim if dim else '–'} | {dim * 4 if dim else '–'} |")
        lines += ["", "TaskEmb's dimension is one value per encoder weight; its committed vectors are an exact isometric",
                  "copy in the span of the tasks embedded at that seed (see `embed_tasks.py`), so its rankings here are exact.", ""]

    if complete:
        sources = tasks + [s for s in WIDE if s not in tasks and any((s, t) in wide_cells for t in targets)]
        heat_panels = [("measured relative gain (p(s→t) − p(t)) / p(t)", gain_matrix(sources, targets, wide_cells), "RdBu", (-0.1, 0.1))]
        for method in HEATMAP_METHODS:
            embs = load_embeddings(method, 0, f"step-{MAIN_STEP}") or load_embeddings(method, 0, "final")
            if all(t in embs for t in targets + sources):
                heat_panels.append((f"predicted: cosine of {method}", similarity_matrix(sources, targets, embs), "viridis", (None, None)))
        fig, axes = plt.subplots(1, len(heat_panels), figsize=(5.2 * len(heat_panels), 5))
        for ax, (title, mat, cmap, (lo, hi)) in zip(np.atleast_1d(axes), heat_panels):
            im = ax.imshow(mat, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks(range(len(targets)), targets, rotation=90, fontsize=7)
            ax.set_yticks(range(len(sources)), sources, fontsize=7)
            ax.set_xlabel("target"); ax.set_ylabel("source"); ax.set_title(title, fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout(); fig.savefig(HERE / "results" / "transfer_matrix.png", dpi=120); plt.close(fig)
        lines += ["## Measured transfer beside predicted similarity", "",
                  "Left: measured gain (blank = not measured). Right: the cosine each method predicts between source and "
                  "target (diagonal hidden: self-similarity is never ranked).", "", "![transfer matrix](results/transfer_matrix.png)", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def seed_agreement(tasks, targets, seed_rows) -> list[str]:
    """How far two ground-truth seeds of the same target agree (the noise the rankings are scored against)."""
    from scipy.stats import spearmanr

    lines = []
    for t in targets:
        rows = {sd: row for (u, sd), row in sorted(seed_rows.items()) if u == t}
        if len(rows) < 2:
            continue
        a, b = list(rows.values())[:2]
        both = [s for s in tasks if s != t and s in a and s in b]
        if len(both) < 3:
            continue
        diffs = [abs(a[s] - b[s]) for s in both]
        rho = spearmanr([a[s] for s in both], [b[s] for s in both]).statistic
        best = lambda row: max(both, key=row.get)
        lines.append(f"| {t} | {len(both)} | {fmt(a.get(BASE, float('nan')))} / {fmt(b.get(BASE, float('nan')))} | "
                     f"{fmt(float(np.mean(diffs)))} | {fmt(max(diffs))} | {fmt(rho)} | {best(a)} / {best(b)} |")
    if not lines:
        return []
    return ["### Do two ground-truth seeds agree?", "",
            "Targets measured at two seeds (source fine-tune and target fine-tune both reseeded; same test rows):",
            "accuracy of base at each seed, mean and largest |difference| of a source's accuracy between seeds,",
            "Spearman between the two seeds' source scores, and the best source at each seed.", "",
            "| target | sources at both | base (seed a / b) | mean abs diff | max abs diff | Spearman | best source (a / b) |",
            "|---|---|---|---|---|---|---|"] + lines + [""]


def paired_comparison(results, peft_methods) -> list[str]:
    """Each PEFT embedding (cosine) against each baseline's better similarity, target by target."""
    baselines = {b: max((n for n, m in results.items() if m["method"] == b), key=lambda n: results[n]["ndcg"], default=None)
                 for b in BASELINES}
    contenders = [n for n, m in results.items() if m["similarity"] == "cosine" and m["method"] in peft_methods]
    if not contenders or not all(baselines.values()):
        return []
    # the current default too, so a challenger's case for replacing it is on the same footing
    default = next((n for n in contenders if results[n]["method"] == DEFAULT_METHOD), None)
    lines = ["### Paired against the baselines", "",
             "Per target, a PEFT embedding's NDCG (and ρ) minus the baseline's on the same target (the baseline in the",
             f"better of its two similarities; also against the current default, `{DEFAULT_METHOD}` cosine).",
             "Paired SE = sd of the differences / √targets: a difference beyond about",
             "2 paired SE is unlikely to be target-sampling luck; `W/T/L` = targets won / tied / lost.", "",
             "| embedding | against | ΔNDCG ± paired SE | NDCG W/T/L | Δρ ± paired SE (negative = better) | ρ W/T/L |",
             "|---|---|---|---|---|---|"]
    for name in sorted(contenders, key=lambda n: -results[n]["ndcg"]):
        for base in list(baselines.values()) + ([default] if default and name != default else []):
            cells = []
            for key, sign in (("ndcg", 1), ("rho", -1)):
                a = {t: r[key] for t, r in results[name]["rows"].items()}
                b = {t: r[key] for t, r in results[base]["rows"].items()}
                diffs = np.array([a[t] - b[t] for t in a if t in b and a[t] == a[t] and b[t] == b[t]])
                if len(diffs) < 2:
                    cells += ["–", "–"]
                    continue
                se = diffs.std(ddof=1) / np.sqrt(len(diffs))
                won, lost = int((sign * diffs > 1e-9).sum()), int((sign * diffs < -1e-9).sum())
                cells += [f"{diffs.mean():+.3f} ± {se:.3f}", f"{won}/{len(diffs) - won - lost}/{lost}"]
            lines.append(f"| {name.replace(', cosine', '')} | {base} | " + " | ".join(cells) + " |")
    return lines + [""]


def gain_matrix(tasks, targets, cells):
    gain = np.full((len(tasks), len(targets)), np.nan)
    for (s, t), v in cells.items():
        if s != BASE and s in tasks and t in targets and (BASE, t) in cells:
            base = np.mean(cells[(BASE, t)])
            gain[tasks.index(s), targets.index(t)] = (np.mean(v) - base) / base
    return gain


def similarity_matrix(tasks, targets, embs):
    def unit(names):
        vectors = torch.stack([embs[t].vector.double() for t in names])
        return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)

    sims = (unit(tasks) @ unit(targets).T).numpy()
    for i, t in enumerate(tasks):  # self-similarity is 1 and never ranked; hiding it lets the colours spread
        if t in targets:
            sims[i, targets.index(t)] = np.nan
    return sims


if __name__ == "__main__":
    main()
