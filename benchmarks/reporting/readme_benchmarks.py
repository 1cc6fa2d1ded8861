"""The README's benchmark table, from the benchmark scripts' JSON files."""

import json

from _common import BITFIT_DIM, RESULTS

from .data import BASELINES

COST_NAMES = {"lora": "LoRA", "bitfit": "BitFit", "ia3": "IA3", "prompt": "prompt", "prefix": "prefix",
              "taskemb": "TaskEmb", "textemb": "TextEmb"}


def benchmark_table() -> tuple[str, dict]:
    """The README's benchmark table, from the benchmark scripts' JSON files (cheap: a test recomputes it)."""
    figures, rows = {}, []
    thr = json.loads((RESULTS / "throughput.json").read_text())
    ours, trainer = max(thr["ours"]), max(thr["trainer"])
    spread = thr["ours"] + thr["trainer"]
    figures["throughput"] = {"ours": round(ours, 1), "trainer": round(trainer, 1), "ratio": round(thr["ratio"], 3),
                             "spread": [round(min(spread)), round(max(spread))]}
    a = thr["args"]
    rows.append(f"| tuning throughput, our Accelerate loop vs `transformers.Trainer` ({COST_NAMES.get(a['method'], a['method'])}, "
                f"{a['task']}, batch {a['batch_size']}, {a['steps']} steps, loop only, best of {a['repeats']}) | "
                f"`python benchmarks/throughput.py` | {ours:.1f} vs {trainer:.1f} examples/s (ratio {thr['ratio']:.3f}, "
                f"inside the run-to-run spread of {min(spread):.0f}–{max(spread):.0f}) |")
    cost = json.loads((RESULTS / "target_embedding_cost.json").read_text())
    by = {r["method"]: r for r in cost["rows"]}
    figures["cost_seconds"] = {m: round(r["seconds"], 1) for m, r in by.items()}
    figures["cost_peak_mb"] = {m: round(r["peak_rss_mb"]) for m, r in by.items()}
    parts = []
    for m in ("lora", "bitfit", "ia3", "prompt", "prefix", "taskemb", "textemb"):
        if m in by:
            extra = f" / {by[m]['peak_rss_mb']:,.0f} MB peak" if m in ("lora", "textemb") else ""
            parts.append(f"{COST_NAMES[m]}{' baseline' if m in BASELINES else ''} {by[m]['seconds']:.1f} s{extra}")
    rows.append(f"| time / peak RSS to a target embedding at step 100 from raw data ({cost['task']}, 1,000 rows, model "
                f"load included, {cost['machine']['cpus']} CPU cores) | `python benchmarks/target_embedding_cost.py "
                f"--methods lora,bitfit,ia3,prompt,prefix,textemb,taskemb` | {'; '.join(parts)} |")
    rows += target_cost_row(figures) + busy_machine_row(figures) + ranking_latency_row(figures) + gpu_grid_row(figures)
    rows += hub_sync_row(figures) + space_latency_row(figures)
    table = ["| what | command | figure |", "|---|---|---|"] + rows
    return "\n".join(table) + "\n", figures


