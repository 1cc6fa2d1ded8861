"""The closest peer system beside ours, on the same ground truth: ESM-LogME (hf-dataset-selector) and plain LogME.

    python benchmarks/peer_rankers.py run [--tasks a,b] [--rows 1000]   # sources, features, scores (resumable)
    python benchmarks/peer_rankers.py logme [--targets a,b]             # plain LogME, one target per process (+ cost)
    python benchmarks/peer_rankers.py logme-fill [--until HHMM]         # plain LogME's missing pairs, cached features
    python benchmarks/peer_rankers.py check                             # our pipeline == hfselect's compute_scores
    python benchmarks/peer_rankers.py cost --target rotten_tomatoes     # seconds / peak RSS to rank one new target
    python benchmarks/peer_rankers.py summary                           # metrics as report.py scores ours

The peer (Schulte et al., "Less is More: Parameter-Efficient Selection of Intermediate Tasks for Transfer Learning",
`pip install --no-deps hf-dataset-selector`, import `hfselect`; it needs numba) represents a source task by an
*embedding space map* (ESM): a linear map d→d fitted so that it turns the base model's mean-pooled embedding of the
source texts into the fine-tuned source model's. A new target is ranked by embedding its texts once with the base
model, mapping them through each source's ESM and scoring the mapped features with LogME against the target labels.
Plain LogME does the same with the real fine-tuned source model (one forward pass per source).

Recipe, matched to the ground truth (`benchmarks/results/transfer_limited.jsonl`):
- sources: the 16 classification tasks fine-tuned with the ground truth's seed-0 source recipe, by the same
  function (`taskemb_hub.evaluation.transfer.source_body`, full fine-tuning, 1,000 rows, 2 epochs); bodies are cached under
  `benchmarks/work/peer_sources/` (git-ignored; never committed).
- texts: up to 1,000 training rows per task (`TaskData.train_rows(1000, seed=0)`, as our embedding recipe); a pair
  task's two texts are joined with hfselect's `" [SEP] "` (`hfselect.dataset._concat_columns`).
- embeddings: hfselect's `get_pooled_output` (mean pooling: the model's `name_or_path` is set to the Hub id, which
  contains "sentence-transformers", the switch hfselect uses). hfselect pads every batch to 128 tokens; we pad each
  batch to its longest row, which leaves a masked mean unchanged up to float error (`check` measures it against
  hfselect's own `compute_scores`).
- ESM: `hfselect.ESMTrainer().train_with_embeddings` with the library defaults (linear, 10 epochs, batch 32,
  lr 0.01, weight decay 0.01), torch seed 0; scores: `hfselect.logme.LogME` (fixed-point LogME, no intercept).

Outputs: `results/peer_scores.jsonl` (one line per (method, target, source); a restart skips lines already there),
`results/peer_cost.jsonl` (`cost`, `logme`), `results/peer_summary.json` (`summary`). `benchmarks/report.py` reads
`peer_scores.jsonl` and `peer_cost.jsonl` and scores the peers beside every other ranker.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import DATA_DIR, RESULTS  # noqa: E402

from taskemb_hub.evaluation.transfer import TASK_SETS, TransferConfig  # noqa: E402

WORK = HERE / "work" / "peer_sources"
SCORES = RESULTS / "peer_scores.jsonl"
TASKS = TASK_SETS["classification16"]
HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # hfselect mean-pools only when name_or_path says so
ROWS = 1000
BASE = "base"
METHODS = ("esm-logme", "logme")
DIM = 384


def transfer_config() -> TransferConfig:
    """The ground truth's recipe (the seed-0 source models are recreated with it)."""
    return TransferConfig(tasks=TASKS, data_dir=str(DATA_DIR))


