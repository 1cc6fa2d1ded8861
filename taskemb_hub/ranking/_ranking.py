"""What a ranking is (`Ranking`) and which similarities rank: a leaf module the selector and the rankers both
import (re-exported from `taskemb_hub.ranking.selector`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..embedding import TaskEmbedding
from ..errors import TaskEmbHubError

SIMILARITIES = ("cosine", "centered", "pcr-1", "pcr-2", "pcr-3")


# Chosen leave-one-target-out on both ground-truth regimes among the registry-only similarities
# (benchmarks/target_dependence.py; README "Does the answer depend on the target?"): the plain cosine ranked
# nearly one target-blind order (the sentiment tasks first) for most targets.
DEFAULT_SIMILARITY = "pcr-1"


PCR_MIN_ENTRIES = 8  # below this many compatible entries, pcr-k ranks by cosine (and Ranking.why says so)


SIMILARITY_NOTES = {
    "cosine": "plain cosine of the task embeddings",
    "centered": "cosine after subtracting the compatible entries' mean",
    "pcr-1": "cosine after removing the compatible entries' mean and top principal direction (default: chosen "
             "leave-one-target-out; the plain cosine gave nearly one order whatever the target)",
    "pcr-2": "cosine after removing the compatible entries' mean and top 2 principal directions",
    "pcr-3": "cosine after removing the compatible entries' mean and top 3 principal directions",
}


@dataclass
class Ranking:
    """Sources best first, with scores, the entries that were left out and why, and warnings about
    the comparison (a target tuned with another recipe than the sources', one that barely learned)."""

    target: TaskEmbedding
    rows: list[dict[str, Any]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    similarity: str = DEFAULT_SIMILARITY
    warnings: list[str] = field(default_factory=list)
    search: str = "exact"  # how the candidates were found: exact, projection or ann (taskemb_hub/_ann.py)
    ranker: str = "peft"  # which signal ranked: peft (the task embedding), textemb, or fusion (taskemb_hub.ranking.rankers)
    why: str = ""  # what the similarity / ranker is and why it was used

    def __post_init__(self):
        if not self.why:
            self.why = SIMILARITY_NOTES.get(self.similarity, "")

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    @property
    def names(self) -> list[str]:
        return [r["source"] for r in self.rows]

    def to_pandas(self):
        import pandas as pd

        columns = ["rank", "source", "task", "score", "method", "step", "train_size", "metric"]
        # a fusion's parts, and the curation flags (taskemb_hub/curation.py)
        extra = [c for c in ("peft_score", "textemb_score", "flags") if self.rows and c in self.rows[0]]
        return pd.DataFrame(self.rows, columns=columns + extra)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target.task, "method": self.target.method, "base_model": self.target.base_model,
                "similarity": self.similarity, "ranker": self.ranker, "why": self.why, "ranking": self.rows,
                "skipped": [{"source": n, "reason": r} for n, r in self.skipped], "warnings": list(self.warnings),
                "search": self.search}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        signal = f"{self.target.method}, {self.similarity} similarity" if self.ranker == "peft" else self.ranker
        header = f"Sources for {self.target.task!r} ({signal}), best first:"
        lines = [header] + ([f"  ({self.why})"] if self.why else []) + [f"{'rank':>4}  {'score':>7}  {'source':<40} {'metric':>8}"]
        for r in self.rows:
            metric = "" if r["metric"] is None else f"{r['metric']:.3f}"
            lines.append(f"{r['rank']:>4}  {r['score']:>7.4f}  {r['source']:<40} {metric:>8}")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} incompatible or unreadable entries:")
            lines += [f"  - {n}: {reason}" for n, reason in self.skipped]
        flagged = [r for r in self.rows if r.get("flags")]  # taskemb_hub.curation
        if flagged:
            from ..curation import flags_text

            lines.append(f"Flagged {len(flagged)} of these sources (exclude_flagged=True / --exclude-flagged leaves "
                         "them out):")
            lines += [f"  - {r['source']}: {flags_text(r['flags'])}" for r in flagged]
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        raise TaskEmbHubError(f"Unknown similarity {similarity!r}. Use one of: {', '.join(SIMILARITIES)}.")