def _result_json(name: str):
    """A benchmark's results file under results/, parsed; None when that benchmark has not been run."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def target_cost_row(figures: dict) -> list[str]:
    """A new target's answer beside ESM-LogME's and a bare forward pass, one run (`target_cost_same_run.py`), with
    where the seconds of ours go (`target_breakdown.py`), when those files exist."""
    data, parts = _result_json("target_cost_same_run.json"), _result_json("target_breakdown.json")
    if data is None:
        return []
    loads = [r["load_before"] for r in data["rows"]]
    stored = {r.get("stored_esms") for r in data["rows"] if r["kind"] == "esm-logme"}
    figures["target_cost_same_run"] = data["median"]
    text = "; ".join(f"{t}: ours {m['ours']:.1f} s, ESM-LogME {m['esm-logme']:.1f} s (ours {m['ours_over_esm_logme']:.1f}x), "
                     f"forward pass {m['forward']:.1f} s" for t, m in data["median"].items()
                     if {"ours", "esm-logme", "forward"} <= set(m))
    esm = "its fitted maps" if stored == {15} else "maps of its shape with random weights (the fitted ones were not on disk; same computation)"
    row = (f"| a new target's answer from its 1,000 rows, in one run, each in a fresh process timed after `import torch, "
           f"transformers`: ours (`rank --data`: the target tuned with the registry's recipe, its TextEmb, the fused ranking) "
           f"beside ESM-LogME's ranking of the same target (15 sources, {esm}) and one bare forward pass of the base model "
           f"over the same rows ({data['machine']['cpus']} CPU cores, load {min(loads):.1f}-{max(loads):.1f}; medians of "
           f"{data['rounds']} rounds) | `python benchmarks/target_cost_same_run.py` | {text}")
    if parts:
        ops = parts.get("operators", {}).get("groups_share", {})
        figures["target_breakdown"] = parts["seconds"]
        steps = parts["seconds"]["optimizer steps + checkpoint"]
        row += (f". Where ours goes (`python benchmarks/target_breakdown.py --ops --dropout-draws 2`, {parts['target']}, load "
                f"{parts['load_before']:.1f}): imports {parts['seconds']['imports (torch, transformers, peft, accelerate)']:.1f} s, "
                f"100 steps {steps:.1f} s, held-out check {parts['seconds']['held-out check (300 rows)']:.1f} s, TextEmb "
                f"{parts['seconds']['TextEmb forward pass (fused ranker)']:.1f} s, model load, tokenising and ranking "
                f"{sum(parts['seconds'][k] for k in ('model load + peft wrapping', 'tokenising the rows', 'ranking')):.1f} s"
                + (f"; the tuning's operator time: matrix products {ops['matrix products']:.0%}, dropout's random masks "
                   f"{ops['dropout masks (bernoulli_)']:.0%} (drawn one by one on one core), casts "
                   f"{ops['casts and copies']:.0%}" if ops else "")
                + (f"; other dropout masks (another random stream) move the vector to cosine "
                   f"{', '.join(f'{c:.2f}' for c in parts['dropout_masks']['cosine_to_default'])}"
                   if parts.get("dropout_masks") else ""))
    return [row + " |"]


def busy_machine_row(figures: dict) -> list[str]:
    """Tuning steps beside other jobs, OpenMP's default spinning against PASSIVE (`omp_wait_policy.py`)."""
    data = _result_json("omp_wait_policy.json")
    if data is None:
        return []
    settings = data["settings"]
    figures["omp_wait_policy"] = {k: v["median"] | {"ratio": v["default_over_passive"]} for k, v in settings.items()}
    text = "; ".join(f"{name}: {s['median']['default']:.1f} s spinning, {s['median']['PASSIVE']:.1f} s sleeping "
                     f"(x{s['default_over_passive']:.2f}, load {min(s['load_before']):.1f}-{max(s['load_before']):.1f})"
                     for name, s in settings.items())
    return [f"| tuning on a busy machine: {data['steps']} training steps of the packaged MiniLM (batch 16 x 48 tokens, "
            f"bf16 where native), each a fresh process, OpenMP's default spin-waiting against `OMP_WAIT_POLICY=PASSIVE` "
            f"(what the CLI and the Space set), medians of {data['rounds']} alternated rounds, "
            f"{data['machine']['cpus']} CPU cores | `python benchmarks/omp_wait_policy.py` | {text} |"]


