"""Evaluation, the lab: the ground truth that rankings are scored against, and the scores.

`transfer` measures intermediate-task transfer by full fine-tuning (the source x target grid that
`taskemb-hub transfer-matrix` and the benchmarks run); `ranking_metrics` scores a ranking against
it (NDCG, ρ, Regret@k, Spearman). Ranking and tuning never import it; the benchmarks, the
`transfer-matrix` command, the Ray executor and the `transfer_ranking` evaluate metric do.
"""
