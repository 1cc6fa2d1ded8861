"""The README's evidence block: the in-sample table per method, the out-of-sample headline and key figures."""

import json
from collections import defaultdict

from _common import RESULTS

from .data import DEFAULT_METHOD, OLD_SKETCH, PEFT, SIMILARITIES, SMALL_ROWS, old_sketch, peft_folders, vector_dim
from .markdown import _pm, fmt
from .regimes import ESM_LOGME, OURS, TEXTEMB_FAMILY
from .scoring import CEILING, DATASIZE, HYBRID, RANDOM, _paired, _row_of, ndcg_se

DISPLAY = {"bitfit+mean": "BitFit (BEFT bias)", "prefix+mean": "prefix tuning (tuned − init)",
           "lora+mean": "LoRA ΔW sketch", "ia3+mean": "IA3 (l − 1)", "spot+mean": "SPoT-style (raw prompt)",
           "prompt+mean": "prompt tuning (tuned − init)", "taskemb": "TaskEmb, Fisher (Vu et al. 2020)",
           "textemb": "TextEmb (Vu et al. 2020)"}
COST_KEY = {"bitfit+mean": "bitfit", "prefix+mean": "prefix", "lora+mean": "lora", "ia3+mean": "ia3",
            "spot+mean": "prompt", "prompt+mean": "prompt", "taskemb": "taskemb", "textemb": "textemb"}


def readme_evidence(results, curve, curve_targets, corr, pools, runs) -> tuple[str, dict]:
    """The README's evidence block (table + key figures) and the figures it quotes."""
    cost = {r["method"]: r for r in json.loads((RESULTS / "target_embedding_cost.json").read_text())["rows"]}
    figs = {"random": round(results[RANDOM]["ndcg"], 3), "noise_ceiling": round(results[CEILING]["ndcg"], 3), "methods": {}}
    table = _evidence_table(results, cost, figs)
    _paired_figures(results, figs)
    devices = _spread_figures(results, runs, figs)
    lines = _baseline_lines(results, runs, devices, figs) + _cost_and_spread_lines(results, cost, figs)
    lines.append(_margins_line(results, figs))
    lines += _curve_lines(curve, curve_targets, corr, figs)
    lines += _more_lines(results, pools, figs)
    return "\n".join(table + lines) + "\n", figs


def _name(method: str) -> str:
    return DISPLAY[method].split(" (")[0]


def _normalised(results, x):
    """(x − random) / (noise ceiling − random)."""
    random_ndcg, ceiling = results[RANDOM]["ndcg"], results[CEILING]["ndcg"]
    return (x - random_ndcg) / (ceiling - random_ndcg)


