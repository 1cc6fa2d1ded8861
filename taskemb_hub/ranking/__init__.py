"""Ranking: which source tasks of a registry transfer best to a target.

`selector` holds `AutoSourceSelector` (load a registry, rank its entries), `_ranking` what a
ranking is (`Ranking`) and the similarities offered, `similarity` the similarity functions (the
research-only ones too), `rankers` the TextEmb and fusion rankers beside the PEFT embedding's.
The names below are imported on first use (PEP 562): the selector imports torch.
"""

from __future__ import annotations

__all__ = ["AutoSourceSelector", "Ranking", "SIMILARITIES", "DEFAULT_SIMILARITY"]


def __getattr__(name: str):
    if name == "AutoSourceSelector":
        from .selector import AutoSourceSelector

        return AutoSourceSelector
    if name in ("Ranking", "SIMILARITIES", "DEFAULT_SIMILARITY"):
        from ._ranking import DEFAULT_SIMILARITY, SIMILARITIES, Ranking

        return {"Ranking": Ranking, "SIMILARITIES": SIMILARITIES, "DEFAULT_SIMILARITY": DEFAULT_SIMILARITY}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
