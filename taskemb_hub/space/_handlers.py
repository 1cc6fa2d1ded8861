"""What the Space's endpoints do, as plain functions: callable from tests and scripts without a server.

Every `rank_*` function returns an `Answer` and never raises: bad input becomes a one-line
message naming the problem and the fix; an unexpected exception is logged with its traceback
and shown as a message, so the server keeps serving.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..embedding import TaskEmbedding
from ..errors import AdapterError, DataError, IncompatibleEmbeddingError, RegistryError, TaskEmbHubError
from ..ranking.rankers import wants_texts
from ..ranking.selector import DEFAULT_SIMILARITY
from ._answers import Answer, _answer, guarded
from ._config import ANY, Progress, SpaceConfig, is_hub_id
from ._ranking import _check_options, _rank
from ._registry_state import RegistryState, _allowed_base_models, _same_task, _space
from ._uploads import extract_adapter_zip, safe_stem
from ._visitor_data import _check_rows, _task_from_file, _task_from_hub

# Read as `_handlers.<name>` by tests and scripts: the Space's functions before they were split by concern.
from ._answers import HEATMAP_MAX, TABLE_COLUMNS  # noqa: F401
from ._registry_state import public_source, refresh_registry, registry_status  # noqa: F401
from ._visitor_data import dataset_info  # noqa: F401


# ---- 3. a registry task -------------------------------------------------------------------
@guarded
def rank_registry(state: RegistryState, config: SpaceConfig, entry: str, base_model: str = ANY, method: str = ANY,
                  top_k: int = 10, similarity: str = DEFAULT_SIMILARITY, ranker: str = "auto",
                  hide_flagged: bool = False) -> Answer:
    """Rank the other entries for one of the registry's own (leave-one-out: that task is left out)."""
    k = _check_options(top_k, similarity, config, ranker)
    if not entry:
        raise TaskEmbHubError("Pick a registry task.")
    selector = state.selector
    derived = state.derived(selector)
    match = derived.by_name.get(entry)
    if match is None:  # a task name? read from the entries' metadata: an index keeps its vectors on disk
        same_task = [e for e in selector.entries if e.info.task == entry]
        if not same_task:
            raise RegistryError(f"{entry!r} is not an entry of this registry. Pick one from the list "
                                f"({len(selector.entries)} entries).")
        match = same_task[0]
    emb = match.embedding
    if base_model not in (None, "", ANY) and emb.base_model != base_model:
        raise TaskEmbHubError(f"{entry!r} was tuned on {emb.base_model!r}, not on the base model filter {base_model!r}. "
                              "Set the filter to 'any' or pick another entry.")
    if method not in (None, "", ANY) and emb.method != method:
        raise TaskEmbHubError(f"{entry!r} is a {emb.method} entry, not {method}. Set the method filter to 'any'.")
    exclude = {match.name} | _same_task(selector, emb)
    text = selector.text_selector
    text_target = emb.task if text is not None and text._named(emb.task) else None  # its TextEmb vector, if packaged
    ranking = _rank(selector, emb, k, similarity, exclude, ranker, text_target, exclude_flagged=hide_flagged)
    return _answer(state, selector, ranking, config, target_label=match.name,
                   note=f"{len(exclude)} entr{'y' if len(exclude) == 1 else 'ies'} of the same task left out.")