def _evidence_table(results, cost, figs) -> list[str]:
    """The in-sample table: each embedding method, the packaged registry, DataSize, random and the noise ceiling."""
    def normalised(x):
        return _normalised(results, x)

    table = ["| embedding (step 100 of 100) | NDCG | normalised | ± targets | NDCG shifted | Spearman | ρ (1 = perfect) "
             "| NDCG, seed-mean truth | embedding seeds | seconds / dim to embed a target |", "|---|---|---|---|---|---|---|---|---|---|"]
    entries = []
    for method, name in DISPLAY.items():
        label, m = _row_of(results, method)
        if m is None:
            continue
        c = cost.get(COST_KEY[method], {})
        dim = vector_dim(method) or c.get("dim")  # the stored vectors' (the cost file may predate a format change)
        if method == "taskemb":
            dim_text = f"{dim / 1e6:.1f} M" if dim else "–"
        else:
            dim_text = f"{dim:,}" if dim else "–"
        entries.append((method, name + (f" ({OLD_SKETCH})" if old_sketch(method) else ""), label, m,
                        f"{c['seconds']:.1f} s / {dim_text}" if c else "–"))
    label, m = _row_of(results, None, "cosine") if False else next(((n, m) for n, m in results.items()
                                                                     if n.startswith("packaged default registry") and n.endswith("cosine")), (None, None))
    if m is not None:
        entries.append(("packaged", "the packaged registry (BitFit, seed-0 vectors)", label, m, "(same recipe)"))
    entries.sort(key=lambda e: -e[3]["ndcg"])
    for method, name, label, m, cost_text in entries:
        default = method == DEFAULT_METHOD and m["similarity"] == "cosine"
        similarity = m.get("similarity") or label.rsplit(", ", 1)[-1]
        shown = f"**{name}, {similarity} (the previous default)**" if default else f"{name}, {similarity}"
        on_mean = m["on_mean"]["ndcg"] if m.get("on_mean") else float("nan")
        table.append(f"| {shown} | {fmt(m['ndcg'])} | {fmt(normalised(m['ndcg']), '.2f')} | {fmt(ndcg_se(m))} | "
                     f"{fmt(m['ndcg_shifted'])} | {fmt(m['spearman'], '.2f')} | {fmt(m['rho'], '.2f')} | {fmt(on_mean)} | "
                     f"{m['seeds']} | {cost_text} |")
        figs["methods"][method] = {"row": shown, "label": label, "similarity": similarity, "ndcg": round(m["ndcg"], 3),
                                   "normalised": round(normalised(m["ndcg"]), 2), "ndcg_se": round(ndcg_se(m), 3),
                                   "ndcg_shifted": round(m["ndcg_shifted"], 3), "spearman": round(m["spearman"], 2),
                                   "rho": round(m["rho"], 2), "ndcg_seed_mean_truth": round(on_mean, 3),
                                   "seeds": m["seeds"]}
    for label, name in ((DATASIZE, "DataSize (bigger source first)"), (RANDOM, "random order (mean of 200)"),
                        (CEILING, "the other ground-truth seeds' measurements (noise ceiling)")):
        m = results[label]
        on_mean = m["on_mean"]["ndcg"] if m.get("on_mean") else float("nan")
        table.append(f"| {name} | {fmt(m['ndcg'])} | {fmt(normalised(m['ndcg']), '.2f')} | {fmt(ndcg_se(m))} | "
                     f"{fmt(m['ndcg_shifted'])} | {fmt(m['spearman'], '.2f')} | {fmt(m['rho'], '.2f')} | {fmt(on_mean)} | – | – |")
        figs[{"DataSize": "datasize", "Random": "random_order"}.get(label.split(" ")[0], "ceiling")] = {
            "row": name, "label": label, "ndcg": round(m["ndcg"], 3), "ndcg_shifted": round(m["ndcg_shifted"], 3), "spearman": round(m["spearman"], 2),
            "rho": round(m["rho"], 2)}
    return table


def _paired_figures(results, figs) -> None:
    """figs["paired"]: the previous default against the baselines and against each challenger, paired over targets."""
    default_label, default = _row_of(results, DEFAULT_METHOD, "cosine")
    text_label, _ = _row_of(results, "textemb")
    task_label, _ = _row_of(results, "taskemb")
    vs_text, vs_task = _paired(results, default_label, text_label), _paired(results, default_label, task_label)
    vs_text_mean = _paired(results, default_label, text_label, "on_mean")
    vs_task_mean = _paired(results, default_label, task_label, "on_mean")
    rho_text = _paired(results, default_label, text_label, key="rho")
    challengers = {}
    for method in ("prefix+mean", "lora+mean", "ia3+mean"):
        label, m = _row_of(results, method, "cosine")
        if m is not None:
            challengers[method] = _paired(results, label, default_label)
    centred_label, _ = _row_of(results, DEFAULT_METHOD, "centered")
    challengers["bitfit+mean centered"] = _paired(results, centred_label, default_label)
    beyond = [k for k, p in {"TextEmb": vs_text, "TaskEmb": vs_task, **challengers}.items() if abs(p["z"]) > 2]
    figs["paired"] = {"default_vs_textemb": vs_text, "default_vs_taskemb": vs_task, "default_vs_textemb_seed_mean": vs_text_mean,
                      "default_vs_taskemb_seed_mean": vs_task_mean, "default_vs_textemb_rho": rho_text,
                      "challengers_vs_default": challengers, "beyond_2_se": beyond}


