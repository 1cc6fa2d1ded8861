"""Generate benchmarks/RESULTS.md (+ PNG plots) from the measured transfer matrix and the embeddings.

    python benchmarks/report.py

Inputs: `results/transfer_limited.jsonl` (ground truth), `results/transfer_device_check.jsonl` (GPU re-runs
of CPU cells), `results/embeddings/` (embed_tasks.py) and `results/target_embedding_cost.json`
(target_embedding_cost.py). Every classification task of the suite is a target, ranked over the other 15 as
sources. A target row (one ground-truth seed) is scored once it has its base run and at least MIN_SOURCES
measured sources; rankings are then over the measured sources only, and the report lists every missing
cell. A section ranks the first 10 tasks (`core10`) only, the pool of earlier versions of this report.

The code lives in `reporting/` (data, scoring, out-of-sample choices, RESULTS.md sections, README blocks); this
script is the entry point the README and RESULTS.md quote.
"""

from reporting.blocks import FIGURES_FILE, SNIPPETS, read_block
from reporting.data import RESULTS, load_matrix, load_runs
from reporting.pipeline import main
from reporting.readme_benchmarks import benchmark_table
from reporting.regimes import OURS, TEXTEMB_FAMILY
from reporting.scoring import CEILING, RANDOM, _paired, evaluate_method, score_row

# the names the tests read from `report` (tests/test_readme_figures.py, tests/test_peer_rankers.py)
__all__ = ["CEILING", "FIGURES_FILE", "OURS", "RANDOM", "RESULTS", "SNIPPETS", "TEXTEMB_FAMILY", "_paired",
           "benchmark_table", "evaluate_method", "load_matrix", "load_runs", "main", "read_block", "score_row"]

if __name__ == "__main__":
    main()
