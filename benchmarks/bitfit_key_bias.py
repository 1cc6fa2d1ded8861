"""BitFit's attention key biases: what they hold, and what leaving them out of the embedding changes.

    python benchmarks/bitfit_key_bias.py ndcg --label after     # ranking quality of the vectors as stored (seconds)
    python benchmarks/bitfit_key_bias.py ndcg --label before --embeddings DIR --registry DIR
    python benchmarks/bitfit_key_bias.py grads   # one backward pass of MiniLM: the gradient each kind of bias gets
    python benchmarks/bitfit_key_bias.py runs    # tune MiniLM twice per variant (CPU-heavy: ~5 min, take cpu.lock)

`ndcg`: the default ranker (BitFit step 100, cosine and centred; both embedding seeds; the packaged
registry's vectors) scored with benchmarks/report.py's own functions (read-only) against the
16-target ground truth. `before` was scored on the vectors as they were before
`convert_bitfit_key_bias.py` (extracted from git: `git archive <commit> benchmarks/results/embeddings/bitfit+mean
taskemb_hub/default_registry/entries | tar -x -C /tmp/before`), `after` on the converted ones;
with both, the per-target change is paired.

`runs`: one task tuned with the registry's recipe twice, on 1 and on 2 torch threads (same seed,
so the runs differ only in float summation order), once training the key biases (the old target
modules) and once without (today's): the per-module norms of the tuned biases, how far the two
runs' weights are apart, and the cosine of their embeddings with and without the key-bias blocks.

Writes `benchmarks/results/bitfit_key_bias.json` (each part under its own key).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "results" / "bitfit_key_bias.json"
OLD_TARGET_MODULES = r".*encoder\.layer\.\d+\..*(query|key|value|dense)$"  # before the fix: keys included


def _load() -> dict:
    return json.loads(OUT.read_text()) if OUT.is_file() else {}


def _save(part: str, payload: dict) -> None:
    data = _load()
    data[part] = payload
    OUT.write_text(json.dumps(data, indent=2) + "\n")


def _summary(m: dict, scoring) -> dict:
    return {"ndcg": round(m["ndcg"], 4), "ndcg_se": round(scoring.ndcg_se(m), 4), "rho": round(m["rho"], 3),
            "spearman": round(m["spearman"], 3), "ndcg_shifted": round(m["ndcg_shifted"], 4),
            "ndcg_seed_mean_truth": round(m["on_mean"]["ndcg"], 4) if m.get("on_mean") else None,
            "seeds": m["seeds"], "targets": m["targets"]}


def ndcg_part(label: str, embeddings: Path | None, registry: Path | None) -> dict:
    """Score the default ranker on the vectors of `embeddings` (default: report.py's folder) and `registry`
    (default: the packaged one); stored under `label`, with per-target NDCG so that `after` is paired with `before`."""
    import numpy as np

    from reporting import data as report_data, scoring
    from taskemb_hub.default_registry import default_registry_path
    from taskemb_hub.embedding import TaskEmbedding

    if embeddings is not None:
        report_data.EMB = embeddings
    runs = report_data.load_runs(report_data.RESULTS / "transfer_limited.jsonl")
    _, complete, _, mean_rows = report_data.load_matrix(runs, report_data.SOURCES)
    method, step = report_data.DEFAULT_METHOD, f"step-{report_data.MAIN_STEP}"
    seed_embs = [report_data.load_embeddings(method, sd, step) for sd in report_data.seeds_of(method)]
    registry = registry or default_registry_path()
    packaged = {p.name: TaskEmbedding.load(p) for p in registry.iterdir() if p.is_dir()}
    results = {}
    for sim in report_data.SIMILARITIES:
        for name, embs_list in ((f"{method} step 100", seed_embs), ("packaged registry", [packaged])):
            scorers = [scoring.embedding_scorer(None, None, None, sim, embs) for embs in embs_list]
            m = scoring.evaluate_scorers(scorers, complete, mean_rows, report_data.SOURCES)
            results[f"{name}, {sim}"] = _summary(m, scoring) | {
                "dim": sorted({e.dim for embs in embs_list for e in embs.values()}),
                "per_target_ndcg": {t: round(r["ndcg"], 6) for t, r in m["rows"].items()}}
    data = _load().get("ndcg", {})
    data.setdefault("results", {})[label] = results
    data["ground_truth"] = "results/transfer_limited.jsonl: 16 classification targets x 15 sources (report.py's rows)"
    data.setdefault("commands", {})[label] = ("python benchmarks/bitfit_key_bias.py ndcg --label " + label
                                              + (f" --embeddings {embeddings}" if embeddings else "")
                                              + (f" --registry {registry}" if registry != default_registry_path() else ""))
    if {"before", "after"} <= set(data["results"]):
        paired = {}
        for key, after in data["results"]["after"].items():
            before = data["results"]["before"].get(key)
            if not before:
                continue
            a, b = after["per_target_ndcg"], before["per_target_ndcg"]
            diffs = [a[t] - b[t] for t in sorted(set(a) & set(b))]
            paired[key] = {"mean": round(float(np.mean(diffs)), 4),
                           "se": round(float(np.std(diffs, ddof=1) / np.sqrt(len(diffs))), 4), "targets": len(diffs),
                           "better": sum(d > 1e-9 for d in diffs), "worse": sum(d < -1e-9 for d in diffs)}
        data["paired_after_minus_before"] = paired
    return data


def runs_part(task_name: str, steps: int, old_only: bool = False) -> dict:
    import torch
    from safetensors.torch import load_file

    from _common import DATA_DIR, require_data
    from taskemb_hub import TaskEmbedding, TuningConfig, load_task, tune
    from taskemb_hub.methods import EmbeddingOptions, get_method
    from taskemb_hub.methods.base import embed_module_tensors, module_name
    from taskemb_hub.methods.bitfit import is_attention_key

    require_data()
    task = load_task(DATA_DIR / task_name)
    work = HERE / "work" / "bitfit_key_bias"
    method = get_method("bitfit")

    def cosine(a, b):
        return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))

    out = {"command": f"python benchmarks/bitfit_key_bias.py runs --task {task_name} --steps {steps}"
                      + (" --old-only" if old_only else ""),
           "task": task_name, "steps": steps, "variants": {}}
    variants = (("keys trained (old target modules)", {"target_modules": OLD_TARGET_MODULES}),
                ("keys not trained (today)", {}))
    for variant, kwargs in variants[:1] if old_only else variants:
        runs = []
        for threads in (1, 2):
            folder = work / f"{'old' if kwargs else 'new'}-threads{threads}"
            done = folder / f"step-{steps}"
            if not (done / "adapter_model.safetensors").is_file():  # resumable: a finished run is read back
                torch.set_num_threads(threads)
                cfg = TuningConfig(method="bitfit", max_steps=steps, max_train_examples=1000, eval_examples=0,
                                   method_kwargs=kwargs)
                tune(task, cfg, folder, progress=False)
            runs.append({"threads": threads, "weights": load_file(str(done / "adapter_model.safetensors")),
                         "embedding": TaskEmbedding.from_adapter(done)})
        a, b = runs
        biases = {module_name(k, ".beft_bias"): v for k, v in method.body_weights(a["weights"]).items()
                  if k.endswith(".beft_bias")}
        by_kind = defaultdict(list)
        for name, value in biases.items():
            kind = name.split(".layer.")[1].split(".", 1)[1]
            diff = (value - b["weights"][next(k for k in b["weights"] if module_name(k, ".beft_bias") == name)]).norm()
            by_kind[kind].append((float(value.norm()), float(diff)))
        row = {"bias_norms_by_module": {k: {"norm_min": f"{min(n for n, _ in v):.2e}",
                                            "norm_max": f"{max(n for n, _ in v):.2e}",
                                            "run_to_run_diff_max": f"{max(d for _, d in v):.2e}"}
                                        for k, v in sorted(by_kind.items())},
               "max_abs_weight_diff": f"{max(float((a['weights'][k] - b['weights'][k]).abs().max()) for k in a['weights']):.2e}",
               "embedding_dim": a["embedding"].dim,
               "embedding_cosine_today": cosine(a["embedding"].vector, b["embedding"].vector)}
        if kwargs:  # the same weights embedded as before the fix: every block, key biases included
            old = [embed_module_tensors(method, r["weights"], ".beft_bias", EmbeddingOptions())[0] for r in runs]
            row["embedding_cosine_with_key_blocks"] = cosine(*old)
            row["embedding_dim_with_key_blocks"] = int(old[0].numel())
            row["key_modules"] = sum(is_attention_key(n) for n in biases)
        out["variants"][variant] = row
        print(json.dumps({variant: row}, indent=2), flush=True)
    out["torch"] = torch.__version__
    return out


def grads_part() -> dict:
    """One backward pass of MiniLM with BEFT biases on every encoder Linear (keys included), the biases moved off
    zero as after tuning: the gradient norm each kind of bias gets."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from taskemb_hub.base_model import resolve_base_model
    from taskemb_hub.methods import get_method

    torch.manual_seed(0)
    path, model_id = resolve_base_model(None)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    model = get_peft_model(model, get_method("bitfit").make_config("SEQ_CLS", target_modules=OLD_TARGET_MODULES))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "beft_bias" in name:
                param.normal_(0, 0.05)
    texts = ["a fine movie", "the worst hotel I have ever seen, really", "ok", "staff were kind but the room was cold"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    model(**batch, labels=torch.tensor([1, 0, 1, 0])).loss.backward()
    by_kind = defaultdict(list)
    for name, param in model.named_parameters():
        if "beft_bias" in name:
            by_kind[name.split(".layer.")[1].split(".", 1)[1].split(".beft_bias")[0]].append(float(param.grad.norm()))
    out = {"command": "python benchmarks/bitfit_key_bias.py grads", "base_model": model_id,
           "grad_norm_max_by_module": {k: f"{max(v):.1e}" for k, v in sorted(by_kind.items())}}
    print(json.dumps(out, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["ndcg", "runs", "grads"])
    parser.add_argument("--label", default="after", help="ndcg: store the figures as 'before' or 'after'")
    parser.add_argument("--embeddings", type=Path, default=None,
                        help="ndcg: a results/embeddings folder to score (default: report.py's)")
    parser.add_argument("--registry", type=Path, default=None, help="ndcg: registry entries folder (default: packaged)")
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--old-only", action="store_true",
                        help="runs: only the pair that trains the key biases (both embeddings come from its weights)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.part == "ndcg":
        payload = ndcg_part(args.label, args.embeddings, args.registry)
    elif args.part == "grads":
        payload = grads_part()
    else:
        payload = runs_part(args.task, args.steps, args.old_only)
    _save(args.part, payload)
    if args.part == "ndcg":
        for label, rows in payload["results"].items():
            for key, r in rows.items():
                print(f"{label:<7} {key:<32} NDCG {r['ndcg']:.3f} ± {r['ndcg_se']:.3f}  rho {r['rho']:.2f}  "
                      f"seed-mean truth {r['ndcg_seed_mean_truth']:.3f}  dim {r['dim']}")
        for key, p in payload.get("paired_after_minus_before", {}).items():
            print(f"paired after - before, {key}: {p['mean']:+.4f} ± {p['se']:.4f} ({p['better']} better, "
                  f"{p['worse']} worse of {p['targets']})")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
