"""What a ranking endpoint returns (`Answer`): the message, the table and the figures' data; the download files
are written later, on demand, from `Answer.downloads` (`_downloads`).

Every `rank_*` endpoint is `guarded`: it never raises; bad input becomes a one-line message, an
unexpected exception is logged and shown as a message, and what the visitor sees is scrubbed of server paths.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..curation import flags_text
from ..embedding import TaskEmbedding
from ..errors import TaskEmbHubError
from ..ranking.selector import AutoSourceSelector, Ranking
from ._config import SpaceConfig, is_hub_id
from ._downloads import Downloads
from ._registry_state import RegistryState, _Derived, public_source
from ._uploads import scrub_obj, scrub_paths

logger = logging.getLogger("taskemb_hub.space")

TABLE_COLUMNS = ["rank", "source", "dataset", "score", "in-task metric", "train size", "step", "method", "flags"]
TABLE_TYPES = ["number", "markdown", "markdown", "number", "str", "number", "number", "str", "str"]
HEATMAP_MAX = 20  # sources in the similarity heatmap at most (the table lists all top-k)


@dataclass
class Answer:
    """What a ranking endpoint returns: a message, the table, the figures, and what its downloads are written from.

    The figures are data the page draws (`_plots`): `bar` and `map` the values of `gr.BarPlot` and
    `gr.ScatterPlot` (columns, data, datatypes, mark), `heatmap` a coloured table for `gr.Dataframe` (headers,
    data, metadata). `downloads` writes the ranking CSV, JSON and embedding zip when asked
    (`Downloads.write`); no file is written to answer.
    """

    message: str
    rows: list[list[Any]] = field(default_factory=list)
    ranking: Ranking | None = None
    bar: Any = None
    map: Any = None
    heatmap: Any = None
    downloads: Downloads | None = None

    @property
    def ok(self) -> bool:
        return self.ranking is not None


def _failure(message: str) -> Answer:
    return Answer(message=f"⚠️ {scrub_paths(message)}")


def guarded(fn):
    """Turn any exception into an `Answer` message; log the unexpected ones with their traceback. What the
    visitor sees (message, table) goes through `scrub_paths`: no server path, whatever raised it."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            answer = fn(*args, **kwargs)
            answer.message, answer.rows = scrub_paths(answer.message), scrub_obj(answer.rows)
            return answer
        except TaskEmbHubError as err:
            return _failure(str(err))
        except Exception as err:  # noqa: BLE001 - the server must keep serving whatever happens
            logger.exception("unexpected error in %s", fn.__name__)
            detail = str(err).splitlines()[0][:300] if str(err) else ""
            return _failure(f"Unexpected error ({type(err).__name__}{': ' + detail if detail else ''}). It was logged; "
                            "if it persists, report it with the input that caused it.")

    return wrapper


def _hub_url(config: SpaceConfig, path: str) -> str:
    from ..registries.hub import hub_endpoint

    return f"{hub_endpoint(config.hub_endpoint).rstrip('/')}/{path}"


def _repo_id_of(entry) -> str | None:
    """The Hub repo of an entry read from the Hub (its location), else None: local paths are never shown."""
    location = (entry.location or "").split("@")[0]
    if location and is_hub_id(location) and not Path(location).exists():
        return location
    return None


def _dataset_of(embedding: TaskEmbedding) -> tuple[str, str | None]:
    """(text, Hub dataset id or None) of the data an entry was tuned on."""
    source = str(embedding.extra.get("dataset") or embedding.extra.get("source") or "")
    if source and is_hub_id(source) and not Path(source).exists():
        return source, source
    return embedding.task, None


def _metric_text(metrics: dict) -> str:
    if not metrics:
        return ""
    name, value = next(iter(metrics.items()))
    return f"{name} {value:.3f}" if isinstance(value, (int, float)) else f"{name} {value}"