# ---- models and texts -------------------------------------------------------------------------------------------
def load_encoder(body: dict | None = None):
    """The packaged MiniLM as an `AutoModel` (a fine-tuned source's body loaded into it), named by its Hub id."""
    from transformers import AutoModel

    from taskemb_hub.base_model import resolve_base_model

    model = AutoModel.from_pretrained(resolve_base_model(None)[0])
    if body is not None:
        missing, unexpected = model.load_state_dict(body, strict=False)
        if unexpected or [k for k in missing if "pooler" not in k]:
            raise RuntimeError(f"source body does not fit the encoder: missing {missing}, unexpected {unexpected}")
    model.config._name_or_path = HUB_ID
    model.name_or_path = HUB_ID
    return model.eval()


def tokenizer():
    from transformers import AutoTokenizer

    from taskemb_hub.base_model import resolve_base_model

    return AutoTokenizer.from_pretrained(resolve_base_model(None)[0])


def task_rows(name: str, rows: int = ROWS) -> tuple[list[str], np.ndarray]:
    """Texts (pairs joined as hfselect joins them) and integer labels of a task's first-`rows` training subset."""
    from hfselect.dataset import TEXT_SEPARATOR

    from taskemb_hub.data import load_task

    task = load_task(DATA_DIR / name)
    picked = task.train_rows(rows, seed=0)
    texts = [r["text"] + (TEXT_SEPARATOR + r["text_pair"] if r.get("text_pair") else "") for r in picked]
    return texts, np.array([int(r["label"]) for r in picked])


def source_body(name: str) -> dict:
    """Fine-tune (or read the cached) seed-0 source body, exactly as the ground-truth runner does."""
    from taskemb_hub.evaluation.transfer import source_body as runner_source_body

    return runner_source_body(name, transfer_config(), 0, WORK, progress=False)


def body_path(name: str) -> Path:
    from taskemb_hub.methods.base import signature_hash

    return WORK / "sources" / signature_hash(transfer_config().recipe()) / f"{name}-seed0.safetensors"


@torch.no_grad()
def embed(model, tok, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """hfselect's pooled embeddings (`get_pooled_output`), each batch padded to its longest row (length-sorted)."""
    from hfselect.model_utils import get_pooled_output

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt",
                  return_token_type_ids=False)
        out[idx] = get_pooled_output(model, enc["input_ids"], enc["attention_mask"]).numpy()
    return out


def features(model_name: str, task: str, rows: int, model=None, tok=None) -> np.ndarray:
    """Cached embeddings of `task`'s texts under `model_name` (base or a source), float32 safetensors."""
    from safetensors.numpy import load_file, save_file

    path = WORK / "features" / f"rows{rows}" / model_name / f"{task}.safetensors"
    if path.is_file():
        return load_file(str(path))["x"]
    x = embed(model, tok, task_rows(task, rows)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"x": x}, str(path.with_suffix(".partial")))
    os.replace(path.with_suffix(".partial"), path)
    return x


def train_esm(base_x: np.ndarray, tuned_x: np.ndarray):
    """hfselect's ESM trainer with its defaults, on (base, fine-tuned) embeddings of the source texts."""
    from hfselect import ESMTrainer
    from hfselect.embedding_dataset import EmbeddingDataset

    torch.manual_seed(0)
    return ESMTrainer().train_with_embeddings(EmbeddingDataset(base_x, tuned_x), verbose=0).eval()


def logme(x: np.ndarray, labels: np.ndarray) -> float:
    from hfselect.logme import LogME

    return float(LogME(regression=False).fit(x.astype(np.float64), labels, add_intercept=False))


@torch.no_grad()
def esm_map(esm, x: np.ndarray) -> np.ndarray:
    return esm(torch.from_numpy(x).float()).numpy()


# ---- the grid -----------------------------------------------------------------------------------------------------
def done_pairs(path: Path | None = None) -> set[tuple]:
    path = path or SCORES
    if not path.is_file():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["method"], r["target"], r["source"], r["rows"]) for r in rows}


def append(row: dict, path: Path | None = None) -> None:
    path = path or SCORES
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def past(until: str | None) -> bool:
    """True once the UTC clock reads `until` (HHMM) or later: a long job stops starting new work then."""
    return bool(until) and time.strftime("%H%M", time.gmtime()) >= until