# ---- 2. your adapter ----------------------------------------------------------------------
@guarded
def rank_adapter(state: RegistryState, config: SpaceConfig, repo_id: str | None = None, zip_path: str | None = None,
                 base_model: str = ANY, method: str = ANY, top_k: int = 10, similarity: str = DEFAULT_SIMILARITY,
                 progress: Progress | None = None, ranker: str = "auto", hide_flagged: bool = False) -> Answer:
    """Rank sources for a PEFT adapter: a Hub repo id, or an uploaded zip of an adapter folder.

    The adapter's base model must be one the registry holds, named by its id (never a path of the server);
    it is checked from the small config files, before a Hub repo's weights are downloaded.
    """
    from ._visitor_hub import check_adapter_folder, embedding_from_hub_repo

    k = _check_options(top_k, similarity, config, ranker)
    repo_id = (repo_id or "").strip()
    if bool(repo_id) == bool(zip_path):
        raise TaskEmbHubError("Give either a Hub repo id of a PEFT adapter or an uploaded adapter zip (not both).")
    selector = state.selector
    allowed = _allowed_base_models(state, selector, base_model)
    if progress:
        progress(0.1, desc="reading the adapter")
    if repo_id:
        if not is_hub_id(repo_id) or ".." in repo_id:
            raise AdapterError(f"{repo_id!r} is not a Hub repo id. Use the form 'owner/name' "
                               "(e.g. 'alice/rotten-tomatoes-bitfit').")
        from ..registries.hub import hub_endpoint

        emb = embedding_from_hub_repo(repo_id, endpoint=hub_endpoint(config.hub_endpoint), allowed=allowed,
                                      limits=config.limits)
        origin = label = repo_id
    else:
        upload = Path(zip_path)
        with tempfile.TemporaryDirectory(prefix="taskemb-adapter-") as tmp:
            folder = extract_adapter_zip(upload, tmp, config.limits)
            check_adapter_folder(folder, allowed)
            try:
                emb = TaskEmbedding.from_adapter(folder)
            except TaskEmbHubError as err:  # name the upload, not the server's temp folder
                raise type(err)(str(err).replace(str(folder), upload.name).replace(tmp, upload.name)) from None
            if emb.task == folder.name:  # the zip recorded no task name: use the folder's or the zip's
                emb.task = safe_stem(folder.name if folder != Path(tmp) else upload.name)
        origin = f"uploaded zip {upload.name}"
        label = emb.task
    emb.extra["source"] = origin  # never the server's temp folder
    if emb.base_model not in allowed:
        raise IncompatibleEmbeddingError(f"The adapter was tuned on {emb.base_model!r}; this registry's entries use "
                                         f"{' or '.join(repr(b) for b in sorted(allowed))}. Use an adapter of one of them.")
    if method not in (None, "", ANY) and emb.method != method:
        raise TaskEmbHubError(f"The adapter is a {emb.method} adapter, not {method}. Set the method filter to "
                              f"'{emb.method}' or 'any'.")
    if progress:
        progress(0.7, desc="ranking")
    # an adapter has no texts: fusion is refused
    ranking = _rank(selector, emb, k, similarity, ranker=ranker, exclude_flagged=hide_flagged)
    return _answer(state, selector, ranking, config, target_label=label)


# ---- 1. your data -------------------------------------------------------------------------
def _target_from_data():
    """The registry-recipe tuning helper (a seam: tests and benchmarks replace it to record or skip tuning)."""
    from ..tuning.targets import target_from_data

    return target_from_data


@guarded
def rank_data(state: RegistryState, config: SpaceConfig, file_path: str | None = None, dataset_id: str | None = None,
              dataset_config: str | None = None, dataset_split: str | None = None, text_column: str | None = "text",
              text_pair_column: str | None = None, label_column: str | None = "label", base_model: str = ANY,
              method: str = ANY, top_k: int = 10, similarity: str = DEFAULT_SIMILARITY,
              progress: Progress | None = None, ranker: str = "auto", hide_flagged: bool = False) -> Answer:
    """Tune the registry's recipe on the visitor's data (a file or a Hub dataset), then rank sources."""
    k = _check_options(top_k, similarity, config, ranker)
    selector = state.selector  # one registry for the whole request, even if a refresh swaps it meanwhile
    texts = wants_texts(ranker, selector)  # a ranker this registry cannot serve is refused before tuning
    dataset_id = (dataset_id or "").strip()
    if bool(file_path) == bool(dataset_id):
        raise DataError("Upload a data file or type a Hub dataset id (one of the two).")
    columns = {"text": text_column or None, "text_pair": text_pair_column or None, "label": label_column or None}
    entries = _space(state, selector, base_model, method)
    if progress:
        progress(0.0, desc="reading the data")
    note = ""
    if file_path:
        task = _task_from_file(file_path, columns, config.limits)
        source = task.source
    else:
        task, note = _task_from_hub(dataset_id, dataset_config, dataset_split, columns, config.limits)
        source = dataset_id
    _check_rows(task, config.limits, source)
    recorded = entries[0].embedding.base_model
    load_from = config.base_model_paths.get(recorded, recorded)
    if progress:
        progress(0.05, desc=f"tuning {entries[0].embedding.method} on {task.name} (the registry's recipe)")
    view = _EntriesView(entries)
    emb = _target_from_data()(task, view, progress=True, base_model=load_from)
    emb.extra["source"] = source
    text_target = None
    if texts:
        if progress:
            progress(0.9, desc="TextEmb of the texts (one forward pass)")
        from ..baselines import text_embedding

        text_target = text_embedding(task, base_model=load_from)
    if progress:
        progress(0.95, desc="ranking")
    ranking = _rank(selector, emb, k, similarity, ranker=ranker, text_target=text_target, exclude_flagged=hide_flagged)
    recipe = entries[0].embedding.extra.get("recipe") or {}
    tuned = (f"Tuned {emb.method} for {recipe.get('stop_step') or recipe.get('max_steps', '?')} steps on "
             f"{emb.train_size} rows, the recipe of the registry's entries.")
    return _answer(state, selector, ranking, config, target_label=task.name, note=" ".join(x for x in (tuned, note) if x))


@dataclass
class _EntriesView:
    """The part of a selector `target_from_data` reads (its entries), for one (base model, method) space."""

    entries: list
