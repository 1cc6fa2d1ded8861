"""Hub registry sync and index, on a local Hub-compatible server driven by the real huggingface_hub client.

Side by side in one run, on N published entries (default 1,000, BitFit-shaped 18,432-d vectors):
- first sync and re-sync of `AutoSourceSelector.from_hub()` (requests, downloads, bytes, seconds), against
  the previous implementation (one repo after another into a temporary folder, no cache), alternated: baseline,
  a first sync on an empty cache, baseline, a first sync on another empty cache, then the re-sync (after one
  unmeasured listing and download). The test server runs in this process: client and server share its cores
  and its GIL, unlike a sync over a network;
- `index build` from scratch, then incrementally after 10 repos changed;
- `from_index` load + first rank at 1k, 10k and 100k entries (time, peak RSS; each in a fresh process).

    python benchmarks/hub_sync.py [--entries 1000] [--index-sizes 1000,10000,100000] [--index-dim 3072]

Writes benchmarks/results/hub_sync.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

from _common import BITFIT_DIM, machine, peak_rss_mb, save  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "hub_sync.json"


def _embedding(task: str, dim: int, seed: int, base_model: str = "sentence-transformers/all-MiniLM-L6-v2"):
    from taskemb_hub.embedding import TaskEmbedding

    g = torch.Generator().manual_seed(seed)
    return TaskEmbedding(vector=torch.randn(dim, generator=g), task=task, base_model=base_model, method="bitfit",
                         signature={"method": "bitfit", "synthetic_dim": dim}, step=100, train_size=1000,
                         metrics={"accuracy": 0.5 + (seed % 50) / 100}, extra={"recipe": {"max_steps": 100}})


def _legacy_from_hub(endpoint: str) -> int:
    """The previous `HubRegistry.entries`: list by tag, then each repo in turn into a temporary folder."""
    from huggingface_hub import HfApi, hf_hub_download

    from taskemb_hub.embedding import TaskEmbedding

    n = 0
    for model in HfApi(endpoint=endpoint).list_models(filter="taskemb-hub"):
        with tempfile.TemporaryDirectory() as local:
            for name in ("taskemb.safetensors", "taskemb.json"):
                hf_hub_download(model.id, name, endpoint=endpoint, local_dir=local)
            TaskEmbedding.load(local)
            n += 1
    return n


def _warm_up(endpoint: str) -> None:
    """One listing and one file through huggingface_hub, unmeasured, into a folder that is then dropped."""
    from huggingface_hub import HfApi, hf_hub_download

    first = next(iter(HfApi(endpoint=endpoint).list_models(filter="taskemb-hub")))
    with tempfile.TemporaryDirectory() as local:
        hf_hub_download(first.id, "taskemb.json", endpoint=endpoint, local_dir=local)


def _measure(hub, fn) -> dict:
    hub.stats.reset()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    stats = hub.stats.as_dict()
    return {"seconds": round(seconds, 3), "requests": stats["requests"], "downloads": stats["routes"].get("download", 0),
            "heads": stats["routes"].get("head", 0), "bytes": stats["bytes_sent"], "result": value}


def sync_figures(n_entries: int) -> dict:
    from huggingface_hub import constants

    from local_hub import LocalHub, repo_files
    from taskemb_hub.registries.index import build_index
    from taskemb_hub.ranking.selector import AutoSourceSelector

    out = {}
    with tempfile.TemporaryDirectory() as legacy_cache, tempfile.TemporaryDirectory() as cache, LocalHub() as hub:
        os.environ["HF_ENDPOINT"] = hub.endpoint
        constants.ENDPOINT = hub.endpoint
        constants.HUGGINGFACE_CO_URL_TEMPLATE = hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        for i in range(n_entries):
            hub.state.add_repo(f"user{i % 50}/task-{i}", repo_files(_embedding(f"task-{i}", BITFIT_DIM, i)))
        count = lambda sel: len(sel.entries)
        # alternated: baseline, ours on an empty cache, baseline again, ours on another empty cache
        constants.HF_HUB_CACHE = legacy_cache  # the baseline gets a cache of its own, which it never reuses
        _warm_up(hub.endpoint)  # the process's first requests (client setup) are not the baseline's to pay
        out["legacy_first"] = _measure(hub, lambda: _legacy_from_hub(hub.endpoint))
        with tempfile.TemporaryDirectory() as other_cache:
            constants.HF_HUB_CACHE = other_cache
            out["from_hub_first_other_cache"] = _measure(hub, lambda: count(AutoSourceSelector.from_hub()))
        constants.HF_HUB_CACHE = legacy_cache
        out["legacy_second"] = _measure(hub, lambda: _legacy_from_hub(hub.endpoint))
        constants.HF_HUB_CACHE = cache
        out["from_hub_first"] = _measure(hub, lambda: count(AutoSourceSelector.from_hub()))
        out["from_hub_resync"] = _measure(hub, lambda: count(AutoSourceSelector.from_hub()))
        # a fresh machine (a scheduled job) builds the index: nothing cached
        with tempfile.TemporaryDirectory() as job_cache:
            constants.HF_HUB_CACHE = job_cache
            out["index_build_first"] = _measure(hub, lambda: build_index("bench/index").to_dict()["entries"])
            constants.HF_HUB_CACHE = cache
        for i in range(10):  # ten owners push a new version
            repo = hub.state.repo(f"user{i % 50}/task-{i}")
            repo.commit("main", repo_files(_embedding(f"task-{i}", BITFIT_DIM, 10_000 + i)), [], [], "update")
        with tempfile.TemporaryDirectory() as job_cache:  # the next scheduled run, again on a fresh machine
            constants.HF_HUB_CACHE = job_cache
            out["index_build_after_10_changes"] = _measure(
                hub, lambda: {k: v for k, v in build_index("bench/index").to_dict().items() if k not in ("failed", "url")})
            constants.HF_HUB_CACHE = cache
        out["from_index_cached"] = _measure(hub, lambda: count(AutoSourceSelector.from_index("bench/index")))
    first, again = out["from_hub_first"], out["from_hub_resync"]
    out["resync_time_ratio"] = round(again["seconds"] / first["seconds"], 4)
    out["resync_vs_legacy_second_speedup"] = round(out["legacy_second"]["seconds"] / again["seconds"], 1)
    ours = [first["seconds"], out["from_hub_first_other_cache"]["seconds"]]
    legacy = [out["legacy_first"]["seconds"], out["legacy_second"]["seconds"]]
    out["first_sync_over_legacy"] = round(sum(ours) / sum(legacy), 3)  # the goal: <= 1
    return out


def _index_child(folder: str, dim: int) -> None:
    """In a fresh process: load the index, rank one target; print time and peak RSS."""
    from taskemb_hub.ranking.selector import AutoSourceSelector

    start = time.perf_counter()
    selector = AutoSourceSelector.from_index(folder)
    loaded = time.perf_counter() - start
    target = _embedding("target", dim, 123_456)
    start = time.perf_counter()
    ranking = selector.rank(target, top_k=10)
    first_rank = time.perf_counter() - start
    start = time.perf_counter()
    selector.rank(target, top_k=10)
    second_rank = time.perf_counter() - start
    print(json.dumps({"load_s": round(loaded, 3), "first_rank_s": round(first_rank, 3),
                      "second_rank_s": round(second_rank, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
                      "top1": ranking.names[0]}))


def _write_synthetic_index(folder: Path, n: int, dim: int) -> None:
    """An index folder of n random entries, written shard-first (a registry this size never sits in one list)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.torch import save_file

    from taskemb_hub.registries.index import INDEX_FILE, INDEX_FORMAT, SHARD_DIR

    sig = _embedding("x", dim, 0)
    g = torch.Generator().manual_seed(n)
    unit = torch.empty(n, dim, dtype=torch.float16)
    for start in range(0, n, 10_000):
        block = torch.randn(min(10_000, n - start), dim, generator=g)
        unit[start:start + len(block)] = (block / block.norm(dim=1, keepdim=True)).half()
    norms = torch.ones(n)
    (folder / SHARD_DIR).mkdir(parents=True)
    save_file({"unit": unit, "norms": norms, "mean": unit.float().mean(0)}, str(folder / SHARD_DIR / f"{sig.signature_hash}.safetensors"))
    names = [f"user/task-{i}" for i in range(n)]
    pq.write_table(pa.table({"name": names, "sha": ["0" * 40] * n, "task": [f"task-{i}" for i in range(n)],
                             "method": ["bitfit"] * n, "base_model": [sig.base_model] * n, "step": [100] * n,
                             "train_size": [1000] * n, "metrics": ["{}"] * n, "license": [None] * n,
                             "recipe": ["null"] * n, "extra": ["{}"] * n}), folder / SHARD_DIR / f"{sig.signature_hash}.parquet")
    shard = {"method": "bitfit", "base_model": sig.base_model, "dim": dim, "rows": n, "signature": sig.signature,
             "dtype": "float16"}
    (folder / INDEX_FILE).write_text(json.dumps({"format": INDEX_FORMAT, "source": {}, "entries": n,
                                                 "shards": {sig.signature_hash: shard}, "failures": []}))


