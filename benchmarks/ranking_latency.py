"""Ranking latency and memory at 100k and 1M entries, beside the memory-bandwidth bound, in one run.

    python benchmarks/ranking_latency.py [--sizes 100000,1000000] [--dim 18432] [--queries 10]
                                         [--workdir /tmp/taskemb_ranking] [--keep-files]

For each size, in separate processes (each reports its own peak RSS):

1. generate: a registry shard as an index stores it (safetensors: float16 unit rows, norms, mean,
   the 1,024-value projection), written block by block from benchmarks/_ranking_data.py's structured
   synthetic rows (clusters of 20 entries: what a registry of many tasks x seeds/steps looks like),
   plus `--queries` fresh vectors of existing clusters. 1M x 18,432 is 37 GB on disk: deleted after
   the run unless --keep-files.
2. bound: bare numpy on the same rows: matvec + argpartition of the top 10 on a float32 copy held in
   memory (the fast baseline; it reads twice the ranker's bytes) and on the float16 memory map itself
   (the same bytes; numpy has no fast float16 product). When the float32 copy does not fit (1M), one
   pass over the file in blocks stands for the bound (disk-bound). The same process computes the exact
   top-10 of every query (float32 products of the stored rows) for both similarities.
3. ranker: `AutoSourceSelector.rank(query, top_k=10)` on the memory-mapped shard, one process per
   search path (auto and each forced path that fits): first query (includes building what the path
   needs: the projection's norms, an HNSW index), then the median of the others; top-10 agreement with
   the exact top-10; peak RSS of that process (mapped file pages that were read count).

Writes results/ranking_latency.json and prints the rows side by side with ratios to the bound.
"""

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import BITFIT_DIM, machine, peak_rss_mb, save

SIMILARITIES = ("cosine", "centered")
FIT_FLOAT32_BYTES = 10 * 2**30  # the float32 copy of the bound is made only below this (memory is shared)
EXACT_MAX_BYTES = 8 * 2**30  # the ranker's exact path is run only when the float16 rows fit in memory


def result_key(n: int, dim: int, kind: str) -> str:
    """'100000' at the default width; other widths and kinds name themselves ('1000000x4096', '100000-iid')."""
    return str(n) + ("" if dim == BITFIT_DIM else f"x{dim}") + ("" if kind == "structured" else f"-{kind}")


# ---- 1. generate -------------------------------------------------------------------------------
def generate(folder: Path, n: int, dim: int, queries: int, kind: str = "structured") -> dict:
    import torch
    from _ranking_data import SyntheticRegistry

    from taskemb_hub._ann import Projection

    folder.mkdir(parents=True, exist_ok=True)
    registry = SyntheticRegistry(n, dim, kind=kind, seed=0)
    projection = Projection(dim)
    k = projection.dim_out
    specs = [("unit", "F16", [n, dim], n * dim * 2), ("norms", "F32", [n], n * 4), ("mean", "F32", [dim], dim * 4),
             ("projected", "F16", [n, k], n * k * 2)]
    header, offset = {}, 0
    for name, dtype, shape, size in specs:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * ((-len(raw)) % 8)
    path = folder / "shard.safetensors"
    norms = np.empty(n, dtype=np.float32)
    total = np.zeros(dim, dtype=np.float64)
    projected = np.empty((n, k), dtype=np.float16)
    started = time.perf_counter()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for start in range(0, n, 4096):
            stop = min(n, start + 4096)
            block = registry.rows(start, stop)
            total += block.sum(0, dtype=np.float64)
            norms[start:stop] = np.linalg.norm(block, axis=1)
            unit16 = (block / norms[start:stop, None]).astype(np.float16)
            f.write(unit16.tobytes())
            projected[start:stop] = projection(torch.from_numpy(unit16)).half().numpy()
        f.write(norms.tobytes())
        f.write((total / n).astype(np.float32).tobytes())
        f.write(projected.tobytes())
    np.save(folder / "queries.npy", registry.queries(queries))
    return {"generate_s": time.perf_counter() - started, "file_gb": path.stat().st_size / 1e9}