def _spread_figures(results, runs, figs) -> dict[str, int]:
    """The shifted-gain and Spearman spreads, the ground-truth seed spread; returns the runs per device."""
    embeddings = {k: v for k, v in figs["methods"].items()}
    best_shifted = max(embeddings.items(), key=lambda kv: kv[1]["ndcg_shifted"])
    spearmans = [v["spearman"] for v in embeddings.values()]
    figs["shifted_best_embedding"] = {"method": best_shifted[0], "ndcg_shifted": best_shifted[1]["ndcg_shifted"]}
    figs["spearman_range"] = [min(spearmans), max(spearmans)]
    gt_sd = [m["gt_seed_sd"] for n, m in results.items() if m.get("method") in PEFT and m["gt_seed_sd"] == m["gt_seed_sd"]]
    figs["gt_seed_sd_range"] = [round(min(gt_sd), 2), round(max(gt_sd), 2)]
    devices = defaultdict(int)
    for r in runs:
        devices[{"cuda": "H100"}.get(r.get("device"), "CPU")] += 1
    figs["ground_truth_runs"] = {"total": len(runs), **devices}
    return devices


def _baseline_lines(results, runs, devices, figs) -> list[str]:
    """What normalised means, and the previous default against the baselines and the challengers."""
    random_ndcg, ceiling = results[RANDOM]["ndcg"], results[CEILING]["ndcg"]
    _, default = _row_of(results, DEFAULT_METHOD, "cosine")
    paired = figs["paired"]
    vs_text, vs_task = paired["default_vs_textemb"], paired["default_vs_taskemb"]
    vs_text_mean, vs_task_mean = paired["default_vs_textemb_seed_mean"], paired["default_vs_taskemb_seed_mean"]
    rho_text, challengers, beyond = paired["default_vs_textemb_rho"], paired["challengers_vs_default"], paired["beyond_2_se"]
    return ["", "Normalised = (NDCG − random) / (noise ceiling − random): 0 is a random order "
            f"({random_ndcg:.3f}), 1 is ranking each ground-truth seed by the other seeds' measurements ({ceiling:.3f}), "
            "the most one more measurement of the same cells gives. `± targets` = standard error of the NDCG over the "
            f"{default['targets']:.0f} targets. Ground truth: {len(runs)} fine-tuning runs "
            f"({', '.join(f'{n} on {d}' for d, n in sorted(devices.items()))}).", "",
            f"- The previous default ({_name(DEFAULT_METHOD)}, cosine) against the baselines of Vu et al., paired over targets: "
            f"TextEmb {_pm(vs_text)} NDCG (won/tied/lost {'/'.join(map(str, vs_text['wtl']))}), TaskEmb {_pm(vs_task)} "
            f"({'/'.join(map(str, vs_task['wtl']))}); against the seed-mean truth {_pm(vs_text_mean)} and {_pm(vs_task_mean)}; "
            f"on ρ against TextEmb {_pm(rho_text)} (negative = better). "
            + ("Neither margin reaches 2 paired SE." if not {"TextEmb", "TaskEmb"} & set(beyond)
               else f"Beyond 2 paired SE: {', '.join(b for b in beyond if b in ('TextEmb', 'TaskEmb'))}."),
            "- Challengers against the default (ΔNDCG ± paired SE, positive = the challenger ranks better): " + "; ".join(
                f"{_name(k) if k in DISPLAY else _name(DEFAULT_METHOD) + ' centred'} {_pm(p)}" for k, p in challengers.items())
            + (": none beyond 2 paired SE." if not set(challengers) & set(beyond)
               else f"; beyond 2 paired SE: {', '.join(b for b in beyond if b in challengers)}.")]


