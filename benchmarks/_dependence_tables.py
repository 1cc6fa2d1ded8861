"""target_dependence.py's tables: the rows of each regime, issue 19's goal beside what was measured, the summary
printed at the end of a run."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from _common import RESULTS
from _dependence_metrics import RANDOM_DRAWS

def print_summary(results):
    for regime, r in results["regimes"].items():
        print(f"\n== {regime} (seeds {r['seeds']}; random {r['random']['all']:.3f} / sentiment {r['random']['sentiment']:.3f} "
              f"/ other {r['random']['other']:.3f})")
        print(f"{'ranker':<52} {'NDCG':>6} {'sent':>6} {'other':>6} {'oth-rnd':>14} {'rhoFix':>6} {'rhoDef':>6} {'top3':>5} {'fam':>6} {'rho':>5}")
        for label, row in sorted(r["rows"].items(), key=lambda kv: -kv[1]["ndcg"]["all"]):
            if label == "random":
                continue
            o = row["vs_random_other"]
            print(f"{label:<52} {row['ndcg']['all']:6.3f} {row['ndcg']['sentiment']:6.3f} {row['ndcg']['other']:6.3f} "
                  f"{o['diff']:+.3f}±{o['se']:.3f} {row['spearman_fixed']:6.2f} {row['spearman_default_fixed']:6.2f} "
                  f"{row['top3_max']:5.1f} {row['family_top3']:4.1f}/{row['family_targets']} {row['rho']:5.2f}")
        for peer in ("ESM-LogME", "LogME"):
            lf = r["rows"][peer]["leak_free"]
            print(f"{peer} leak-free seeds {lf['seeds']}: {lf['ndcg']['all']:.3f} vs random {r['random_leak_free']['all']:.3f} "
                  f"({lf['vs_random']['diff']:+.3f}±{lf['vs_random']['se']:.3f}); on the leaked seed {lf['leaked_seed']['all']:.3f}")
        for label in ("bitfit cosine", "bitfit pcr-1", "bitfit pcr-2", "bitfit centered"):
            row = r["rows"][label]
            print(f"{label}: seed0 {row['ndcg_seed0']['all']:.3f} top3 seed0 {row['top3_max_seed0']} ({row['top3_most_seed0']}); "
                  f"leak-free seeds {row['ndcg_leak_free_seeds']['all']:.3f}")
        lo = r["loto_all"]
        print(f"LOTO over embeddings: {lo['ndcg']['all']:.3f} (other {lo['ndcg']['other']:.3f}); chosen {Counter(lo['chosen'].values())}")
    for pool, entry in results["joint"].items():
        print(f"joint LOTO ({pool}): limited {entry['limited']['ndcg']['all']:.3f} (other {entry['limited']['ndcg']['other']:.3f}), "
              f"small {entry['small']['ndcg']['all']:.3f}; in-sample best {entry['in_sample_best']}; chosen {Counter(entry['chosen'].values())}")


SHIPPED = "fusion: bitfit pcr-1 + 0.5 x textemb centered"  # rankers.py: FUSION_TEXT_WEIGHT, selector: pcr-1
SHOWN = [  # (label, display name)
    (SHIPPED, "**fusion: BitFit pcr-1 + 0.5 × TextEmb (default for data and registry tasks)**"),
    ("bitfit pcr-1", "**BitFit pcr-1 (default for an adapter alone)**"),
    ("bitfit pcr-2", "BitFit pcr-2"),
    ("bitfit pcr-3", "BitFit pcr-3"),
    ("bitfit centered", "BitFit centred"),
    ("bitfit standardized", "BitFit standardised per dimension"),
    ("bitfit csls", "BitFit CSLS (3 neighbours)"),
    ("bitfit hub-corrected", "BitFit, scores standardised per source"),
    ("bitfit null-subtracted cosine", "BitFit − null task (shuffled labels), cosine"),
    ("bitfit null-subtracted centered", "BitFit − null task, centred"),
    ("bitfit null-subtracted pcr-1", "BitFit − null task, pcr-1"),
    ("fusion: bitfit pcr-1 + 1 x textemb centered", "fusion: BitFit pcr-1 + 1 × TextEmb"),
    ("fusion: bitfit centered + 1 x textemb centered", "fusion: BitFit centred + 1 × TextEmb"),
    ("bitfit cosine", "BitFit cosine (the previous default)"),
    ("textemb centered", "TextEmb centred"),
    ("ESM-LogME", "ESM-LogME (all seeds; reads seed 0's models)"),
    ("LogME", "LogME (all seeds; reads seed 0's models)"),
]


def _row(name: str, row: dict, seed0: bool = False) -> str:
    nd = row["ndcg_seed0"] if seed0 else row["ndcg"]
    o = row["vs_random_other_seed0"] if seed0 else row["vs_random_other"]
    dep = row["dependence_seed0"] if seed0 else row
    seeds = 1 if seed0 else row.get("seeds", 1)
    return (f"| {name} | {seeds} | {nd['all']:.3f} | {nd['sentiment']:.3f} | {nd['other']:.3f} | "
            f"{o['diff']:+.3f} ± {o['se']:.3f} ({o['diff'] / o['se']:.1f} SE) | {dep['spearman_fixed']:+.2f} / "
            f"{dep['spearman_fixed_abs']:.2f} | "
            f"{dep['top3_max']:g} | {dep['family_top3']:g} / {dep['family_targets']} |")


def regime_table(r: dict) -> list[str]:
    lines = ["| ranker | embedding seeds | NDCG | sentiment (4) | other (12) | other − random | "
             "Spearman with its target-independent order: mean / mean of \\|ρ\\| | most top-3 lists one source is in (of 16) | "
             "own family in top 3 |", "|---|---|---|---|---|---|---|---|---|"]
    rows = r["rows"]
    if SHIPPED in rows and rows[SHIPPED].get("seeds", 1) > 1:
        lines.append(_row("**as shipped: the default on the packaged seed-0 vectors**", rows[SHIPPED], seed0=True))
    for label, name in SHOWN:
        if label in rows:
            lines.append(_row(name + (" (expected over embedding seeds)" if rows[label].get("seeds", 1) > 1 else ""),
                              rows[label]))
    rnd = r["random"]
    lines.append(f"| random order (mean of {RANDOM_DRAWS}) | – | {rnd['all']:.3f} | {rnd['sentiment']:.3f} | "
                 f"{rnd['other']:.3f} | – | – | – | – |")
    return lines


def goal_lines(results: dict) -> list[str]:
    """Issue 19's goal, each part beside what was measured (limited regime, 16 registry targets, leave-one-out)."""
    lim, small = results["regimes"]["limited"], results["regimes"]["small"]
    shipped, joint = lim["rows"][SHIPPED], results["joint"]["all"]["limited"]
    dep = shipped["dependence_seed0"]
    o = joint["vs_random_other"]
    small_dep = small["rows"][SHIPPED]["dependence_seed0"]
    lines = ["", "**Issue 19's goal against what was measured** (the default as shipped, seed-0 vectors, limited regime "
                 "unless said):", "",
             f"- mean Spearman with the target-independent order ≤ 0.3, judged on the mean of |ρ| (a reversed order is "
             f"as target-blind; was {lim['rows']['bitfit cosine']['spearman_fixed_abs']:.2f} under the previous "
             f"default): {dep['spearman_fixed_abs']:.2f} (signed mean {dep['spearman_fixed']:+.2f}): "
             f"{'met' if dep['spearman_fixed_abs'] <= 0.3 else 'not met'}; in the small regime "
             f"{small_dep['spearman_fixed_abs']:.2f}: {'met' if small_dep['spearman_fixed_abs'] <= 0.3 else 'not met'}.",
             f"- no source in more than 5 of the 16 top-3 lists (was {lim['rows']['bitfit cosine']['top3_max_seed0']}): "
             f"{dep['top3_max']} ({dep['top3_most']}): {'met' if dep['top3_max'] <= 5 else 'not met'}; small regime "
             f"{small_dep['top3_max']} ({small_dep['top3_most']}).",
             f"- out-of-sample NDCG on the 12 non-sentiment targets above random by ≥ 2 SE: {o['diff']:+.3f} ± {o['se']:.3f} "
             f"({o['diff'] / o['se']:.1f} SE): {'met' if o['diff'] >= 2 * o['se'] else 'not met'}.",
             f"- overall out-of-sample NDCG not below 0.602: {joint['ndcg']['all']:.3f}: "
             f"{'met' if joint['ndcg']['all'] >= 0.602 else 'not met'}, with a caveat: this pool holds BitFit's "
             "similarities and fusions only, and BitFit was chosen earlier on these targets (0.602 chose among 48 "
             "candidates of every method). Against the previous default on the same targets: "
             f"{joint['vs_previous_default']['diff']:+.3f} ± {joint['vs_previous_default']['se']:.3f}.",
             "- for an adapter alone (no texts: pcr-1 by itself) the out-of-sample choice among the similarities scores "
             f"{results['joint']['similarities']['limited']['vs_previous_default']['diff']:+.3f} ± "
             f"{results['joint']['similarities']['limited']['vs_previous_default']['se']:.3f} against the previous "
             "default: within 2 paired SE but behind it; pcr-1 ships there for its target dependence (rows above), "
             "a judgement, not a measured gain."]
    outside = RESULTS / "outside_targets.json"
    if outside.is_file():
        o = json.loads(outside.read_text())
        per = o["spearman_fixed"]["fusion (default)"]
        mean = float(np.mean(list(per.values())))
        over = [t for t, r in per.items() if abs(r) > 0.5]
        lines.append(f"- tasks outside the registry, Spearman with the fixed order ≤ 0.5: mean {mean:+.2f}, mean |ρ| "
                     f"{float(np.mean(np.abs(list(per.values())))):.2f} over {len(per)} targets; {len(over)} of them "
                     f"above 0.5 in size ({', '.join(f'{t} {per[t]:+.2f}' for t in over) or 'none'}): "
                     f"{'met' if not over else 'met on average, not on every target'}.")
    lines.append("- the peers scored leak-free: the table above (seeds their source models did not read).")
    return lines
