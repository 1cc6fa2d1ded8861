"""Ranking latency over registries of 1k, 10k and 100k synthetic entries.

    python benchmarks/ranking_latency.py [--dim 20736] [--sizes 1000,10000,100000]

Entries are random vectors of the default method's embedding size (BitFit on MiniLM: 20,736 bias
values; LoRA's 12 modules × 16×16 sketch: `--dim 3072`). Writes results/ranking_latency_dim<dim>.json.
Measures the first `rank` (which stacks the registry into one matrix) and the median of later
ones (matrix reused), for cosine and centred similarity, with a brute-force numpy baseline.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from _common import machine, peak_rss_mb, save

from taskemb_hub import TaskEmbedding
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.selector import AutoSourceSelector


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=20736, help="default: BitFit's dimension on MiniLM (LoRA: 3072)")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=10)
    args = parser.parse_args()
    signature = {"method": "lora", "synthetic": True}
    rows = []
    print(f"{'entries':>8} {'similarity':>10} {'first rank s':>13} {'median rank ms':>15} {'numpy baseline ms':>18} {'peak RSS MB':>12}")
    for n in [int(s) for s in args.sizes.split(",")]:
        g = torch.Generator().manual_seed(n)
        matrix = torch.randn(n, args.dim, generator=g)
        entries = [RegistryEntry(name=f"e{i}", location="", embedding=TaskEmbedding(
            vector=matrix[i], task=f"e{i}", base_model="m", method="lora", signature=signature)) for i in range(n)]
        queries = [TaskEmbedding(vector=torch.randn(args.dim, generator=g), task="q", base_model="m", method="lora",
                                 signature=signature) for _ in range(args.queries)]
        np_matrix = matrix.numpy()
        for similarity in ("cosine", "centered"):
            selector = AutoSourceSelector(entries, similarity=similarity)
            started = time.perf_counter()
            selector.rank(queries[0], top_k=10)
            first = time.perf_counter() - started
            times = []
            for q in queries:
                started = time.perf_counter()
                selector.rank(q, top_k=10)
                times.append(time.perf_counter() - started)
            base_times = []
            for q in queries:  # baseline: normalise everything and sort, every query
                started = time.perf_counter()
                normed = np_matrix / np.linalg.norm(np_matrix, axis=1, keepdims=True)
                if similarity == "centered":
                    normed = np_matrix - np_matrix.mean(0)
                    normed /= np.linalg.norm(normed, axis=1, keepdims=True)
                np.argsort(-(normed @ q.vector.numpy()))[:10]
                base_times.append(time.perf_counter() - started)
            row = {"entries": n, "similarity": similarity, "first_s": first, "median_ms": 1000 * statistics.median(times),
                   "baseline_ms": 1000 * statistics.median(base_times), "peak_rss_mb": peak_rss_mb()}
            rows.append(row)
            print(f"{n:>8} {similarity:>10} {first:>13.3f} {row['median_ms']:>15.1f} {row['baseline_ms']:>18.1f} "
                  f"{row['peak_rss_mb']:>12.0f}")
        del entries, matrix, np_matrix
    save(f"ranking_latency_dim{args.dim}", {"dim": args.dim, "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