def _cost_and_spread_lines(results, cost, figs) -> list[str]:
    """The cost of a target embedding, the shifted-gain NDCG, Spearman, and the packaged registry's own figure."""
    _, default = _row_of(results, DEFAULT_METHOD, "cosine")
    best_shifted = (figs["shifted_best_embedding"]["method"], figs["methods"][figs["shifted_best_embedding"]["method"]])
    spearmans = figs["spearman_range"]
    return [f"- Cost of a target embedding from raw data (one task, 2 CPU cores, model load included): PEFT "
            f"{min(cost[k]['seconds'] for k in ('bitfit', 'lora', 'ia3', 'prefix', 'prompt') if k in cost):.0f}–"
            f"{max(cost[k]['seconds'] for k in ('bitfit', 'lora', 'ia3', 'prefix', 'prompt') if k in cost):.0f} s, "
            f"TaskEmb {cost['taskemb']['seconds']:.0f} s with a vector of {cost['taskemb']['dim'] / 1e6:.1f} M values, "
            f"TextEmb {cost['textemb']['seconds']:.1f} s (it trains nothing): a fraction of the cost holds against TaskEmb only. "
            "The default for raw data (BitFit fused with TextEmb) costs the two together.",
            f"- On the shifted-gain NDCG (gain = accuracy above the worst source, defined on every target) DataSize "
            f"({figs['datasize']['ndcg_shifted']:.3f}) "
            + (f"beats every embedding (best: {_name(best_shifted[0])}, {best_shifted[1]['ndcg_shifted']:.3f})"
               if figs["datasize"]["ndcg_shifted"] > best_shifted[1]["ndcg_shifted"]
               else f"does not beat the best embedding ({_name(best_shifted[0])}, {best_shifted[1]['ndcg_shifted']:.3f})")
            + f", and random order scores {figs['random_order']['ndcg_shifted']:.3f}: that gain rewards putting the many "
            "sources that help a little anywhere near the top, not finding the best one.",
            f"- Spearman between similarity and measured transfer is {min(spearmans):.2f}–{max(spearmans):.2f} for every "
            f"embedding ({default['spearman']:.2f} for the default; the noise ceiling {figs['ceiling']['spearman']:.2f}): "
            "the rankings put good sources near the top; they do not order the whole list.",
            f"- Under cosine, the packaged registry (the seed-0 BitFit vectors alone) scores "
            f"{figs['methods'].get('packaged', {}).get('ndcg', float('nan')):.3f}; the table's BitFit row averages "
            f"{default['seeds']} embedding seeds of the same recipe ({default['ndcg']:.3f}). An NDCG computed against "
            f"one ground-truth seed at a time moves by {figs['gt_seed_sd_range'][0]:.2f}–{figs['gt_seed_sd_range'][1]:.2f} (sd)."]


def _margins_line(results, figs) -> str:
    """Every (method, baseline, metric, truth) whose paired margin exceeds 2 SE, either way."""
    text_label, _ = _row_of(results, "textemb")
    task_label, _ = _row_of(results, "taskemb")
    firm, compared = [], 0  # every (method, baseline, metric, truth) whose paired margin exceeds 2 SE, either way
    for method in ("bitfit+mean", "prefix+mean", "lora+mean", "ia3+mean"):
        for sim in SIMILARITIES:
            label, m = _row_of(results, method, sim)
            if m is None:
                continue
            for base_label, base in ((text_label, "TextEmb"), (task_label, "TaskEmb")):
                for key, truth, what in (("ndcg", "rows", "NDCG"), ("rho", "rows", "ρ"), ("ndcg", "on_mean", "NDCG, seed-mean truth"),
                                         ("rho", "on_mean", "ρ, seed-mean truth")):
                    if truth == "on_mean" and not (m.get("on_mean") and results[base_label].get("on_mean")):
                        continue
                    pr = _paired(results, label, base_label, truth, key)
                    compared += 1
                    if abs(pr["z"]) > 2:
                        firm.append({"method": method, "similarity": sim, "against": base, "metric": what, **pr})
    figs["beyond_2_se_vs_baselines"] = firm
    return ("- Margins over the baselines beyond 2 paired SE, on any of NDCG or ρ against single seeds or the seed-mean "
            "truth (PEFT methods in both similarities): " + ("; ".join(
                f"{_name(f['method'])} {'centred' if f['similarity'] == 'centered' else f['similarity']} vs "
                f"{f['against']}, {f['metric']}: {_pm(f)}" for f in firm) if firm else "none")
            + f" ({len(firm)} of {compared} comparisons; about {compared / 20:.0f} would pass 2 SE by chance alone).")


