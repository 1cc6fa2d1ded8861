"""faiss or usearch behind `rank()`: build time, query time, recall@10 and memory on the same rows.

    python benchmarks/ann_choice.py [--rows 100000] [--queries 200]

The rows are what the ANN index holds in taskemb-hub: structured synthetic BitFit-sized vectors
(benchmarks/_ranking_data.py, 20,736 values) projected to 1,024 by `taskemb_hub._ann.Projection`,
unit-normalised, searched by inner product, one query at a time. Each method runs in its own process
(peak RSS is that process's, beyond the shared rows). recall@10: share of the exact top-10 (inner
product on the projected rows) returned in the method's top-10; recall@10 in 256: share of the exact
top-10 among its 256 candidates (what the exact re-rank needs). Writes results/ann_choice.json.
"""

import argparse
import json
import resource
import statistics
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import machine, peak_rss_mb, save

DATA = Path("/tmp/taskemb_ann_choice")
METHODS = {
    "numpy-flat": {},
    "faiss-hnsw-flat": {"M": 16, "efConstruction": 128},
    "faiss-hnsw-sq-fp16": {"M": 16, "efConstruction": 128},
    "faiss-ivf-flat": {"nlist": 1024},
    "usearch-hnsw-f16": {"connectivity": 16, "expansion_add": 128},
    "usearch-hnsw-i8": {"connectivity": 16, "expansion_add": 128},
}
SEARCH_SETTINGS = {"faiss-hnsw-flat": [64, 512], "faiss-hnsw-sq-fp16": [64, 512], "faiss-ivf-flat": [16, 64],
                   "usearch-hnsw-f16": [64, 512], "usearch-hnsw-i8": [64, 512], "numpy-flat": [0]}


def make_data(rows: int, queries: int) -> None:
    from _ranking_data import SyntheticRegistry

    from taskemb_hub._ann import Projection

    DATA.mkdir(exist_ok=True)
    registry = SyntheticRegistry(rows, 20736, seed=0)
    projection = Projection(20736)
    out = np.empty((rows, projection.dim_out), dtype=np.float32)
    for start in range(0, rows, 4096):
        block = torch.from_numpy(registry.rows(start, min(rows, start + 4096)))
        block = block / block.norm(dim=1, keepdim=True)
        out[start:start + len(block)] = projection(block).numpy()
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    q = projection(torch.from_numpy(registry.queries(queries))).numpy()
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.stack([np.argsort(-(out @ x), kind="stable")[:10] for x in q])
    np.save(DATA / "rows.npy", out)
    np.save(DATA / "queries.npy", q)
    np.save(DATA / "truth.npy", truth)