def run(tasks: list[str], rows: int, log=print, until: str | None = None) -> None:
    """ESM-LogME, source by source (in the given order): fine-tune the source, embed its texts with it, fit its
    ESM, then score every target's base embeddings through it, so each finished source is in the file at once."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    tok = tokenizer()
    base = load_encoder()
    (WORK / "esms").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base_x = {t: features(BASE, t, rows, base, tok) for t in TASKS}
    labels = {t: task_rows(t, rows)[1] for t in TASKS}
    log(f"base features of {len(TASKS)} tasks: {time.perf_counter() - started:.0f}s", flush=True)
    for source in tasks:
        if past(until):
            log(f"stopping before {source}: it is past {until} UTC", flush=True)
            break
        t0 = time.perf_counter()
        had_body = body_path(source).is_file()
        model = load_encoder(source_body(source))
        t1 = time.perf_counter()
        tuned_x = features(source, source, rows, model, tok)
        t2 = time.perf_counter()
        esm = train_esm(base_x[source], tuned_x)
        torch.save(esm.model.state_dict(), WORK / "esms" / f"{source}-rows{rows}.pt")
        done = done_pairs()
        for target in TASKS:
            if target != source and ("esm-logme", target, source, rows) not in done:
                append({"method": "esm-logme", "target": target, "source": source, "rows": rows,
                        "score": logme(esm_map(esm, base_x[target]), labels[target])})
        log(f"{source:<22} fine-tune {'cached' if had_body else f'{t1 - t0:.0f}s'}, features {t2 - t1:.0f}s, "
            f"ESM + scores {time.perf_counter() - t2:.1f}s", flush=True)
        del model


def finished_sources(rows: int) -> list[str]:
    """Sources whose ESM-LogME score is in for every other task (the pool a partial run is scored on)."""
    done = done_pairs()
    return [s for s in TASKS if all(("esm-logme", t, s, rows) in done for t in TASKS if t != s)]


def run_logme(targets: list[str], tasks: list[str], rows: int, log=print, until: str | None = None) -> None:
    """Plain LogME target by target, each in its own process (its seconds and peak RSS are the cost to rank
    one new target: 15 model loads and forward passes + LogME); a target already scored is skipped."""
    pool = [s for s in finished_sources(rows) if s in tasks]
    log(f"LogME pool: {len(pool)} sources", flush=True)
    for target in targets:
        if past(until):
            log(f"stopping before {target}: it is past {until} UTC", flush=True)
            break
        sources = [s for s in pool if s != target]
        done = done_pairs()
        if all(("logme", target, s, rows) in done for s in sources):
            continue
        if not all(body_path(s).is_file() for s in sources):
            log(f"{target}: not every source model is fine-tuned yet (run `run` first)")
            continue
        row = cost_in_subprocess(target, "logme", [target] + sources, rows)
        for s, score in row.pop("scores").items():
            append({"method": "logme", "target": target, "source": s, "rows": rows, "score": score})
        append(row, RESULTS / "peer_cost.jsonl")
        log(f"{target:<22} LogME over {row['sources']} sources: {row['seconds']}s, peak {row['peak_rss_mb']} MB",
            flush=True)


def fill_logme(targets: list[str], rows: int, log=print, until: str | None = None) -> None:
    """Plain LogME for the (target, source) pairs still missing, target by target (those with the fewest missing
    sources first), in this process from cached features: no cost is measured (`logme` measures it)."""
    from safetensors.torch import load_file

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    tok = tokenizer()
    done = done_pairs()
    missing = {t: [s for s in TASKS if s != t and ("logme", t, s, rows) not in done] for t in targets}
    for target in sorted((t for t in targets if missing[t]), key=lambda t: (len(missing[t]), TASKS.index(t))):
        labels = task_rows(target, rows)[1]
        for source in missing[target]:
            if past(until):
                log(f"stopping at {target} <- {source}: it is past {until} UTC", flush=True)
                return
            if not body_path(source).is_file():
                log(f"{target} <- {source}: the source is not fine-tuned yet (run `run` first)", flush=True)
                continue
            x = features(source, target, rows, load_encoder(load_file(str(body_path(source)))), tok)
            append({"method": "logme", "target": target, "source": source, "rows": rows, "score": logme(x, labels)})
        log(f"{target:<22} LogME pairs added", flush=True)


def cost_in_subprocess(target: str, method: str, tasks: list[str], rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "cost", "--method", method, "--target", target,
                          "--tasks", ",".join(tasks), "--rows", str(rows)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"load_before": round(os.getloadavg()[0], 2)}


# ---- checks and costs --------------------------------------------------------------------------------------------
def check(source: str, target: str, rows: int) -> dict:
    """Our cached pipeline against hfselect's own entry points (128-token padding, `train_with_models`,
    `compute_scores`) for one (source, target) pair."""
    from datasets import Dataset as HFDataset
    from hfselect import ESMTrainer, compute_scores
    from hfselect.dataset import Dataset

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    tok = tokenizer()
    base, tuned = load_encoder(), load_encoder(source_body(source))

    def dataset(name):
        texts, labels = task_rows(name, rows)
        return Dataset(HFDataset.from_dict({"text": texts, "label": labels.tolist()}), "text", "label", False, {})

    torch.manual_seed(0)
    esm = ESMTrainer().train_with_models(dataset(source), base, tuned, tok)
    theirs = compute_scores(dataset(target), base, [esm], tok)[0]
    ours_esm = train_esm(features(BASE, source, rows, base, tok), features(source, source, rows, tuned, tok))
    labels = task_rows(target, rows)[1]
    target_x = features(BASE, target, rows, base, tok)
    ours = logme(esm_map(ours_esm, target_x), labels)
    same_esm = logme(esm_map(esm, target_x), labels)  # hfselect's ESM through our features and LogME call
    direct = embed(base, tok, task_rows(target, rows)[0])
    padded = compute_scores.__globals__["get_pooled_output"]  # hfselect's pooling, 128-token padding below
    enc = tok(task_rows(target, rows)[0][:64], padding="max_length", truncation=True, max_length=128,
              return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        x128 = padded(base, enc["input_ids"], enc["attention_mask"]).numpy()
    return {"source": source, "target": target, "rows": rows,
            "hfselect_train_with_models_then_compute_scores": float(theirs),
            "same_esm_through_our_pipeline": same_esm,
            "our_esm_through_our_pipeline": ours,
            "note": "the two ESMs differ only by torch's random draws (hfselect's DataLoaders consume the global RNG "
                    "before the ESM is initialised), so the last figure shows the ESM's own seed noise",
            "max_abs_embedding_diff_128_padding_vs_ours": float(np.abs(x128 - direct[:64]).max())}


def cost(target: str, method: str, sources: list[str], rows: int) -> dict:
    """Rank one new target from raw data in this process: tokenizer and model loads included, no feature cache
    (ESM-LogME: one base forward pass, then each source's stored ESM and LogME; LogME: each source's stored
    fine-tuned body loaded and run over the target texts, then LogME)."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    started = time.perf_counter()
    tok = tokenizer()
    texts, labels = task_rows(target, rows)
    if method == "esm-logme":
        x = torch.from_numpy(embed(load_encoder(), tok, texts))
        scores = {}
        for s in sources:
            layer = torch.nn.Linear(DIM, DIM)
            layer.load_state_dict(torch.load(WORK / "esms" / f"{s}-rows{rows}.pt", weights_only=True))
            with torch.no_grad():
                scores[s] = logme(layer(x).numpy(), labels)
    else:
        from safetensors.torch import load_file

        scores = {s: logme(embed(load_encoder(load_file(str(body_path(s)))), tok, texts), labels) for s in sources}
    return {"method": method, "target": target, "sources": len(sources), "rows": len(texts),
            "seconds": round(time.perf_counter() - started, 2), "threads": torch.get_num_threads(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "scores": scores}


# ---- scoring the peers as report.py scores ours ---------------------------------------------------------------
PEER_LABELS = {"esm-logme": "ESM-LogME (hf-dataset-selector)", "logme": "LogME of the fine-tuned source model"}


def peer_scorer(method: str, rows: int):
    """report.py's scorer interface for a peer: None for a target that lacks a score for any of its sources."""
    table = {}
    for line in SCORES.read_text().splitlines() if SCORES.is_file() else []:
        r = json.loads(line)
        if r["method"] == method and r["rows"] == rows:
            table[(r["target"], r["source"])] = r["score"]

    def scorer(target, sources, _seed):
        if any((target, s) not in table for s in sources):
            return None
        return {s: table[(target, s)] for s in sources}
    return scorer


def stored_bytes(folder: Path) -> int | None:
    """Bytes of one stored registry entry (taskemb.safetensors + taskemb.json) under `folder`, or None."""
    entry = next(folder.glob("*/seed0/step-100"), None) or next(folder.glob("*/seed0/*"), None) if folder.is_dir() else None
    return sum(f.stat().st_size for f in entry.iterdir() if f.is_file()) if entry else None


def summarize_peers(rows: int) -> dict:
    """peer_summary.json: each peer beside our default (BitFit cosine, every embedding seed, and seed 0 alone),
    TextEmb, the random order and the noise ceiling, scored by report.py's own functions on the sources whose
    peer scores are all in (every method on the same pool)."""
    from reporting import data as report_data, scoring

    runs = report_data.load_runs(RESULTS / "transfer_limited.jsonl")
    _, complete, _, mean_rows = report_data.load_matrix(runs, report_data.SOURCES)
    default, step = report_data.DEFAULT_METHOD, f"step-{report_data.MAIN_STEP}"
    pool = finished_sources(rows)
    ours = f"ours: {default} step {report_data.MAIN_STEP}, cosine (default; mean over embedding seeds)"
    ours0 = f"ours: {default} step {report_data.MAIN_STEP}, cosine, embedding seed 0 only"
    candidates = {
        ours: [scoring.embedding_scorer(default, step, sd, "cosine") for sd in report_data.seeds_of(default)],
        ours0: [scoring.embedding_scorer(default, step, 0, "cosine")],
        "TextEmb (Vu et al. 2020), centered": [scoring.embedding_scorer("textemb", "final", sd, "centered")
                                               for sd in report_data.seeds_of("textemb")],
        **{PEER_LABELS[m]: [peer_scorer(m, rows)] for m in METHODS},
        scoring.CEILING: [scoring.other_seed_scorer(complete)],
    }
    results = {label: m for label, sc in candidates.items()
               if (m := scoring.evaluate_scorers(sc, complete, mean_rows, pool))}
    results[scoring.RANDOM] = scoring.evaluate_scorers(scoring.random_scorers(), complete, mean_rows, pool, collapse=True)
    keys = ("ndcg", "ndcg_shifted", "ndcg_peer_gain", "rho", "regret@1", "regret@3", "regret@5", "spearman")
    table = {label: {k: m[k] for k in keys} | {"targets": m["targets"], "ndcg_se": scoring.ndcg_se(m),
                                                "ndcg_seed_mean_truth": (m.get("on_mean") or {}).get("ndcg"),
                                                "rho_seed_mean_truth": (m.get("on_mean") or {}).get("rho")}
             for label, m in results.items()}
    pairs = {}
    for peer in (PEER_LABELS[m] for m in METHODS):
        if peer not in results:
            continue
        for base in (ours, ours0):
            pairs[f"{base} minus {peer}"] = {k: scoring._paired(results, base, peer, key=k) for k in keys} | {
                "ndcg_seed_mean_truth": scoring._paired(results, base, peer, "on_mean", "ndcg")}
    scored = {PEER_LABELS[m]: sorted(results[PEER_LABELS[m]]["rows"]) if PEER_LABELS[m] in results else []
              for m in METHODS}
    measured = {m: sum(1 for line in SCORES.read_text().splitlines() if json.loads(line)["method"] == m
                       and json.loads(line)["rows"] == rows) if SCORES.is_file() else 0 for m in METHODS}
    costs = [json.loads(line) for line in (RESULTS / "peer_cost.jsonl").read_text().splitlines()] \
        if (RESULTS / "peer_cost.jsonl").is_file() else []
    payload = {
        "what": "peer rankers (hf-dataset-selector ESM-LogME; plain LogME) on the ground truth of report.py, scored "
                "with report.py's functions; paired differences are ours minus the peer (positive NDCG = ours "
                "better; for rho and Regret negative = ours better)",
        "rows_per_target": rows, "pairs_measured": measured,
        "source_pool": pool, "full_pool": len(pool) == len(TASKS), "targets_scored": scored,
        "metrics": table, "paired": pairs,
        "per_target": {label: {t: {k: r[k] for k in keys} for t, r in m["rows"].items()} for label, m in results.items()},
        "cost_to_rank_one_target": costs,
        "bytes_per_source": bytes_per_source(),
    }
    (RESULTS / "peer_summary.json").write_text(json.dumps(payload, indent=1, default=float) + "\n")
    for label, m in sorted(table.items(), key=lambda kv: -(kv[1]["ndcg"] if kv[1]["ndcg"] == kv[1]["ndcg"] else -9)):
        print(f"{label:<90} NDCG {m['ndcg']:.3f} ± {m['ndcg_se']:.3f}  peer-gain {m['ndcg_peer_gain']:.3f}  "
              f"rho {m['rho']:.2f}  R@1 {m['regret@1']:.2f} R@3 {m['regret@3']:.2f} R@5 {m['regret@5']:.2f}  "
              f"targets {m['targets']}")
    for name, p in pairs.items():
        print(name, {k: v and f"{v['delta']:+.3f} ± {v['se']:.3f} ({'/'.join(map(str, v['wtl']))}, n={v['targets']})"
                     for k, v in p.items()})
    return payload


def bytes_per_source() -> dict[str, int | None]:
    """What each ranker stores (and a registry user downloads) per source task."""
    from reporting import data as report_data

    return {"esm-logme (one d×d+d float32 linear map)": (DIM * DIM + DIM) * 4,
            "logme (a fine-tuned MiniLM body, float32 safetensors)":
                body_path(TASKS[0]).stat().st_size if body_path(TASKS[0]).is_file() else None,
            f"ours, {report_data.DEFAULT_METHOD} entry (taskemb.safetensors + taskemb.json)":
                stored_bytes(report_data.EMB / report_data.DEFAULT_METHOD)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "logme", "logme-fill", "check", "cost", "summary"])
    parser.add_argument("--tasks", default=",".join(TASKS), help="the task pool (sources and targets)")
    parser.add_argument("--targets", default=None, help="`logme`/`cost`: targets, in this order (default: all)")
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--target", default="rotten_tomatoes")
    parser.add_argument("--source", default="multiemo_hotels")
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--until", default=None, help="`run`/`logme`: start no new source/target from this UTC HHMM")
    args = parser.parse_args(argv)
    tasks = args.tasks.split(",")
    targets = args.targets.split(",") if args.targets else tasks
    if args.command == "run":
        run(tasks, args.rows, until=args.until)
    elif args.command == "logme":
        run_logme(targets, tasks, args.rows, until=args.until)
    elif args.command == "logme-fill":
        fill_logme(targets, args.rows, until=args.until)
    elif args.command == "check":
        out = check(args.source, args.target, args.rows)
        print(json.dumps(out, indent=1))
        (RESULTS / "peer_check.json").write_text(json.dumps(out, indent=1) + "\n")
    elif args.command == "cost":
        sources = [t for t in tasks if t != args.target]
        if args.method:  # one measurement per process, so the peak RSS is that method's own
            print(json.dumps(cost(args.target, args.method, sources, args.rows)))
            return
        pool = [s for s in finished_sources(args.rows) if s != args.target]  # the ESMs fitted so far
        row = cost_in_subprocess(args.target, "esm-logme", [args.target] + pool, args.rows)
        row.pop("scores")
        append(row, RESULTS / "peer_cost.jsonl")
        print(json.dumps(row))
    else:
        summarize_peers(args.rows)


if __name__ == "__main__":
    main()
