"""`python benchmarks/report.py`'s parts: RESULTS.md, its figures and the README's generated blocks.

- `data`: the measured transfer matrix, the stored embeddings and the names of the methods (a leaf: any
  benchmark script imports it without the report)
- `scoring`: scorers (through `AutoSourceSelector`), metrics, means over seeds and targets
- `regimes`: choices made leave-one-target-out per ground truth, the pool comparison
- `sections`, `results_md`, `figures`: RESULTS.md and its PNG figures
- `blocks`, `readme_benchmarks`, `readme_evidence`, `readme_compare`: the README's generated blocks
- `markdown`: number formatting and table helpers
- `pipeline`: `main`, the steps in order
"""