def _shard(folder: Path) -> dict:
    """The shard's tensors as read-only memory maps (the project's reader)."""
    from taskemb_hub.registries._shards import mmap_vectors

    path = folder / "shard.safetensors"
    with open(path, "rb") as f:  # our own file: its header gives the sizes the reader checks it against
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    rows, dim = header["unit"]["shape"]
    return mmap_vectors(path, "benchmark shard", rows, dim)


# ---- 2. bound and exact truth -----------------------------------------------------------------
def _truth_from_products(prod_t, prod_mu, norms, t, mu) -> dict[str, list[int]]:
    """Exact top-10 of one query for both similarities from ⟨u_i, t⟩ and ⟨u_i, μ⟩ (float64)."""
    out = {}
    cos = prod_t / np.linalg.norm(t)
    out["cosine"] = np.lexsort((np.arange(len(cos)), -cos))[:10].tolist()
    tc = t - mu
    inner = norms * (prod_t - prod_mu) - float(tc @ mu)
    sq = norms ** 2 - 2 * norms * prod_mu + float(mu @ mu)
    cen = inner / (np.sqrt(np.maximum(sq, 0)) * np.linalg.norm(tc))
    out["centered"] = np.lexsort((np.arange(len(cen)), -cen))[:10].tolist()
    return out


def bound(folder: Path, repeats: int) -> dict:
    import torch

    tensors = _shard(folder)
    unit16 = tensors["unit"].numpy()
    norms = tensors["norms"].numpy().astype(np.float64)
    mu = tensors["mean"].numpy().astype(np.float64)
    queries = np.load(folder / "queries.npy")
    n, dim = unit16.shape
    result = {"rows": n}
    truth = []
    if n * dim * 4 <= FIT_FLOAT32_BYTES:
        m32 = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, 8192):
            m32[start:start + 8192] = unit16[start:start + 8192]
        times = []
        for q in queries:  # the bound: one matvec over the rows + the top 10
            started = time.perf_counter()
            s = m32 @ q
            np.argpartition(-s, 10)[:10]
            times.append(time.perf_counter() - started)
        result["numpy_f32_median_ms"] = 1000 * statistics.median(times)
        prod_mu = (m32 @ mu.astype(np.float32)).astype(np.float64)
        for q in queries:
            truth.append(_truth_from_products((m32 @ q).astype(np.float64), prod_mu, norms, q.astype(np.float64), mu))
        del m32
        times = []
        for q in queries[:repeats]:  # same bytes as the ranker reads; numpy's float16 product is not vectorised
            started = time.perf_counter()
            s = unit16 @ q.astype(np.float16)
            np.argpartition(-s, 10)[:10]
            times.append(time.perf_counter() - started)
        result["numpy_f16_median_ms"] = 1000 * statistics.median(times)
        times = []
        t16 = torch.from_numpy(unit16)
        for q in queries:  # the float16 kernel the ranker's exact path uses, bare
            started = time.perf_counter()
            s = t16 @ torch.from_numpy(q).half()
            torch.topk(s.float(), 10)
            times.append(time.perf_counter() - started)
        result["torch_f16_median_ms"] = 1000 * statistics.median(times)
    else:  # one streamed pass over the file: products with every query and the mean at once
        started = time.perf_counter()
        cols = np.concatenate([queries.T, mu[:, None]], axis=1).astype(np.float32)
        prods = np.empty((n, cols.shape[1]), dtype=np.float64)
        path = folder / "shard.safetensors"
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            base = 8 + header_len
            block = 16384
            for start in range(0, n, block):
                rows = min(block, n - start)
                f.seek(base + start * dim * 2)
                chunk = np.fromfile(f, dtype=np.float16, count=rows * dim).reshape(rows, dim).astype(np.float32)
                prods[start:start + rows] = chunk @ cols
        result["streamed_pass_s"] = time.perf_counter() - started
        result["streamed_pass_note"] = (f"one pass over the {n}x{dim} float16 file, {cols.shape[1]} products per row "
                                        "at once (what one exact query must read at least)")
        for j, q in enumerate(queries):
            truth.append(_truth_from_products(prods[:, j], prods[:, -1], norms, q.astype(np.float64), mu))
    result["peak_rss_mb"] = peak_rss_mb()
    (folder / "truth.json").write_text(json.dumps(truth))
    return result