def ranking_latency_row(figures: dict) -> list[str]:
    """The ranking-at-scale row (`benchmarks/ranking_latency.py`): each search path beside numpy's bound."""
    data = _result_json("ranking_latency.json")
    if data is None:
        return []
    sizes = data["sizes"]
    figures["ranking_latency"], parts = {}, []
    if any(size["dim"] == BITFIT_DIM for size in sizes.values()):  # older widths stay in the JSON file only
        sizes = {key: size for key, size in sizes.items() if size["dim"] == BITFIT_DIM}
    commands = []
    for key, size in sorted(sizes.items(), key=lambda kv: (kv[1]["rows"], kv[1]["dim"])):
        kind = size.get("kind", "structured")
        flags = ("" if size["dim"] == BITFIT_DIM else f" --dim {size['dim']}") + (
            "" if kind == "structured" else f" --kind {kind}")
        commands.append(f"`python benchmarks/ranking_latency.py --sizes {size['rows']}{flags}`")
        bound = size["bound"].get("numpy_f32_median_ms")
        per = {r["search"]: r for r in size["ranker"]}
        figures["ranking_latency"][key] = {
            "dim": size["dim"], "bound_ms": bound and round(bound),
            "paths": {s: {"cosine_ms": round(r["cosine"]["median_ms"]), "centered_ms": round(r["centered"]["median_ms"]),
                          "peak_rss_gb": round(r["peak_rss_mb"] / 1024, 1),
                          "top10": min(r["cosine"]["top10_agreement"], r["centered"]["top10_agreement"])}
                      for s, r in per.items()}}
        text = []
        for search, r in per.items():
            ratio = f", {r['cosine']['median_ms'] / bound:.2f}x the bound" if bound else ""
            build = (f" after a {r['cosine']['first_s']:.0f} / {r['centered']['first_s']:.0f} s graph build"
                     if search == "ann" else "")
            label = search if r["cosine"]["path"] == search else f"{search} ({r['cosine']['path']})"
            if search == "auto-nograph":
                label = "auto while its graph is not built yet (projection scan)"
            text.append(f"{label} {r['cosine']['median_ms']:,.0f} / "
                        f"{r['centered']['median_ms']:,.0f} ms{ratio}{build}, {r['peak_rss_mb'] / 1024:.1f} GB peak, "
                        f"top-10 agreement {min(r['cosine']['top10_agreement'], r['centered']['top10_agreement']):.3f}")
        head = (f"numpy float32 matvec + argpartition {bound:,.0f} ms" if bound else
                f"no float32 copy fits; one streamed numpy pass over the file {size['bound']['streamed_pass_s']:.1f} s")
        loads = [r["load_avg_1min_at_start"] for r in size["ranker"] if "load_avg_1min_at_start" in r]
        busy = (f" (load {min(loads):.1f}{'' if round(min(loads), 1) == round(max(loads), 1) else f'-{max(loads):.1f}'} "
                "when timed)" if loads else " (run beside other jobs, load 3-6)")
        memory = data.get("machine", {}).get("memory_gb")
        if memory and size["generate"]["file_gb"] > memory:
            busy += (f"; the {size['generate']['file_gb']:.0f} GB file exceeds the machine's {memory:.0f} GB of "
                     "memory: re-ranked rows come from disk")
        label = f"{size['rows']:,} x {size['dim']:,}" + ("" if kind == "structured" else f" ({kind} rows)")
        parts.append(f"{label}{busy}: {head}; " + "; ".join(text))
    return ["| ranking latency at scale, synthetic float16 registries (median query, top 10, cosine / centred; "
            "bound: numpy on a float32 copy) | " + ", ".join(commands) + " | " + ". ".join(parts) + " |"]


def gpu_grid_row(figures: dict) -> list[str]:
    """The transfer-grid throughput row on a lent GPU (`benchmarks/gpu_grid.py`)."""
    data = _result_json("gpu_grid.json")
    if data is None:
        return []
    runs = data["runs"]
    phases = [p for p in runs[0]["phases"] if not p["ran_out_of_work"]]
    mains = [r["main"] for r in runs if r.get("main")]
    figures["gpu_grid"] = {"device": runs[0]["device"],
                           "phases": {str(p["workers"]): p["cells_per_minute"] for p in phases},
                           "main": [{"workers": m["workers"], "cells": m["cells"], "seconds": m["seconds"]} for m in mains]}
    phase_text = ", ".join(f"k={p['workers']} {p['cells_per_minute']:.1f}" for p in phases)
    main_text = " and ".join(f"{60 * m['cells'] / m['seconds']:.1f}" for m in mains)
    return [f"| transfer-grid throughput on one lent {runs[0]['device']}, small-regime cells (200 target rows, 1,000-row "
            f"eval), k worker processes per card (`transfer-matrix --workers k`), cells per minute incl. process start | "
            f"`python benchmarks/gpu_grid.py --out DIR` | {phase_text} (45-s phases); k={mains[0]['workers']} "
            f"{main_text} over {mains[0]['cells']}-cell runs |"]


