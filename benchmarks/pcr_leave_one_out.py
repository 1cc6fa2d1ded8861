"""pcr-1 (the default similarity) ranked leave-one-out: the current directions beside the previous ones, one run.

    python benchmarks/pcr_leave_one_out.py [--sizes 1000,10000] [--dim 18432] [--queries 20]

A registry task looked up in its own registry (the Space's registry tab, `rank(..., exclude=...)`) is ranked
with its own row left out, so the principal direction that pcr removes is found again without it: the Gram
matrix of the group's rows (at most `PCR_SAMPLE_ROWS`) is re-solved per query. The baseline is the previous
implementation (a full `torch.linalg.eigh`, kept verbatim below) swapped into the same `VectorGroup`; both
score the same queries on the same rows (benchmarks/_ranking_data.py's structured synthetic registry), and
the run records the largest score difference, the top-10 agreement and the 1-minute load before each size.
Writes results/pcr_leave_one_out.json.
"""

import argparse
import os
import statistics
import time

import torch
from _common import BITFIT_DIM, machine, save
from _ranking_data import SyntheticRegistry

from taskemb_hub._vectors import _EPS, VectorGroup


def previous_top_directions(basis: dict, kept: torch.Tensor, k: int) -> torch.Tensor:
    """`VectorGroup._top_directions` before the subset solver: every eigenpair of the kept rows' Gram matrix."""
    idx = kept.nonzero().flatten()
    g = basis["gram"][idx][:, idx]
    row_mean = g.mean(1, keepdim=True)
    centred = g - row_mean - row_mean.T + g.mean()
    values, vectors = torch.linalg.eigh(centred)
    top = torch.argsort(values, descending=True)[:k]
    top = top[values[top] > 1e-12 * max(float(values.max()), _EPS)]
    w = vectors[:, top]
    w = w - w.mean(0, keepdim=True)
    return (basis["x"][idx].T @ w) / values[top].sqrt()


def timed_scores(group: VectorGroup, queries: list[int]) -> tuple[list[float], torch.Tensor]:
    """Seconds per leave-one-out query and the scores (one row per query)."""
    seconds, scores = [], []
    for q in queries:
        keep = torch.ones(len(group), dtype=torch.bool)
        keep[q] = False
        target = group.unit[q].float() * group.norms[q]
        started = time.perf_counter()
        scores.append(group.scores(target, "pcr-1", keep))
        seconds.append(time.perf_counter() - started)
    return seconds, torch.stack(scores)


def run_size(n: int, dim: int, queries: int) -> dict:
    registry = SyntheticRegistry(n, dim)
    group = VectorGroup.from_vectors(list(range(n)), list(torch.from_numpy(registry.rows(0, n))))
    picked = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:queries].tolist()
    load = os.getloadavg()[0]
    group.scores(group.unit[0].float(), "pcr-1")  # the Gram matrix, built once per group, out of the timings
    timed_scores(group, picked[:1])  # first call: lazy imports (scipy.linalg), out of the timings
    current_s, current = timed_scores(group, picked)
    current_method = VectorGroup.__dict__["_top_directions"]
    VectorGroup._top_directions = staticmethod(previous_top_directions)
    try:
        timed_scores(group, picked[:1])
        previous_s, previous = timed_scores(group, picked)
    finally:
        VectorGroup._top_directions = current_method
    finite = torch.isfinite(previous)
    top10 = [len(set(a.topk(10).indices.tolist()) & set(b.topk(10).indices.tolist())) / 10
             for a, b in zip(current, previous)]
    row = {"entries": n, "dim": dim, "queries": queries, "load_before": round(load, 2),
           "load_after": round(os.getloadavg()[0], 2),
           "previous_p50_ms": round(1000 * statistics.median(previous_s), 1),
           "current_p50_ms": round(1000 * statistics.median(current_s), 1),
           "max_abs_score_difference": float((current[finite] - previous[finite]).abs().max()),
           "top10_agreement": min(top10)}
    row["speedup"] = round(row["previous_p50_ms"] / row["current_p50_ms"], 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--dim", type=int, default=BITFIT_DIM)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows.append(run_size(n, args.dim, args.queries))
        r = rows[-1]
        print(f"{n:>6} entries x {args.dim}: pcr-1 leave-one-out p50 {r['current_p50_ms']} ms, previous "
              f"{r['previous_p50_ms']} ms (x{r['speedup']}); max |score diff| {r['max_abs_score_difference']:.1e}, "
              f"top-10 agreement {r['top10_agreement']:.2f}; load {r['load_before']} -> {r['load_after']}", flush=True)
    print("wrote", save("pcr_leave_one_out", {"rows": rows, "machine": machine()}))


if __name__ == "__main__":
    main()