def _curve_lines(curve, curve_targets, corr, figs) -> list[str]:
    """The early-checkpoint curve and the in-task metric against NDCG."""
    lines = []
    bitfit_curve = curve.get(DEFAULT_METHOD, {})
    if bitfit_curve:
        steps = sorted(bitfit_curve)
        figs["curve"] = {m: {str(s): round(v, 3) for s, v in pts.items()} for m, pts in curve.items()}
        longer = [m for m in curve if "@" in m and not old_sketch(m)]  # old-sketch rows are listed apart below
        lines.append(f"- Early checkpoints ({curve_targets[DEFAULT_METHOD]} `core10` targets and sources): BitFit's NDCG is "
                     + " / ".join(f"{bitfit_curve[s]:.2f}" for s in steps) + f" at steps {' / '.join(map(str, steps))}"
                     + ("; on 500-step schedules (NDCG at step 10 … at the end): " + ", ".join(
                         f"{m.split('@')[0].split('+')[0]} {curve[m][min(curve[m])]:.2f} … {curve[m][max(curve[m])]:.2f}"
                         for m in longer if m.endswith("@500")) if longer else "") + ".")
    figs["checkpoint_correlation"] = {"pooled": round(corr["pooled"], 2), "within": round(corr["within"], 2),
                                      "points": corr["points"]}
    lines.append(f"- A checkpoint's in-task accuracy barely predicts its NDCG: Spearman {corr['within']:.2f} within a target "
                 f"({corr['pooled']:.2f} pooled) over {corr['points']} checkpoint × target points.")
    return lines


def _more_lines(results, pools, figs) -> list[str]:
    """The exploratory hybrid, the core10 pool, the recipe mismatch and the folders still on the first LoRA sketch."""
    lines = []
    hybrid = results.get(HYBRID)
    if hybrid:
        figs["hybrid"] = round(hybrid["ndcg"], 3)
        lines.append(f"- Summing BitFit's and TextEmb's centred cosines (unweighted) scores {hybrid['ndcg']:.3f}; the "
                     "fusion that ships (pcr-1 + 0.5 × TextEmb, z-scored) is measured in \"Does the answer depend on the "
                     "target?\".")
    core = {method: next((r["core10"]["ndcg"] for lbl, r in pools.items() if f"[{method}]" in lbl and lbl.endswith(sim)), None)
            for method, sim in ((DEFAULT_METHOD, "cosine"), ("textemb", "centered"), ("taskemb", "cosine"))}
    if all(v is not None for v in core.values()):
        figs["core10_pool"] = {k: round(v, 3) for k, v in core.items()}
        lines.append(f"- With only the 10 `core10` tasks as sources (seed-0 embeddings): BitFit {core[DEFAULT_METHOD]:.3f}, "
                     f"TextEmb {core['textemb']:.3f}, TaskEmb {core['taskemb']:.3f} NDCG.")
    mismatch_file = RESULTS / "recipe_mismatch.json"
    if mismatch_file.is_file():
        mm = json.loads(mismatch_file.read_text())["methods"].get(DEFAULT_METHOD)
        if mm:
            figs["recipe_mismatch"] = mm
            early, late = mm["ndcg"].get("step 10 of 100"), mm["ndcg"].get("step 500 of 500")
            own10, own100 = mm["own_entry_rank"].get("step 10 of 100"), mm["own_entry_rank"].get("step 100 of 100")
            parts = []
            if early:
                parts.append(f"a target taken at step 10 ranks the step-100 sources at {early['ndcg']:.3f} NDCG against "
                             f"{early['ndcg_matched']:.3f} matched ({early['delta']:+.3f} ± {early['delta_se']:.3f}, "
                             f"{early['targets']} targets)")
            if late:
                parts.append(f"one tuned 500 steps {late['delta']:+.3f} ± {late['delta_se']:.3f} ({late['targets']} targets)")
            if own10 and own100:
                parts.append(f"a fresh run of a registry task finds its own entry at mean rank {own10['mean']:.1f} from "
                             f"step 10, {own100['mean']:.1f} with the registry's recipe")
            lines.append("- Recipe mismatch (`benchmarks/recipe_mismatch.py`, BitFit): " + "; ".join(parts) + ". "
                         "`rank` warns about it and `rank --strict` refuses it.")
    old = [m for m in peft_folders() if old_sketch(m)]
    figs["old_sketch_folders"] = old
    if old:
        lines.append(f"- Still on the first, biased LoRA sketch (not re-tuned yet, labelled so in RESULTS.md): "
                     f"{', '.join(f'`{m}`' for m in old)}.")
    return lines


