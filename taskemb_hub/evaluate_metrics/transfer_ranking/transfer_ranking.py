"""`evaluate` metric: NDCG, ρ, Regret@k and Spearman of a source-task ranking.

Load it by path (no Hub download):

    import evaluate
    from taskemb_hub.evaluate_metrics import TRANSFER_RANKING
    metric = evaluate.load(TRANSFER_RANKING)
    metric.compute(predictions=[0.9, 0.1, 0.4], references=[0.82, 0.70, 0.79], base_score=0.75)

`predictions`: predicted similarity of each source to the target; `references`: the measured
target score after transfer from that source; `base_score`: the target's score without transfer.
Gains and metrics are defined in `taskemb_hub.evaluation.ranking_metrics`.
"""

import datasets
import evaluate

from taskemb_hub.evaluation.ranking_metrics import evaluate_ranking

_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of float, predicted score per source (higher = ranked first).
    references: list of float, measured transfer score per source, same order.
    base_score: float, the target's score fine-tuned from the plain base model.
    k: int, cut-off for Regret@k (default 3).
    gain: "relative" (default), "shifted" or "exponential" (2^(100·score) − 1, hf-dataset-selector's).
Returns:
    ndcg, rho (the mean predicted rank of the best sources when several tie), regret@k, spearman.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TransferRanking(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
                                   features=datasets.Features({"predictions": datasets.Value("float64"),
                                                               "references": datasets.Value("float64")}))

    def _compute(self, predictions, references, base_score, k=3, gain="relative"):
        names = [f"s{i}" for i in range(len(predictions))]
        return evaluate_ranking(dict(zip(names, predictions)), dict(zip(names, references)), base_score, k=k,
                                gain_kind=gain)
