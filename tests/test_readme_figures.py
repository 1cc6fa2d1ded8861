"""Every figure the README quotes in its benchmark and evidence sections comes from `benchmarks/results`.

`python benchmarks/report.py` writes them into the README's GENERATED blocks (and the same text into
`benchmarks/results/readme_*.md`, with the figures in `readme_figures.json`). These tests fail when a
block was edited by hand or went stale, when a figure disagrees with RESULTS.md or the benchmark JSON
files, or when a figure is written outside the blocks.
"""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402

README = (ROOT / "README.md").read_text()
FIGURES = json.loads(report.FIGURES_FILE.read_text())
RESULTS_MD = (ROOT / "benchmarks" / "RESULTS.md").read_text()


def table(text: str, header_start: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for the markdown table whose header starts with `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


@pytest.mark.parametrize("name", sorted(report.SNIPPETS))
def test_the_readme_blocks_are_the_generated_snippets(name):
    block = report.read_block(README, name)
    assert block is not None, f"README lost its GENERATED {name} markers"
    assert block == report.SNIPPETS[name].read_text(), f"README's {name} block differs from the report's; rerun report.py"


def test_the_benchmark_block_matches_the_benchmark_json_files():
    text, figures = report.benchmark_table()
    assert report.read_block(README, "benchmarks") == text
    assert FIGURES["benchmarks"] == json.loads(json.dumps(figures))
    cost = {r["method"]: r["seconds"] for r in json.loads((report.RESULTS / "target_embedding_cost.json").read_text())["rows"]}
    assert f"LoRA {cost['lora']:.1f} s" in text and f"TextEmb baseline {cost['textemb']:.1f} s" in text


def test_the_evidence_table_matches_results_md():
    results = table(RESULTS_MD, "| method | NDCG | ± targets | NDCG shifted |")
    readme = table(report.read_block(README, "evidence"), "| embedding (step 100 of 100) |")
    rows = dict(FIGURES["evidence"]["methods"])
    rows |= {k: FIGURES["evidence"][k] for k in ("datasize", "random_order", "ceiling")}
    assert {"bitfit+mean", "lora+mean", "textemb", "taskemb", "packaged"} <= set(rows)
    for key, fig in rows.items():
        ndcg, se, shifted, rho, _regret, spearman = results[fig["label"]][:6]
        assert (ndcg, shifted, rho) == (f"{fig['ndcg']:.3f}", f"{fig['ndcg_shifted']:.3f}", f"{fig['rho']:.2f}"), key
        assert abs(float(spearman) - fig["spearman"]) <= 0.005, key  # RESULTS.md: 3 decimals, README: 2
        cells = readme[fig["row"]]
        assert cells[0] == ndcg and cells[2] == se and cells[3] == shifted and cells[5] == rho, key
        normalised = (fig["ndcg"] - FIGURES["evidence"]["random"]) / (FIGURES["evidence"]["noise_ceiling"] - FIGURES["evidence"]["random"])
        assert abs(float(cells[1]) - normalised) <= 0.01, key


def test_the_paired_figures_match_results_md():
    figs = FIGURES["evidence"]
    default = figs["methods"]["bitfit+mean"]["label"]
    for baseline, key in (("textemb", "default_vs_textemb"), ("taskemb", "default_vs_taskemb")):
        against = figs["methods"][baseline]["label"]
        rows = [line for line in RESULTS_MD.splitlines() if line.startswith(f"| {default} | {against} |")]
        assert len(rows) == 1, (default, against)
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        p = figs["paired"][key]
        assert cells[2] == f"{p['delta']:+.3f} ± {p['se']:.3f}" and cells[3] == "/".join(map(str, p["wtl"]))
        assert f"{p['delta']:+.3f} ± {p['se']:.3f}" in report.read_block(README, "evidence")


def test_the_checkpoint_points_and_recipe_mismatch_match_their_sources():
    pooled = next(line for line in RESULTS_MD.splitlines() if line.startswith("| all methods pooled |"))
    points = int(pooled.strip("|").split("|")[2])
    assert FIGURES["evidence"]["checkpoint_correlation"]["points"] == points
    assert f"over {points} checkpoint × target points" in README
    mismatch = json.loads((report.RESULTS / "recipe_mismatch.json").read_text())["methods"]["bitfit+mean"]
    assert FIGURES["evidence"]["recipe_mismatch"] == mismatch
    early = mismatch["ndcg"]["step 10 of 100"]
    assert f"{early['ndcg']:.3f} NDCG against {early['ndcg_matched']:.3f} matched" in README


def test_no_figure_is_written_outside_the_generated_blocks():
    text = section(README, "\n## Benchmarks\n", "\n## Notes and limits\n")
    for name in report.SNIPPETS:
        text = text.replace(report.read_block(README, name), "")
    stray = re.findall(r"\d+\.\d+|\d+(?:\.\d+)? ?(?:%|×|s\b|ms\b|GB\b|MB\b)|\d[\d,]* (?:points|runs)\b", text)
    assert stray == [], f"figures outside the GENERATED blocks (move them into report.py's snippets): {stray}"


def test_the_headline_is_out_of_sample_with_the_in_sample_figure_beside_it():
    head = FIGURES["headline"]["limited"]
    results = table(RESULTS_MD, "| ranker (choices made leave-one-target-out) |")
    readme = table(report.read_block(README, "evidence"), "| ranker | candidates | NDCG out of sample |")
    assert report.OURS in head["families"] and report.TEXTEMB_FAMILY in head["families"]
    for name, f in head["families"].items():
        assert results[name][1] == readme[name][1] == f"{f['ndcg']:.3f}", name
        assert results[name][3] == readme[name][3] == f"{f['in_sample']['ndcg']:.3f}", name
        assert int(results[name][0]) == f["candidates"] and sum(f["chosen_counts"].values()) == f["targets"]
        random, ceiling = head["fixed"][report.RANDOM]["ndcg"], head["fixed"][report.CEILING]["ndcg"]
        assert abs(float(readme[name][2]) - (f["ndcg"] - random) / (ceiling - random)) <= 0.011, name
    for name, f in head["fixed"].items():
        assert results[name][1] == readme[name][1] == f"{f['ndcg']:.3f}", name


def test_the_comparison_with_the_peer_quotes_the_headline():
    head = FIGURES["headline"]["limited"]
    rows = head["families"] | head["fixed"]
    compare = table(report.read_block(README, "compare"), "| ranker | NDCG | normalised |")
    assert FIGURES["compare"]["rows"], "the compare block has no rows"
    for shown, fig in FIGURES["compare"]["rows"].items():
        assert compare[shown][0] == f"{rows[fig['label']]['ndcg']:.3f}", shown
        assert compare[shown][3] == f"{rows[fig['label']]['rho']:.2f}", shown
    block = report.read_block(README, "compare")
    for name, pair in FIGURES["compare"]["pairs"].items():
        p = pair["ndcg"]
        assert f"NDCG {p['delta']:+.3f} ± {p['se']:.3f}" in block, name
        # the verdict reads the unrounded z (a margin of 2.03 SE once printed as "within" from rounded values)
        beyond = abs(p["z"]) > 2
        verdict = "ranks better" if beyond else "within 2 paired SE"
        sentence = next(line for line in block.splitlines() if f"NDCG {p['delta']:+.3f} ± {p['se']:.3f}" in line)
        assert verdict in sentence.split("):", 1)[1].split(";")[0] and (beyond or "neither" in sentence), name


def test_the_hub_and_space_rows_quote_their_json_files():
    text = report.read_block(README, "benchmarks")
    hub = json.loads((report.RESULTS / "hub_sync.json").read_text())["sync"]
    assert f"re-sync {hub['from_hub_resync']['seconds']:.2f} s" in text
    assert (f"first sync {hub['from_hub_first_other_cache']['seconds']:.1f} / {hub['from_hub_first']['seconds']:.1f} s"
            f" on two empty caches, alternated with the previous implementation's "
            f"{hub['legacy_first']['seconds']:.1f} / {hub['legacy_second']['seconds']:.1f} s") in text
    space = json.loads((report.RESULTS / "space_latency.json").read_text())
    for r in space["lookups"]:
        assert f"p50 {r['registry_lookup']['p50_ms']:,.0f} ms / p95 {r['registry_lookup']['p95_ms']:,.0f} ms" in text
        assert f"`/downloads` p50 {r['downloads_call']['p50_ms']:,.0f} / p95 {r['downloads_call']['p95_ms']:,.0f} ms" in text
    assert f"a 1,000-row CSV upload to a ranking {space['upload']['upload_to_ranking_s']:.0f} s" in text


def test_the_target_cost_row_quotes_the_same_run_and_the_breakdown():
    text = report.read_block(README, "benchmarks")
    same_run = json.loads((report.RESULTS / "target_cost_same_run.json").read_text())["median"]
    for target, m in same_run.items():
        assert (f"{target}: ours {m['ours']:.1f} s, ESM-LogME {m['esm-logme']:.1f} s (ours "
                f"{m['ours_over_esm_logme']:.1f}x), forward pass {m['forward']:.1f} s") in text
    parts = json.loads((report.RESULTS / "target_breakdown.json").read_text())
    assert f"100 steps {parts['seconds']['optimizer steps + checkpoint']:.1f} s" in text
    assert f"matrix products {parts['operators']['groups_share']['matrix products']:.0%}" in text
    assert ", ".join(f"{c:.2f}" for c in parts["dropout_masks"]["cosine_to_default"]) in text


def test_the_scale_and_gpu_rows_quote_their_json_files():
    block = report.read_block(README, "benchmarks")
    latency = json.loads((report.RESULTS / "ranking_latency.json").read_text())["sizes"]["100000"]
    exact = next(r for r in latency["ranker"] if r["search"] == "exact")
    assert f"numpy float32 matvec + argpartition {latency['bound']['numpy_f32_median_ms']:,.0f} ms" in block
    assert f"exact {exact['cosine']['median_ms']:,.0f} / {exact['centered']['median_ms']:,.0f} ms" in block
    grid = json.loads((report.RESULTS / "gpu_grid.json").read_text())["runs"]
    assert f"k=1 {grid[0]['phases'][0]['cells_per_minute']:.1f}" in block
    assert all(f"{60 * r['main']['cells'] / r['main']['seconds']:.1f}" in block for r in grid)


def test_the_shipped_rankings_figures_are_recomputed_through_the_packaged_selector():
    """The 'as shipped' row of the target-dependence table, recomputed from the committed ground truth by ranking every
    packaged registry task leave-one-out with `AutoSourceSelector.from_default().rank(task)`, all defaults: the path
    `taskemb-hub quickstart` and `rank --target <task>` run (no private scoring twin)."""
    import numpy as np

    import target_dependence as td
    from taskemb_hub import AutoSourceSelector

    selector = AutoSourceSelector.from_default()
    rankings = {t: selector.rank(t) for t in td.TASKS}
    assert {r.ranker for r in rankings.values()} == {"fusion"} and {r.similarity for r in rankings.values()} == {"pcr-1"}
    scores = {t: {row["task"]: row["score"] for row in r.rows} for t, r in rankings.items()}
    _, complete, _, _ = report.load_matrix(report.load_runs(report.RESULTS / "transfer_limited.jsonl"), td.TASKS)
    ndcg = td.split(td.target_ndcg(scores, complete))

    def without(also_exclude):  # every other task ranked with `also_exclude` left out of the registry too (leave-two-out orders)
        return {t: {row["task"]: row["score"] for row in selector.rank(t, exclude={also_exclude}).rows}
                for t in td.TASKS if t != also_exclude}

    dep = td.dependence(scores, fixed_orders=td.leave_two_out_orders(without, scores))
    block = report.read_block(README, "dependence")
    limited = block.split("**Limited regime**", 1)[1].split("**Small regime**", 1)[0]
    row = table(limited, "| ranker |")["**as shipped: the default on the packaged seed-0 vectors**"]
    assert row[1:4] == [f"{ndcg['all']:.3f}", f"{ndcg['sentiment']:.3f}", f"{ndcg['other']:.3f}"]
    assert row[5:8] == [f"{dep['spearman_fixed']:+.2f} / {dep['spearman_fixed_abs']:.2f}", f"{dep['top3_max']:g}",
                        f"{dep['family_top3']:g} / {dep['family_targets']}"]
    per_target = td.target_ndcg(scores, complete)
    other = td.paired(per_target, td.random_ndcg(complete), sorted(set(per_target) - td.SENTIMENT))
    assert row[4].startswith(f"{other['diff']:+.3f} ± {other['se']:.3f}")
    assert np.isfinite(ndcg["all"])


def test_the_index_update_paragraph_quotes_its_json_file():
    update = json.loads((report.RESULTS / "index_update.json").read_text())
    paragraph = section(README, "**An index that follows the Hub.**", "**Query an index with SQL.**")
    assert f"{update['entries']:,} entries of {update['dim']} values" in paragraph
    assert f"re-download {update['redownloaded_bytes'] / 1e6:.2f} MB of a {update['index_bytes'] / 1e6:.0f} MB index" \
           f" ({100 * update['ratio']:.2f} %" in paragraph
    assert f"load {update['load_1min']:.1f}" in paragraph


def test_the_busy_machine_row_quotes_its_json_file():
    text = report.read_block(README, "benchmarks")
    settings = json.loads((report.RESULTS / "omp_wait_policy.json").read_text())["settings"]
    for name, s in settings.items():
        assert (f"{name}: {s['median']['default']:.1f} s spinning, {s['median']['PASSIVE']:.1f} s sleeping "
                f"(x{s['default_over_passive']:.2f}") in text