def hub_sync_row(figures: dict) -> list[str]:
    """The Hub-sync row (`benchmarks/hub_sync.py`), when its file exists."""
    d = _result_json("hub_sync.json")
    if d is None:
        return []
    s, idx = d["sync"], d["from_index"]
    first, resync, legacy = s["from_hub_first"], s["from_hub_resync"], s["legacy_second"]
    after = s["index_build_after_10_changes"]
    f16 = d["float16_packaged_registry"]
    figures["hub_sync"] = {"entries": d["entries"], "first_s": first["seconds"], "first_downloads": first["downloads"],
                           "resync_s": resync["seconds"], "resync_downloads": resync["downloads"],
                           "resync_ratio": s["resync_time_ratio"], "legacy_s": legacy["seconds"],
                           "legacy_downloads": legacy["downloads"], "index_after_10_s": after["seconds"],
                           "first_over_legacy": s.get("first_sync_over_legacy"),
                           "index_after_10_downloads": after["downloads"],
                           "from_index": {n: {"load_plus_first_rank_s": round(r["load_s"] + r["first_rank_s"], 2),
                                              "peak_rss_mb": round(r["peak_rss_mb"])} for n, r in idx.items()},
                           "float16_identical": [f16["identical_full_rankings"], f16["targets_x_similarities"]]}
    sizes = "; ".join(f"{int(n) // 1000}k {r['load_s'] + r['first_rank_s']:.1f} s / {r['peak_rss_mb']:,.0f} MB"
                      for n, r in sorted(idx.items(), key=lambda kv: int(kv[0])))
    return [f"| Hub registry sync, {d['entries']:,} published entries on the local test Hub ({d['dim']:,}-d vectors; "
            f"{d['machine']['cpus']} CPU cores, " + (f"load {d['load_avg_1min_at_start']:.1f} at the start"
                                                       if "load_avg_1min_at_start" in d else "run beside another job")
            + ") | `python benchmarks/hub_sync.py` | first sync "
            + (f"{s['from_hub_first_other_cache']['seconds']:.1f} / {first['seconds']:.1f} s on two empty caches, "
               f"alternated with the previous implementation's {s['legacy_first']['seconds']:.1f} / "
               f"{legacy['seconds']:.1f} s (in run order; ratio of the sums {s['first_sync_over_legacy']:.2f}; the "
               f"test server shares the process and its 2 cores with the client) "
               if "first_sync_over_legacy" in s else f"{first['seconds']:.1f} s ")
            + f"({first['downloads']:,} downloads, {first['heads']} HEAD requests against the previous "
            f"{legacy['heads']:,}), re-sync {resync['seconds']:.2f} s, "
            f"{resync['downloads']} downloads ({100 * s['resync_time_ratio']:.1f} % of the first; the previous "
            f"implementation: {legacy['seconds']:.1f} s and {legacy['downloads']:,} downloads every time); index build after "
            f"10 changes: {after['seconds']:.1f} s, {after['downloads']} downloads; from_index load + first rank "
            f"({d['index_dim']:,}-d): {sizes}; float16 index: identical PEFT rankings on {f16['identical_full_rankings']}/"
            f"{f16['targets_x_similarities']} packaged targets × similarities |"]


def space_latency_row(figures: dict) -> list[str]:
    """The Space row (`benchmarks/space_latency.py`), when its file exists."""
    d = _result_json("space_latency.json")
    if d is None:
        return []
    figures["space_latency"] = {str(r["entries"]): {"p50_ms": r["registry_lookup"]["p50_ms"],
                                                    "p95_ms": r["registry_lookup"]["p95_ms"],
                                                    "baseline_p50_ms": r["baseline_selector_rank"]["p50_ms"],
                                                    "server_peak_rss_mb": r["server_peak_rss_mb"]} for r in d["lookups"]}
    def during(r) -> str:  # the 1-minute load while the lookups ran, when recorded
        load = r.get("load_1min_during_registry_lookups")
        return f", load {load['min']:.1f}-{load['max']:.1f}" if isinstance(load, dict) and "min" in load else ""

    def files(r) -> str:  # since the answers carry no file: the files are one more call, timed on its own
        call = r.get("downloads_call")
        return (f"; then `/downloads` p50 {call['p50_ms']:,.0f} / p95 {call['p95_ms']:,.0f} ms (the three files "
                "written and fetched)" if call else "")

    parts = [f"{r['entries'] // 1000}k entries: p50 {r['registry_lookup']['p50_ms']:,.0f} ms / p95 "
             f"{r['registry_lookup']['p95_ms']:,.0f} ms (in-process `rank` {r['baseline_selector_rank']['p50_ms']:.0f} ms"
             f"{during(r)}){files(r)}, server peak {r['server_peak_rss_mb']:,} MB" for r in d["lookups"]]
    up = d.get("upload")
    if up:
        figures["space_latency"]["upload"] = {"rows": up["rows"], "seconds": up["upload_to_ranking_s"],
                                              "baseline_s": up["baseline_in_process_s"]}
        parts.append(f"a {up['rows']:,}-row CSV upload to a ranking {up['upload_to_ranking_s']:.0f} s (in process "
                     f"{up['baseline_in_process_s']:.0f} s in the same run"
                     + (", the same tuning, TextEmb and fused ranking" if up.get("baseline_ranker") else "")
                     + ("; an earlier run, before the figures moved to the browser" if up.get("note") else "") + ")")
    load = d["machine"].get("load_average_at_start", [None])[0]
    lookups = d["lookups"][0]["registry_lookup"]["n"]
    carried = " answers without files," if d["lookups"][0].get("downloads_call") else ""
    return [f"| Space (Gradio) lookups through `gradio_client`,{carried} synthetic BitFit registries ({lookups} lookups each"
            + (f"; load average {load:.1f} on {d['machine']['cpus']} cores at the start"
               + (": inflated" if load >= 1 else "") if load else "")  # >= 1: a core's worth of other work
            + ") | `python benchmarks/space_latency.py` | " + "; ".join(parts) + " |"]
