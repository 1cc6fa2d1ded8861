"""The ranking a query asks for: its options checked, the selector asked (leave-one-out for a registry task)."""

from __future__ import annotations

from ..embedding import TaskEmbedding
from ..errors import RegistryError, TaskEmbHubError
from ..ranking.rankers import check_ranker, resolve_ranker
from ..ranking.selector import SIMILARITIES, AutoSourceSelector, Ranking
from ._config import SpaceConfig


def _check_options(top_k, similarity: str, config: SpaceConfig, ranker: str = "auto") -> int:
    if similarity not in SIMILARITIES:
        raise TaskEmbHubError(f"Unknown similarity {similarity!r}. Use one of: {', '.join(SIMILARITIES)}.")
    check_ranker(ranker)
    try:
        k = int(top_k)
    except (TypeError, ValueError):
        raise TaskEmbHubError(f"top-k must be a whole number, not {top_k!r}.") from None
    if not 1 <= k <= config.max_top_k:
        raise TaskEmbHubError(f"top-k must be between 1 and {config.max_top_k}, not {k}.")
    return k


def _rank(selector: AutoSourceSelector, target: TaskEmbedding, top_k: int, similarity: str,
          exclude: set[str] = frozenset(), ranker: str = "auto", text_target=None,
          exclude_flagged: bool = False) -> Ranking:
    if exclude and similarity == "cosine" and resolve_ranker(ranker, selector, text_target) == "peft":
        # Leave-one-out by dropping rows afterwards: cosine of the others does not depend on the
        # excluded entries, and the selector's stacked matrix is not copied per query.
        ranking = selector.rank(target, top_k=top_k + len(exclude), similarity=similarity, ranker=ranker,
                                exclude_flagged=exclude_flagged)
        rows = [r for r in ranking.rows if r["source"] not in exclude][:top_k]
        for i, r in enumerate(rows, start=1):
            r["rank"] = i
        if not rows:
            raise RegistryError(f"No other registry entry is comparable with {target.task!r}.")
        ranking.rows = rows
        ranking.skipped = [s for s in ranking.skipped if s[0] not in exclude]
        return ranking
    return selector.rank(target, top_k=top_k, similarity=similarity, exclude=exclude, ranker=ranker,
                         text_target=text_target, exclude_flagged=exclude_flagged)