def index_figures(sizes: list[int], dim: int) -> dict:
    out = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as folder:
            _write_synthetic_index(Path(folder), n, dim)
            size_mb = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20
            child = subprocess.run([sys.executable, __file__, "--index-child", folder, "--index-dim", str(dim)],
                                   capture_output=True, text=True, check=True)
            out[str(n)] = json.loads(child.stdout.strip().splitlines()[-1]) | {"index_mb": round(size_mb, 1)}
        print(f"from_index {n:>7} entries x {dim}: {out[str(n)]}", flush=True)
    return out


def float16_figures() -> dict:
    """The packaged registry through a float16 index vs the float32 originals: leave-one-out rankings compared."""
    from taskemb_hub.registries.index import write_index
    from taskemb_hub.ranking.selector import AutoSourceSelector

    exact = AutoSourceSelector.from_default()
    with tempfile.TemporaryDirectory() as folder:
        write_index(exact.entries, folder, dtype=torch.float16)
        half = AutoSourceSelector.from_index(folder)
        same, total, max_diff = 0, 0, 0.0
        for entry in exact.entries:
            for similarity in ("cosine", "centered"):
                # the PEFT ranker on both: the index holds the PEFT vectors only, so `auto` would fuse TextEmb on
                # the packaged registry and not on its index, and compare two different rankers
                a, b = (exact.rank(entry.name, similarity=similarity, ranker="peft"),
                        half.rank(entry.name, similarity=similarity, ranker="peft"))
                same += a.names == b.names
                total += 1
                scores = {r["source"]: r["score"] for r in b}
                max_diff = max(max_diff, max(abs(r["score"] - scores[r["source"]]) for r in a))
    return {"targets_x_similarities": total, "identical_full_rankings": same, "max_score_difference": max_diff,
            "ranker": "peft"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--index-sizes", default="1000,10000,100000")
    parser.add_argument("--index-dim", type=int, default=3072)
    parser.add_argument("--parts", default="sync,index,float16", help="comma list of: sync, index, float16")
    parser.add_argument("--index-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.index_child:
        return _index_child(args.index_child, args.index_dim)
    parts = set(args.parts.split(","))
    previous = RESULT.is_file() and json.loads(RESULT.read_text()) or {}
    figures = {**previous, "machine": machine(), "load_avg_1min_at_start": round(os.getloadavg()[0], 2)}
    # each part's own load: a run of some parts keeps the others' figures from an earlier run
    by_part = figures.setdefault("load_avg_1min_by_part", {})
    for part in parts:
        by_part[part] = figures["load_avg_1min_at_start"]
    if "sync" in parts:
        figures |= {"entries": args.entries, "dim": BITFIT_DIM, "sync": sync_figures(args.entries)}
        for key, value in figures["sync"].items():
            print(f"{key:<32} {value}", flush=True)
    if "index" in parts:
        figures |= {"index_dim": args.index_dim,
                    "from_index": index_figures([int(s) for s in args.index_sizes.split(",")], args.index_dim)}
    if "float16" in parts:
        figures["float16_packaged_registry"] = float16_figures()
        print("float16 index vs float32, packaged registry:", figures["float16_packaged_registry"])
    print(f"saved {save('hub_sync', figures)}")


if __name__ == "__main__":
    main()
