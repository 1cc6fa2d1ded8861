"""Which signal ranks the sources: the PEFT task embedding, TextEmb, or the two fused.

- `peft`: the similarity of the tuned PEFT weights (the paper's signal; `AutoSourceSelector.similarity`).
- `textemb`: the centred cosine of TextEmb vectors (Vu et al. 2020: the mean of the base model's token states
  over the task's texts). It reads the text, not the labels.
- `fusion`: z-score each ranker's scores over the sources, then `peft + FUSION_TEXT_WEIGHT × textemb`.
- `auto` (default): `fusion` when the target's TextEmb vector is at hand (`rank --data`, or a registry entry
  ranked leave-one-out) and the registry carries TextEmb vectors (the packaged one does); `peft` otherwise.

The weight and the similarities were chosen leave-one-target-out on both ground-truth regimes
(benchmarks/target_dependence.py; README "Does the answer depend on the target?").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import TaskEmbHubError
from .similarity import fuse_scores

if TYPE_CHECKING:  # leaves only: "AutoSourceSelector" stays a bare string (selector imports this module)
    from ._ranking import Ranking
    from ..embedding import TaskEmbedding

RANKERS = ("auto", "peft", "textemb", "fusion")
FUSION_TEXT_WEIGHT = 0.5
TEXT_SIMILARITY = "centered"
WHY = {
    "textemb": "centred cosine of TextEmb vectors (the mean base-model token state over the task's texts)",
    "fusion": f"z-scored PEFT similarity ({{similarity}}) + {FUSION_TEXT_WEIGHT:g} x z-scored TextEmb centred cosine"
              "{chosen}",
}
CHOSEN = " (chosen leave-one-target-out on both regimes; it finds relatives the PEFT embedding alone misses)"


def check_ranker(ranker: str) -> None:
    if ranker not in RANKERS:
        raise TaskEmbHubError(f"Unknown ranker {ranker!r}. Use one of: {', '.join(RANKERS)}.")


def wants_texts(ranker: str, selector: "AutoSourceSelector") -> bool:
    """Whether `ranker` would read the target's TextEmb vector on this registry (worth computing from its data);
    an explicit `textemb`/`fusion` on a registry without TextEmb vectors is refused here, before any work."""
    check_ranker(ranker)
    if ranker in ("textemb", "fusion") and selector.text_selector is None:
        raise TaskEmbHubError(f"ranker {ranker!r} needs a registry with TextEmb vectors (the packaged "
                              "`default` registry has them); use --ranker peft with this registry.")
    return ranker != "peft" and selector.text_selector is not None


def resolve_ranker(ranker: str, selector: "AutoSourceSelector", text_target) -> str:
    """The ranker that will run: `auto` becomes `fusion` when both TextEmb sides exist, else `peft`;
    an explicit `textemb`/`fusion` without them is refused with what to do."""
    has_text = wants_texts(ranker, selector) and text_target is not None
    if ranker == "auto":
        return "fusion" if has_text else "peft"
    if ranker != "peft" and not has_text:
        raise TaskEmbHubError(f"ranker {ranker!r} needs the target's texts: rank its data (`rank --data`; in Python "
                              "`text_target=text_embedding(task)`), name a registry entry, or use ranker 'peft'.")
    return ranker


def auto_reason(ranker: str, chosen: str, selector: "AutoSourceSelector", text_target) -> str:
    """Why `auto` ran what it ran (empty for an explicit ranker)."""
    if ranker != "auto":
        return ""
    if chosen == "fusion":
        return "auto: the target's texts and the registry's TextEmb vectors are known, so both signals are fused; "
    missing = "this registry has no TextEmb vectors" if selector.text_selector is None else "the target's texts are not known"
    return f"auto: {missing}, so the PEFT embedding ranks alone; "


def text_ranking(selector: "AutoSourceSelector", text_target, *, exclude) -> "Ranking":
    return selector.text_selector.rank(text_target, similarity=TEXT_SIMILARITY, exclude=exclude)


def fuse(peft: "Ranking", text: "Ranking", top_k: int | None, weight: float = FUSION_TEXT_WEIGHT) -> "Ranking":
    """The fused ranking of the sources both rankings scored; the others are listed in `skipped`."""
    from ._ranking import DEFAULT_SIMILARITY, Ranking

    text_score = {r["task"]: r["score"] for r in text.rows}
    both = [r for r in peft.rows if r["task"] in text_score]
    fused = fuse_scores([[r["score"] for r in both], [text_score[r["task"]] for r in both]], [1.0, weight])
    order = sorted(range(len(both)), key=lambda i: -fused[i])
    rows = []
    for rank, i in enumerate(order[:top_k] if top_k else order, start=1):
        r = both[i]
        rows.append({**r, "rank": rank, "score": round(float(fused[i]), 6), "peft_score": r["score"],
                     "textemb_score": text_score[r["task"]]})
    skipped = list(peft.skipped) + [(r["source"], "no TextEmb vector in the registry for its task: not fused")
                                    for r in peft.rows if r["task"] not in text_score]
    why = WHY["fusion"].format(similarity=peft.similarity,
                               chosen=CHOSEN if peft.similarity == DEFAULT_SIMILARITY and weight == FUSION_TEXT_WEIGHT else "")
    if peft.why.startswith("cosine:"):  # the PEFT side fell back (a registry too small for pcr): say so
        why = f"{why}; PEFT side: {peft.why}"
    return Ranking(target=peft.target, rows=rows, skipped=skipped, similarity=peft.similarity, warnings=peft.warnings,
                   search=peft.search, ranker="fusion", why=why)


def as_text_only(text: "Ranking", selector: "AutoSourceSelector", peft_target: "TaskEmbedding | None",
                 top_k: int | None) -> "Ranking":
    """The TextEmb ranking, each row with its source's registry metadata (in-task metric, training rows, step of
    the PEFT entry of the same task: TextEmb vectors carry none)."""
    rows = text.rows[:top_k] if top_k else text.rows
    for row in rows:
        for i in selector._named(row["task"])[:1]:
            entry = selector.entries[i].embedding
            metric = next(iter(entry.metrics.values()), None) if entry.metrics else None
            row.update(metric=metric, train_size=entry.train_size, step=entry.step)
    text.rows, text.ranker, text.why = rows, "textemb", WHY["textemb"]
    if peft_target is not None:
        text.target = peft_target
    return text