def run_one(method: str) -> dict:
    rows, queries, truth = (np.load(DATA / f"{n}.npy") for n in ("rows", "queries", "truth"))
    rss_before = peak_rss_mb()
    params = METHODS[method]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    if method == "numpy-flat":
        index = rows.astype(np.float16)
        del rows

        def search(q, k, setting):
            s = torch.from_numpy(index) @ torch.from_numpy(q).half()
            return torch.topk(s.float(), k).indices.numpy()
        size = index.nbytes
    elif method.startswith("faiss"):
        import faiss

        d = rows.shape[1]
        if method == "faiss-hnsw-flat":
            index = faiss.IndexHNSWFlat(d, params["M"], faiss.METRIC_INNER_PRODUCT)
        elif method == "faiss-hnsw-sq-fp16":
            index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, params["M"], faiss.METRIC_INNER_PRODUCT)
        else:
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, params["nlist"], faiss.METRIC_INNER_PRODUCT)
            index.train(rows[np.random.default_rng(0).permutation(len(rows))[:50_000]])
        if "hnsw" in method:
            index.hnsw.efConstruction = params["efConstruction"]
            if method == "faiss-hnsw-sq-fp16":
                index.train(rows[:10_000])
        index.add(rows)
        size = len(faiss.serialize_index(index))
        del rows

        def search(q, k, setting):
            if "hnsw" in method:
                index.hnsw.efSearch = max(setting, k)
            else:
                index.nprobe = setting
            return index.search(q[None], k)[1][0]
    else:
        from usearch.index import Index

        index = Index(ndim=rows.shape[1], metric="ip", dtype=method.rsplit("-", 1)[1], **params)
        index.add(np.arange(len(rows), dtype=np.uint64), rows, threads=0)
        size = int(index.memory_usage)
        del rows

        def search(q, k, setting):
            index.expansion_search = max(setting, k)
            return np.asarray(index.search(q, k).keys)
    build_s = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {"method": method, "params": params, "build_s": build_s,
              "build_cpu_s": usage.ru_utime + usage.ru_stime - cpu_before, "index_mb": size / 2**20,
              "peak_rss_mb": peak_rss_mb(), "rss_before_build_mb": rss_before, "settings": []}
    for setting in SEARCH_SETTINGS[method]:
        times, cpu, hit10, hit256 = [], [], [], []
        for q, t in zip(queries, truth):
            started, cpu_started = time.perf_counter(), time.process_time()
            top = search(q, 10, setting)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            hit10.append(len(set(top.tolist()) & set(t.tolist())) / 10)
            hit256.append(len(set(search(q, 256, setting).tolist()) & set(t.tolist())) / 10)
        result["settings"].append({"search": setting, "median_query_ms": 1000 * statistics.median(times),
                                   "median_query_cpu_ms": 1000 * statistics.median(cpu),
                                   "recall_at_10": float(np.mean(hit10)), "recall_at_10_in_256": float(np.mean(hit256))})
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--methods", default=",".join(METHODS), help="a subset, e.g. the two finalists")
    parser.add_argument("--rounds", type=int, default=1, help="run the methods this many times, interleaved")
    parser.add_argument("--reuse-data", action="store_true", help="keep the rows of the last run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    started = time.perf_counter()
    if not (args.reuse_data and (DATA / "rows.npy").is_file()):
        make_data(args.rows, args.queries)
    print(f"data: {args.rows} rows x 1024 (projected), {time.perf_counter() - started:.0f} s")
    results = []
    print(f"{'method':<20} {'build s':>8} {'build CPU s':>11} {'index MB':>9} {'search':>7} {'query ms':>9} "
          f"{'query CPU ms':>12} {'recall@10':>10} {'top10 in 256':>13}")
    for method in args.methods.split(",") * args.rounds:
        out = subprocess.run([sys.executable, __file__, "--one", method], capture_output=True, text=True)
        if out.returncode:
            print(method, "failed:", out.stderr[-500:])
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        for s in r["settings"]:
            print(f"{method:<20} {r['build_s']:>8.1f} {r['build_cpu_s']:>11.1f} {r['index_mb']:>9.0f} {s['search']:>7} "
                  f"{s['median_query_ms']:>9.2f} {s['median_query_cpu_ms']:>12.2f} {s['recall_at_10']:>10.3f} "
                  f"{s['recall_at_10_in_256']:>13.3f}", flush=True)
    import faiss
    import usearch

    from _common import RESULTS

    run = {"rows": args.rows, "dim": 1024, "queries": args.queries, "data": "structured, projected from 20736",
           "versions": {"faiss-cpu": faiss.__version__, "usearch": usearch.__version__},
           "load_average_after": os.getloadavg(), "results": results, "machine": machine()}
    path = RESULTS / "ann_choice.json"
    previous = json.loads(path.read_text()) if path.is_file() and args.reuse_data else {"runs": []}
    runs = previous.get("runs", [previous])  # a file of one run (the first version of this script)
    save("ann_choice", {"runs": runs + [run], "note": __doc__.split("\n\n")[2]})


if __name__ == "__main__":
    main()