# ---- 3. the ranker -----------------------------------------------------------------------------
def ranker(folder: Path, search: str) -> dict:
    import torch

    from taskemb_hub import _ann

    if search == "auto-nograph":  # auto on a fresh 1M registry without starting the (hour-long) graph build
        _ann.ann_available = lambda: False

    from taskemb_hub import AutoSourceSelector, TaskEmbedding
    from taskemb_hub._vectors import VectorGroup
    from taskemb_hub.registries import RegistryEntry

    tensors = _shard(folder)
    unit, norms, mean, projected = (tensors[k] for k in ("unit", "norms", "mean", "projected"))
    n = unit.shape[0]
    signature = {"method": "bitfit", "synthetic": True}
    probe = TaskEmbedding(vector=torch.ones(unit.shape[1]), task="q", base_model="m", method="bitfit", signature=signature)
    sig = probe.signature_hash

    class Info:  # what an index row gives without the vector
        task, method, step, train_size, metrics, extra = "t", "bitfit", 100, 1000, {}, {}

    def loader(i):
        return lambda: TaskEmbedding(vector=unit[i].float() * norms[i], task=f"task{i // 20}", base_model="m",
                                     method="bitfit", signature=signature)

    info = Info()
    started = time.perf_counter()
    entries = [RegistryEntry(f"e{i}", location="", signature_hash=sig, load=loader(i), info=lambda: info)
               for i in range(n)]
    group = VectorGroup(rows=list(range(n)), unit=unit, norms=norms, mean=mean, projected=projected)
    selector = AutoSourceSelector(entries, groups={sig: group})
    setup_s = time.perf_counter() - started
    queries = [TaskEmbedding(vector=torch.from_numpy(q), task="q", base_model="m", method="bitfit", signature=signature)
               for q in np.load(folder / "queries.npy")]
    truth = json.loads((folder / "truth.json").read_text())
    out = {"search": search, "rows": n, "setup_s": setup_s, "load_avg_1min_at_start": os.getloadavg()[0]}
    for similarity in SIMILARITIES:
        times, agree, path = [], [], None
        for j, q in enumerate(queries):
            started = time.perf_counter()
            ranking = selector.rank(q, top_k=10, similarity=similarity,
                                    search="auto" if search == "auto-nograph" else search)
            times.append(time.perf_counter() - started)
            path = ranking.search
            got = [int(r["source"][1:]) for r in ranking.rows]
            agree.append(len(set(got) & set(truth[j][similarity])) / 10)
        out[similarity] = {"path": path if search != "auto-nograph" else f"{path} (no graph)", "first_s": times[0], "median_ms": 1000 * statistics.median(times[1:]),
                           "top10_agreement": float(np.mean(agree)), "exact_top10_queries": int(sum(a == 1 for a in agree)),
                           "queries": len(queries)}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{args}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=BITFIT_DIM, help="BitFit on MiniLM (the default method)")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--workdir", default="/tmp/taskemb_ranking")
    parser.add_argument("--keep-files", action="store_true")
    parser.add_argument("--generate-only", action="store_true",
                        help="write the registry files and stop (generation is not timed: it may run at idle priority)")
    parser.add_argument("--reuse-files", action="store_true", help="use registry files a --generate-only run left")
    parser.add_argument("--searches", default="auto,exact,projection,ann")
    parser.add_argument("--kind", default="structured", choices=["structured", "iid"],
                        help="iid: independent Gaussian rows, the first stages' worst case")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        kind, folder, *rest = args.step
        fn = {"generate": lambda: generate(Path(folder), int(rest[0]), int(rest[1]), int(rest[2]), rest[3]),
              "bound": lambda: bound(Path(folder), int(rest[0])), "ranker": lambda: ranker(Path(folder), rest[0])}[kind]
        print(json.dumps(fn()))
        return
    results_path = Path(__file__).parent / "results" / "ranking_latency.json"
    previous = json.loads(results_path.read_text()) if results_path.is_file() else {}
    sizes = {}
    for value in previous.get("sizes", {}).values():  # sizes not re-run this time are kept
        sizes[result_key(value["rows"], value["dim"], value.get("kind", "structured"))] = value
    for n in [int(s) for s in args.sizes.split(",")]:
        folder = Path(args.workdir) / (f"{n}x{args.dim}" + ("" if args.kind == "structured" else f"-{args.kind}"))
        try:
            done = folder / "generate.json"
            if args.reuse_files and done.is_file():
                gen = json.loads(done.read_text())
            else:
                gen = _child("--step", "generate", folder, n, args.dim, args.queries, args.kind)
                done.write_text(json.dumps(gen))
            print(f"{n} x {args.dim}: generated {gen['file_gb']:.1f} GB in {gen['generate_s']:.0f} s", flush=True)
            if args.generate_only:
                continue
            bnd = _child("--step", "bound", folder, 3)
            print(f"  bound: {json.dumps(bnd)}", flush=True)
            runs = []
            for search in args.searches.split(","):
                if search == "exact" and n * args.dim * 2 > EXACT_MAX_BYTES:
                    continue
                if search in ("ann", "auto") and n > 300_000:
                    # building the HNSW graph of 1M rows takes longer than this run (ann_choice.json): auto
                    # is measured as a fresh registry sees it while the graph builds (the projection scan)
                    if search == "ann":
                        continue
                    search = "auto-nograph"
                runs.append(_child("--step", "ranker", folder, search))
                print(f"  ranker {search}: {json.dumps(runs[-1])}", flush=True)
        finally:
            if not args.keep_files and not args.generate_only:
                shutil.rmtree(folder, ignore_errors=True)
        key = result_key(n, args.dim, args.kind)
        sizes[key] = {"rows": n, "dim": args.dim, "kind": args.kind, "generate": gen, "bound": bnd, "ranker": runs}
        save("ranking_latency", {"sizes": sizes, "machine": machine(), "note": __doc__.split("\n\n")[2]})
    print(f"\n{'registry':>14} {'search':>12} {'similarity':>10} {'path':>21} {'median ms':>10} {'bound ms':>9} "
          f"{'ratio':>6} {'first s':>8} {'top10 agree':>11} {'peak RSS MB':>11} {'bound RSS MB':>12}")
    for key, size in sizes.items():
        bnd = size["bound"]
        bound_ms = bnd.get("numpy_f32_median_ms", 1000 * bnd.get("streamed_pass_s", float("nan")))
        print(f"{key:>14} bound: " + ", ".join(f"{k} {v:.1f}" for k, v in bnd.items() if k.endswith(("_ms", "_s"))))
        for run in size["ranker"]:
            for similarity in SIMILARITIES:
                r = run[similarity]
                print(f"{key:>14} {run['search']:>12} {similarity:>10} {r['path']:>21} {r['median_ms']:>10.1f} "
                      f"{bound_ms:>9.1f} {r['median_ms'] / bound_ms:>6.2f} {r['first_s']:>8.1f} "
                      f"{r['top10_agreement']:>11.3f} {run['peak_rss_mb']:>11.0f} {bnd['peak_rss_mb']:>12.0f}")


if __name__ == "__main__":
    main()
