"""RESULTS.md's sections built from computed results: out-of-sample tables, seed and device checks, paired tables."""

from collections import defaultdict

import numpy as np
from _common import RESULTS

from taskemb_hub.evaluation.ranking_metrics import nanmean
from taskemb_hub.evaluation.transfer import BASE

from .data import BASELINES, DEFAULT_METHOD, SMALL_FILE, SMALL_ROWS, SOURCES, load_runs
from .markdown import _pm, fmt, table_section
from .regimes import OOS_KEYS, SHIPPED, headline_pairs, normalised_scores
from .scoring import CEILING, RANDOM, _paired, ndcg_se


def out_of_sample_section(oos_result: dict, random_row: dict, ceiling_row: dict, shipped: dict | None,
                          beats: dict, n_targets: int, title: str, intro: bool = True,
                          beats_by_noise: tuple | None = None) -> tuple[list[str], dict]:
    """RESULTS.md's out-of-sample section of one regime (tables + notes) and the figures it quotes."""
    families, fixed = oos_result["families"], dict(oos_result["fixed"])
    if shipped:
        fixed[SHIPPED] = shipped
    fixed |= {RANDOM: random_row, CEILING: ceiling_row}
    table = {**families, **fixed}
    norm_out = normalised_scores(table, random_row, ceiling_row)
    norm_in = normalised_scores({n: oos_result["all_candidates"][f["in_sample"]["label"]] for n, f in families.items()},
                                random_row, ceiling_row)
    lines = [title, ""] + ([
             "Every choice a ranker has here (embedding method, similarity, checkpoint step, a combination's",
             "weight) is made **leave-one-target-out**: for each target, the candidate with the best mean NDCG over the",
             f"other {n_targets - 1} targets is chosen, and the target is scored with it (`benchmarks/out_of_sample.py`). The",
             "`in sample` columns give the best candidate on all the targets at once, the way earlier versions of this",
             "report picked the default: the gap between the two is what choosing on the scored targets flattered.",
             "Rankers without a choice (the peers, the source prior, random, the noise ceiling) have one figure. Each",
             "ground-truth seed is scored separately (where the noise ceiling is measured), averaged per target, then",
             "over targets. Normalised = (NDCG − random) / (noise ceiling − random) on the targets where all three are",
             "defined. `NDCG peer gain` = NDCG with hf-dataset-selector's gain 2^(100·accuracy) − 1, which rewards the",
             "best one or two sources only. Regret@k in % of the best source's accuracy. The source prior ranks by",
             "each source's mean clipped relative gain on the other targets (the target's own row is never read); it",
             "needs the transfer matrix among the registry's tasks, which a registry does not have today.", ""]
             if intro else ["Choices, columns and rows as in the headline above.", ""]) + [
             "| ranker (choices made leave-one-target-out) | candidates | NDCG | normalised | NDCG in sample | normalised in sample | "
             "NDCG peer gain | ρ | Regret@1 | Regret@3 | Regret@5 | targets | chosen most often (folds) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    figs = {"families": {}, "fixed": {}, "pairs": {}, "beats_base_2se": beats}
    if beats_by_noise is not None:
        figs["beats_base_seed_noise"] = {"targets": beats_by_noise[0], "expected_by_noise": round(beats_by_noise[1], 1)}
    for name, f in sorted(table.items(), key=lambda kv: -(kv[1]["ndcg"] if kv[1]["ndcg"] == kv[1]["ndcg"] else -1)):
        is_family = name in families
        ins = f["in_sample"] if is_family else None
        top = next(iter(f["chosen_counts"].items())) if is_family else None
        folds = len(f["chosen"]) if is_family else 0
        lines.append(f"| {name} | {f['candidates'] if is_family else '–'} | {fmt(f['ndcg'])} | {fmt(norm_out.get(name, float('nan')), '.2f')} | "
                     f"{fmt(ins['ndcg']) if ins else '–'} | {fmt(norm_in.get(name, float('nan')), '.2f') if ins else '–'} | "
                     f"{fmt(f['ndcg_peer_gain'])} | {fmt(f['rho'], '.2f')} | {fmt(f['regret@1'], '.2f')} | "
                     f"{fmt(f['regret@3'], '.2f')} | {fmt(f['regret@5'], '.2f')} | {f['targets']} | "
                     + (f"{top[0]} ({top[1]}/{folds})" if top else "–") + " |")
        entry = {k: f[k] for k in OOS_KEYS} | {"targets": f["targets"], "normalised": norm_out.get(name, float("nan"))}
        if is_family:
            entry |= {"candidates": f["candidates"], "chosen_counts": f["chosen_counts"], "in_sample": ins,
                      "normalised_in_sample": norm_in.get(name, float("nan"))}
            figs["families"][name] = entry
        else:
            figs["fixed"][name] = entry
    lines += ["", "Paired over targets, out of sample (a − b; ± paired SE; W/T/L = targets where a is better / tied / worse;",
              "for ρ and Regret negative = a better). A margin beyond about 2 paired SE is unlikely to be target-sampling luck.", "",
              "| a | b | targets | ΔNDCG | W/T/L | ΔNDCG peer gain | Δρ | ΔRegret@1 | ΔRegret@3 | ΔRegret@5 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for a, b in headline_pairs(families, fixed):
        ps = {k: _paired(table, a, b, key=k) for k in ("ndcg", "ndcg_peer_gain", "rho", "regret@1", "regret@3", "regret@5")}
        figs["pairs"][f"{a} minus {b}"] = ps
        lines.append(f"| {a} | {b} | {ps['ndcg']['targets']} | {_pm(ps['ndcg'])} | {'/'.join(map(str, ps['ndcg']['wtl']))} | "
                     + " | ".join(_pm(ps[k]) for k in ("ndcg_peer_gain", "rho", "regret@1", "regret@3", "regret@5")) + " |")
    lines += ["", f"Targets whose best source (seed-mean) beats base (seed-mean) by more than 2 binomial SE of one accuracy "
              f"(√(p(1−p)/n) at base's accuracy on the target's test rows): {len(beats)} of {n_targets}"
              + (" (" + ", ".join(f"{t}: {v['best']} +{100 * v['margin']:.1f} points, SE {100 * v['se']:.1f}" for t, v in beats.items()) + ")" if beats else "")
              + ". That SE counts only the test rows' sampling; the best of 15 is a maximum, and the seeds' own "
              "spread is larger (next line)."]
    if beats_by_noise is not None:
        found, expected = beats_by_noise
        lines += ["", f"Against the measured seed-to-seed noise (pooled within-cell variance over the ground-truth seeds; "
                      f"SE of best − base = σ√(2/seeds)): {len(found)} of {n_targets} targets have a source beating base by "
                      f"more than 2 SE" + (" (" + ", ".join(f"{t}: {v['best']} +{100 * v['margin']:.1f} points, SE "
                                                             f"{100 * v['se']:.1f}" for t, v in found.items()) + ")" if found else "")
                  + f"; with every cell equal in truth, about {expected:.1f} of {n_targets} would pass by noise alone "
                    "(the best of 15 noisy sources; simulated)."]
    lines += [""]
    return lines, figs


def regime_sections(regimes: dict) -> tuple[list[str], dict]:
    """RESULTS.md's headline (the limited regime, out of sample) and the small regime's section, with figures."""
    limited = regimes["limited"]
    lines, figs = out_of_sample_section(limited["oos"], limited["random"], limited["ceiling"], limited["shipped"],
                                        limited["beats"], limited["targets"],
                                        "## Headline: chosen out of sample (limited regime, 1,000 target rows)",
                                        beats_by_noise=limited.get("beats_by_noise"))
    figures = {"limited": figs}
    small = regimes.get("small")
    lines += [f"## Small regime ({SMALL_ROWS} target training rows)", ""]
    if small is None:
        lines += [f"Not measured: `benchmarks/results/{SMALL_FILE}` does not exist (GPU work: `taskemb-hub transfer-matrix "
                  f"--tasks classification16 --seeds 0,1,2 --target-train-examples {SMALL_ROWS} --results "
                  f"benchmarks/results/{SMALL_FILE}`; the sources keep 1,000 rows).", ""]
        figures["small"] = None
        return lines, figures
    expected = len(SOURCES) * len(SOURCES)  # per seed: base + 15 sources for each of the 16 targets
    lines += [f"Ground truth `benchmarks/results/{SMALL_FILE}`: the same 16 tasks and sources, each target fine-tuned on "
              f"{SMALL_ROWS} training rows. Cells per seed: "
              + ", ".join(f"seed {sd} {n} of {expected}" for sd, n in small["cells"].items())
              + f"; {small['rows']} (target, seed) rows scored.",
              f"Seeds: {', '.join(map(str, small['seeds']))} (the limited regime above has seeds "
              f"{', '.join(map(str, regimes['limited']['seeds']))}; its seeds 3 and 4 were not run).",
              f"A user with {SMALL_ROWS} rows embeds the target from those rows. "
              + (f"Only BitFit has such target vectors (`{DEFAULT_METHOD}-rows{SMALL_ROWS}`, seed 0, from the seed-0 subset of "
                 f"{SMALL_ROWS} rows, while ground-truth seed s tuned each target on its seed-s subset): the row "
                 f"`ours, target embedded from its {SMALL_ROWS} rows` is the small regime's own ranker. "
                 if len(small["own_targets"]) == len(SOURCES) else
                 f"Missing: target vectors embedded from {SMALL_ROWS} rows (`embed_tasks.py --train-examples {SMALL_ROWS}`)"
                 + (f"; only {len(small['own_targets'])} of {len(SOURCES)} targets have one so far, so no row is scored "
                    "with them. " if small["own_targets"] else ". "))
              + "Every other ranker below reads the target's 1,000-row embedding (ours, TextEmb, TaskEmb) or 1,000-row "
              "features (ESM-LogME, LogME): those rows measure how well the 1,000-row rankings predict the small "
              f"regime's transfer, not what a user with {SMALL_ROWS} rows would get.", ""]
    s_lines, s_figs = out_of_sample_section(small["oos"], small["random"], small["ceiling"], small["shipped"],
                                            small["beats"], small["targets"], "### Chosen out of sample (small regime)",
                                            intro=False, beats_by_noise=small.get("beats_by_noise"))
    figures["small"] = s_figs
    return lines + s_lines, figures


def pool_section(table) -> list[str]:
    lines = ["## A smaller pool: the first 10 tasks as sources", "",
             "The matrix was first measured on 10 tasks (`core10`, spanning NLI/fact-checking, sentiment, dialogue and",
             "reasoning), and earlier versions of this report ranked those 10 sources only. The same rankings (seed-0",
             "embeddings) on every scored ground-truth row, ranking only the `core10` sources, then all 15. More",
             "candidates make the task harder: a random order's ρ is (n + 1) / 2, 5–5.5 for the 9–10 `core10` sources",
             "(9 when the target is one of them) and 8 for 15, so compare each row with the Random row.", ""]
    if not table:
        return lines
    lines += ["`± targets` = standard error of the 15-pool NDCG mean over targets.", "",
              "| method | NDCG core10 pool | NDCG 15 pool | ± targets | ρ core10 pool | ρ 15 pool | Regret@3 core10 | Regret@3 15 | targets |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, runs in sorted(table.items(), key=lambda kv: -kv[1]["all 15"]["ndcg"] if kv[1]["all 15"]["ndcg"] == kv[1]["all 15"]["ndcg"] else 1):
        a, b = runs["core10"], runs["all 15"]
        lines.append(f"| {label} | {fmt(a['ndcg'])} | {fmt(b['ndcg'])} | {fmt(ndcg_se(b))} | {fmt(a['rho'], '.2f')} | {fmt(b['rho'], '.2f')} | "
                     f"{fmt(a['regret@3'], '.2f')} | {fmt(b['regret@3'], '.2f')} | {b['targets']} |")
    return lines + [""]


def seed_agreement(tasks, targets, seed_rows) -> list[str]:
    """How far the ground-truth seeds of the same target agree (the noise the rankings are scored against)."""
    from itertools import combinations

    from scipy.stats import spearmanr

    lines = []
    for t in targets:
        rows = {sd: row for (u, sd), row in sorted(seed_rows.items()) if u == t}
        both = [s for s in tasks if s != t and all(s in row for row in rows.values())]
        if len(rows) < 2 or len(both) < 3:
            continue
        diffs, rhos = [], []
        for a, b in combinations(rows.values(), 2):
            diffs += [abs(a[s] - b[s]) for s in both]
            rho = spearmanr([a[s] for s in both], [b[s] for s in both]).statistic
            rhos.append(rho)
        best = " / ".join(max(both, key=row.get) for row in rows.values())
        bases = " / ".join(fmt(row.get(BASE, float("nan"))) for row in rows.values())
        lines.append(f"| {t} | {len(rows)} | {len(both)} | {bases} | {fmt(float(np.mean(diffs)))} | {fmt(max(diffs))} | "
                     f"{fmt(nanmean(rhos))} | {best} |")
    return table_section("### Do the ground-truth seeds agree?", [
        "Targets measured at several seeds (source fine-tune and target fine-tune both reseeded; same test rows):",
        "accuracy of base at each seed, mean and largest |difference| of a source's accuracy between two seeds,",
        "Spearman between two seeds' source scores (mean over the pairs of seeds; `–` where a seed's sources all tied),",
        "and the best source at each seed."],
        ["target", "seeds", "sources at all seeds", "base by seed", "mean abs diff", "max abs diff", "Spearman",
         "best source by seed"], lines)


def run_devices(runs: list[dict]) -> dict[int, dict[str, int]]:
    """seed -> {device: runs} for the ground truth (runs on CPU and on a lent GPU are mixed within a seed)."""
    found = defaultdict(lambda: defaultdict(int))
    for r in runs:
        found[r["seed"]][{"cuda": "an H100", "cpu": "CPU"}.get(r.get("device"), r.get("device"))] += 1
    return found


def device_check(seed_rows) -> list[str]:
    """The same cells re-run on the GPU (`transfer_device_check.jsonl`) against their CPU runs, beside the
    difference between two seeds: mixing devices in a seed matters only if the first is not far smaller."""
    from scipy.stats import spearmanr

    path = RESULTS / "transfer_device_check.jsonl"
    if not path.is_file():
        return []
    gpu = defaultdict(dict)
    for r in load_runs(path):
        gpu[(r["target"], r["seed"])][r["source"]] = r["score"]
    lines = []
    for (t, sd), row in sorted(gpu.items()):
        cpu = seed_rows.get((t, sd), {})
        shared = [s for s in row if s in cpu]
        other = [seed_rows[(t, o)] for (u, o) in seed_rows if u == t and o != sd]
        if len(shared) < 3 or not other:
            continue
        device_diff = float(np.mean([abs(row[s] - cpu[s]) for s in shared]))
        seed_diff = float(np.mean([abs(o[s] - cpu[s]) for o in other for s in shared if s in o]))
        sources = [s for s in shared if s != BASE]
        rho = spearmanr([row[s] for s in sources], [cpu[s] for s in sources]).statistic
        lines.append(f"| {t} | {sd} | {len(shared)} | {fmt(device_diff)} | {fmt(seed_diff)} | {fmt(rho)} | "
                     f"{max(sources, key=row.get)} / {max(sources, key=cpu.get)} |")
    return table_section("### Does the device matter?", [
        "Cells first run on CPU, re-run on the H100 with the same seed and recipe: mean |difference| between the",
        "two devices, beside the mean |difference| between that CPU run and the other seeds' runs of the same",
        "cells; Spearman between the two devices' source scores; best source on GPU / on CPU."],
        ["target", "seed", "cells", "mean abs diff GPU vs CPU", "mean abs diff across seeds", "Spearman GPU vs CPU",
         "best source (GPU / CPU)"], lines)


def paired_comparison(results, peft_methods) -> list[str]:
    """Each PEFT embedding (cosine) against each baseline's better similarity, target by target."""
    baselines = {b: max((n for n, m in results.items() if m["method"] == b), key=lambda n: results[n]["ndcg"], default=None)
                 for b in BASELINES}
    contenders = [n for n, m in results.items() if m["method"] in peft_methods]
    if not contenders or not all(baselines.values()):
        return []
    # the current default too, so a challenger's case for replacing it is on the same footing
    default = next((n for n in contenders if results[n]["method"] == DEFAULT_METHOD and results[n]["similarity"] == "cosine"), None)
    lines = ["### Paired against the baselines", "",
             "Per target, a PEFT embedding's NDCG (and ρ) minus the baseline's on the same target (the baseline in the",
             f"better of its two similarities; also against the current default, `{DEFAULT_METHOD}` cosine).",
             "Paired SE = sd of the differences / √targets: a difference beyond about",
             "2 paired SE is unlikely to be target-sampling luck; `W/T/L` = targets won / tied / lost. The last two",
             "columns score against the seed-mean truth instead.", "",
             "| embedding | against | ΔNDCG ± paired SE | NDCG W/T/L | Δρ ± paired SE (negative = better) | ρ W/T/L | "
             "ΔNDCG, seed-mean truth | Δρ, seed-mean truth |",
             "|---|---|---|---|---|---|---|---|"]
    def rows_of(label, truth):  # per-target metrics against each seed's row, or against the seed-mean row
        return results[label]["rows"] if truth == "rows" else results[label]["on_mean"]["rows"]

    for name in sorted(contenders, key=lambda n: -results[n]["ndcg"]):
        for base in list(baselines.values()) + ([default] if default and name != default else []):
            cells = []
            for truth, key, sign in (("rows", "ndcg", 1), ("rows", "rho", -1), ("on_mean", "ndcg", 1), ("on_mean", "rho", -1)):
                if truth == "on_mean" and not (results[name]["on_mean"] and results[base]["on_mean"]):
                    cells.append("–")
                    continue
                a = {t: r[key] for t, r in rows_of(name, truth).items()}
                b = {t: r[key] for t, r in rows_of(base, truth).items()}
                diffs = np.array([a[t] - b[t] for t in a if t in b and a[t] == a[t] and b[t] == b[t]])
                if len(diffs) < 2:
                    cells += ["–"] if truth == "on_mean" else ["–", "–"]
                    continue
                se = diffs.std(ddof=1) / np.sqrt(len(diffs))
                won, lost = int((sign * diffs > 1e-9).sum()), int((sign * diffs < -1e-9).sum())
                cells.append(f"{diffs.mean():+.3f} ± {se:.3f}")
                if truth == "rows":
                    cells.append(f"{won}/{len(diffs) - won - lost}/{lost}")
            lines.append(f"| {name} | {base} | " + " | ".join(cells) + " |")
    return lines + [""]