def _answer(state: RegistryState, selector: AutoSourceSelector, ranking: Ranking, config: SpaceConfig, *,
            target_label: str, note: str = "") -> Answer:
    """The table and figures (data the browser draws) of a ranking, and what its downloads are written from."""
    derived = state.derived(selector)
    rows, records = _table(derived, ranking, config)
    bar, emb_map, heatmap = _figures(state, selector, ranking, target_label)
    downloads = Downloads(ranking, records, target_label, public_source(state.source))  # written when asked
    message = (f"**{len(rows)} sources** for **{target_label}** ({ranking.target.method} on "
               f"`{ranking.target.base_model}`, ranked by {ranking.ranker}, {ranking.similarity} similarity: "
               f"{ranking.why}), best first.")
    target_hash = ranking.target.signature_hash
    group = next((g for g in derived.signatures if g["signature"] == target_hash), None)
    if group is not None:
        message += f" Signature `{target_hash}`: {group['entries']} entries of the registry share this space."
    if note:
        message += " " + note
    for warning in ranking.warnings:  # recipe mismatch, a target that learned nothing
        message += f"\n\n⚠️ {warning}"
    return Answer(message=message, rows=rows, ranking=ranking, bar=bar, map=emb_map, heatmap=heatmap,
                  downloads=downloads)


def _table(derived: _Derived, ranking: Ranking, config: SpaceConfig) -> tuple[list[list[Any]], list[dict]]:
    """The page's table rows (Markdown links to Hub repos and datasets) and the download's records."""
    rows, records = [], []
    for r in ranking.rows:
        entry = derived.by_name[r["source"]]
        repo = _repo_id_of(entry)
        dataset_text, dataset_id = _dataset_of(entry.embedding)
        repo_url = _hub_url(config, repo) if repo else None
        dataset_url = _hub_url(config, f"datasets/{dataset_id}") if dataset_id else None
        rows.append([r["rank"], f"[{r['source']}]({repo_url})" if repo_url else r["source"],
                     f"[{dataset_text}]({dataset_url})" if dataset_url else dataset_text, round(r["score"], 4),
                     _metric_text(entry.embedding.metrics), r["train_size"], r["step"], r["method"],
                     flags_text(r.get("flags"))])  # curation flags (taskemb_hub/curation.py)
        metric_name = next(iter(entry.embedding.metrics), None) if entry.embedding.metrics else None
        records.append({**r, "metric_name": metric_name, "repo_url": repo_url, "dataset": dataset_text,
                        "dataset_url": dataset_url})
    return rows, records


def _figures(state: RegistryState, selector: AutoSourceSelector, ranking: Ranking, target_label: str):
    """(bar, map, heatmap): small tables the browser draws (`_plots`). The registry's map is fitted once per
    registry version (`RegistryState.projection`); a query projects only its target. The heatmap covers the
    first `HEATMAP_MAX` sources."""
    from ._plots import bar_data, cosine_matrix, map_data, similarity_table

    names = [r["source"] for r in ranking.rows]
    bar = bar_data(names, [r["score"] for r in ranking.rows])
    projection = state.projection(selector, ranking.target.signature_hash)
    emb_map = None
    if projection is not None and projection.mean.shape[0] == ranking.target.dim:
        emb_map = map_data(projection, projection.project(ranking.target.vector), target_label, names)
    shown = names[:HEATMAP_MAX]
    heatmap = similarity_table([f"▶ {target_label}"] + shown,
                                      cosine_matrix(_unit_rows(state, selector, ranking.target, shown)))
    return bar, emb_map, heatmap


def _unit_rows(state: RegistryState, selector: AutoSourceSelector, target: TaskEmbedding, names: list[str]):
    """The target's vector and the named sources' unit rows as one numpy matrix (read from the group's matrix when
    the selector has one: no entry's vector is materialised). numpy, not torch: an op this small waits for a busy
    core when torch splits it between threads."""
    import numpy as np

    first = target.vector.detach().cpu().float().numpy().reshape(1, -1)
    rows = state.group_rows(selector, target.signature_hash)
    if rows is not None and rows[0].shape[1] == target.dim and all(n in rows[2] for n in names):
        unit, _, row_of = rows
        picked = unit.numpy()[[row_of[n] for n in names]] if names else np.zeros((0, target.dim), np.float32)
        return np.concatenate([first, picked.astype(np.float32)])
    by_name = state.derived(selector).by_name
    return np.concatenate([first] + [by_name[n].embedding.vector.float().numpy().reshape(1, -1) for n in names])