def headline_block(headline: dict) -> str:
    """The top of the README's evidence block: every ranker out of sample, the in-sample figure beside it, and
    the small regime when measured."""
    table = ["**Out of sample** (every choice — method, similarity, step, weight — made on the other "
             "targets, leave-one-target-out; RESULTS.md, \"Headline\"), with the in-sample figure (the best candidate "
             "chosen on all targets at once) beside it. In sample, made earlier on these same targets: the mean-pooling "
             "head (every candidate uses it), the tuning recipe (100 steps, 1,000 rows) and the candidate pool itself. "
             "These rows predate the target-dependence work below, whose similarities (pcr-k, the TextEmb fusion) are "
             "chosen out of sample in their own table:", "",
             "| ranker | candidates | NDCG out of sample | normalised | NDCG in sample | normalised in sample | ρ | targets |",
             "|---|---|---|---|---|---|---|---|"]
    lim = headline["limited"]
    both = [(n, f, True) for n, f in lim["families"].items()] + [(n, f, False) for n, f in lim["fixed"].items()]
    for name, f, is_family in sorted(both, key=lambda e: -(e[1]["ndcg"] if e[1]["ndcg"] == e[1]["ndcg"] else -1)):
        ins = f["in_sample"] if is_family else None
        table.append(f"| {name} | {f['candidates'] if is_family else '–'} | {fmt(f['ndcg'])} | {fmt(f['normalised'], '.2f')} | "
                     f"{fmt(ins['ndcg']) if ins else '–'} | {fmt(f['normalised_in_sample'], '.2f') if ins else '–'} | "
                     f"{fmt(f['rho'], '.2f')} | {f['targets']} |")
    noise = lim.get("beats_base_seed_noise")
    lines = ["", f"Targets with a source that beats base by more than 2 binomial SE (seed means): limited regime "
             f"{len(lim['beats_base_2se'])} of {lim['fixed'][RANDOM]['targets']}"
             + (f" (against the measured seed-to-seed noise: {len(noise['targets'])}, where about "
                f"{noise['expected_by_noise']:.1f} would pass by noise alone)" if noise else "")]
    small = headline.get("small")
    if small:
        own = next((f for n, f in small["families"].items() if n.startswith("ours, target embedded")), None)
        lines[-1] += f", small regime ({SMALL_ROWS} target rows) {len(small['beats_base_2se'])} of {small['fixed'][RANDOM]['targets']}."
        parts = [f"{n.split(':')[0].split(' (')[0]} {f['ndcg']:.3f} ({f['normalised']:.2f} normalised)"
                 for n, f in [(OURS, small["families"].get(OURS)), (ESM_LOGME, small["fixed"].get(ESM_LOGME)),
                              (TEXTEMB_FAMILY, small["families"].get(TEXTEMB_FAMILY))] if f]
        lines.append(f"Small regime, out of sample (RESULTS.md, \"Small regime\"): "
                     + (f"ours with the target embedded from its {SMALL_ROWS} rows {own['ndcg']:.3f} NDCG "
                        f"({own['normalised']:.2f} normalised); " if own else
                        f"no ranker embeds the target from its {SMALL_ROWS} rows yet; ")
                     + "with 1,000-row target vectors and features: " + ", ".join(parts)
                     + f"; random {small['fixed'][RANDOM]['ndcg']:.3f}, noise ceiling {small['fixed'][CEILING]['ndcg']:.3f}.")
    else:
        lines[-1] += "; the small regime is not measured."
    return "\n".join(table + lines) + "\n\nIn-sample rows per method (each in the similarity that ranks it better: an in-sample choice):\n\n"
