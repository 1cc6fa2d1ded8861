"""The Space's page and API: three ways to ask (your data, your adapter, a registry task), one answer.

Endpoints (each usable from `gradio_client`, see the README):

- `/rank_data`: a data file or a Hub dataset -> tune the registry's recipe -> ranked sources;
  one tuning at a time (`concurrency_limit=1`: others wait in the queue and see their position).
- `/rank_adapter`: a Hub repo id of a PEFT adapter, or an uploaded adapter zip -> ranked sources.
- `/rank_registry`: a registry entry -> the other entries ranked (leave-one-out).
- `/registry_status`, `/refresh_registry`: what the registry holds; rebuild it in the background.
- `/downloads`: the files of this session's last answer (ranking CSV, ranking JSON, embedding zip), written now.

With `mcp=True` (`taskemb-hub space --mcp`, the Hub Space), the app is also an MCP server whose tools
(`_mcp.TOOL_NAMES`: rank for a registry task, a Hub dataset, a Hub adapter; list the registry) return
the ranking as JSON; the page's endpoints above stay out of the tool list.

Each `rank_*` endpoint returns (message, table, bar chart, map, heatmap). The figures are data drawn in
the browser by Gradio's native plots: the bar chart and the map as `gr.BarPlot` / `gr.ScatterPlot` values
(`{"columns", "data", "datatypes", "mark"}` through `gradio_client`), the heatmap as a coloured `gr.Dataframe`
(`{"headers", "data", "metadata"}`); no image is rendered on the server. No file is written to answer: the
answer's `Downloads` stays in the session (`gr.State`, left out of the API's values), and the page's
*Prepare downloads* button or `/downloads` (`gradio_client`: the same `Client` right after its lookup) writes
the ranking CSV, JSON and embedding zip from it (`_downloads`).
"""

from __future__ import annotations

import os
from collections import Counter
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ..errors import TaskEmbHubError  # noqa: E402
from ..ranking.rankers import RANKERS  # noqa: E402
from ..registries import open_registry  # noqa: E402
from ..ranking.selector import DEFAULT_SIMILARITY, SIMILARITIES, AutoSourceSelector  # noqa: E402
from ._answers import HEATMAP_MAX, TABLE_COLUMNS, TABLE_TYPES, Answer  # noqa: E402
from ._config import ANY, SpaceConfig  # noqa: E402
from ._downloads import Downloads  # noqa: E402
# aliased: the page's endpoint functions below take these names (the API's endpoint names)
from ._handlers import rank_adapter as adapter_answer, rank_data as data_answer  # noqa: E402
from ._handlers import rank_registry as registry_answer  # noqa: E402
from ._plots import KINDS, MAP_POINTS  # noqa: E402
from ._registry_state import RegistryState, filter_choices  # noqa: E402
from ._registry_state import refresh_registry as start_refresh, registry_status as status_of  # noqa: E402
from ._uploads import DATA_SUFFIXES, _mb  # noqa: E402
from ._visitor_data import data_columns, dataset_info, guess_columns  # noqa: E402

TITLE = "taskemb-hub: which source task should I train on first?"
HEATMAP_LABEL = f"Cosine: the target and its top sources (the first {HEATMAP_MAX} at most)"
MAP_TITLE = (f"Task embeddings of the registry: PCA of unit vectors ({MAP_POINTS:,} entries at most, a fixed "
             "sample; the top sources and the target always); hover a point for its name")
MAX_LISTED = 2000  # registry entries offered in the page's dropdown


def _recipe_text(state: RegistryState) -> str:
    """The recipe of the registry's largest signature group, in words (read from its first entries)."""
    selector = state.selector
    groups = state.derived(selector).signatures
    if not groups:
        return "the registry's recipe"
    recipes = Counter()
    for i in groups[0]["members"][:200]:
        embedding = selector.entries[i].embedding
        recipe = embedding.extra.get("recipe") or {}
        recipes[embedding.method, recipe.get("stop_step") or recipe.get("max_steps"), recipe.get("max_train_examples")] += 1
    method, steps, rows = recipes.most_common(1)[0][0]
    rows_text = f"{rows:,} rows" if rows else "all rows"
    return f"{method}, {steps or '?'} steps, {rows_text}"


def registry_loader(registry: str, endpoint: str | None = None):
    """A function that builds the selector of `registry` (what `--registry` takes) without any token.

    The Space's registry is rebuilt when a visitor asks (Refresh), so it reads the Hub anonymously, at start-up
    too: the operator's `HF_TOKEN` or login is never used for anything a visitor can trigger.
    """

    def load() -> AutoSourceSelector:
        return AutoSourceSelector.from_registry(open_registry(registry, endpoint=endpoint, token=False))

    return load


def build_app(selector: AutoSourceSelector | None = None, *, registry: str = "default",
              config: SpaceConfig | None = None, state: RegistryState | None = None, mcp: bool = False):
    """Build the Space's `gr.Blocks` (queued; call `.launch()`).

    Args:
        selector: serve this selector (its registry cannot be refreshed); else `registry` is loaded.
        registry: what `taskemb-hub --registry` takes: `default`, a folder, `hub`, `hub:<tag>`,
            `index:<repo>` (opened with `registries.open_registry`; refreshable).
        config: limits and options (`SpaceConfig`).
        state: an existing `RegistryState` (to share one registry between apps or tests).
        mcp: add the MCP tools (`_mcp.add_tools`); serve them with `.launch(mcp_server=True)`.

    Example:
        ```python
        >>> from taskemb_hub.space import build_app
        >>> build_app(registry="default").launch(server_name="127.0.0.1")
        ```
    """
    import gradio as gr

    config = config or SpaceConfig()
    if state is None:
        load = None if selector is not None else registry_loader(registry, config.hub_endpoint)
        state = RegistryState(load, "in-memory selector" if selector is not None else registry, selector=selector)
    if config.refresh_every_s and state._load is not None:
        state.refresh_every(config.refresh_every_s)
    import threading

    # the largest group's matrix, caches and map, built while the page loads: the first query answers at once
    threading.Thread(target=state.warm, name="registry-warm", daemon=True).start()
    bases, methods, names = filter_choices(state)
    recipe = _recipe_text(state)
    ui = SimpleNamespace()  # the page's components, by name, as the builders below add them

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"# Which source task should I train on first?\n"
            "Ranks the source tasks of a registry by the similarity of their tuned PEFT weights (*task "
            "embeddings*, Zhou, Xu & McAuley, EMNLP 2022) to your task's. Bring **your data** (we tune the "
            "registry's recipe on it), **your adapter**, or pick **a registry task**.")
        _filters_row(gr, ui, state, config, bases, methods)
        with gr.Tabs():
            _data_tab(gr, ui, config.limits, recipe)
            _adapter_tab(gr, ui)
            _registry_tab(gr, ui, names)
            _status_tab(gr, ui)
        _answer_area(gr, ui, config)
        endpoints = _wire_endpoints(gr, ui, state, config) + (_wire_downloads(gr, ui, config),)
        if mcp:
            from ._mcp import add_tools, hide_from_mcp

            add_tools(state, config)
            hide_from_mcp(*endpoints)
        _wire_page_helpers(gr, app, ui, state, config, registry_status=endpoints[3])
    app.queue(default_concurrency_limit=4, max_size=64)
    app.space_state = state  # for scripts and tests: the registry the app serves
    app.space_config = config
    return app


def _filters_row(gr, ui, state: RegistryState, config: SpaceConfig, bases: list[str], methods: list[str]) -> None:
    """The filters every way to ask shares: base model, method, top k, similarity, ranker, flagged sources."""
    with gr.Row():
        ui.base_model = gr.Dropdown(bases, value=ANY, label="base model", allow_custom_value=True,
                                    info="the embedding space to rank in")
        ui.method = gr.Dropdown(methods, value=ANY, label="method", allow_custom_value=True)
        ui.top_k = gr.Slider(1, config.max_top_k, value=config.default_top_k, step=1, label="top k")
        ui.similarity = gr.Radio(list(SIMILARITIES), value=state.selector.similarity, label="similarity",
                                 info="of the PEFT embeddings (pcr-1: the registry's mean and top direction removed)")
        ui.ranker = gr.Radio(list(RANKERS), value="auto", label="ranker",
                             info="auto: PEFT + TextEmb fused when your texts are known, else PEFT alone")
        ui.hide_flagged = gr.Checkbox(False, label="hide flagged sources",
                                      info="near-duplicates, fewer rows than the recipe, a test split, barely learned")


def _data_tab(gr, ui, limits, recipe: str) -> None:
    """Your data: a file or a Hub dataset id, its columns, and the button that tunes and ranks."""
    with gr.Tab("Your data", id="data"):
        gr.Markdown(
            f"Your data is tuned with **the same recipe as the registry** ({recipe}), so its embedding "
            f"is comparable with the registry's. Limits: {_mb(limits.max_file_bytes)} per "
            f"file, {limits.min_rows}–{limits.max_rows:,} rows. One tuning runs at a time; others wait "
            "in a queue and see their position.")
        with gr.Row():
            with gr.Column():
                ui.data_file = gr.File(None, label=f"data file ({', '.join(DATA_SUFFIXES)})",
                                       file_types=list(DATA_SUFFIXES), type="filepath", elem_id="data-file")
            with gr.Column():
                ui.dataset_id = gr.Textbox("", label="…or a Hub dataset id", placeholder="owner/name")
                with gr.Row():
                    ui.dataset_config = gr.Dropdown([""], value="", label="config (optional)", allow_custom_value=True)
                    ui.dataset_split = gr.Dropdown(["train"], value="train", label="split", allow_custom_value=True)
                ui.inspect = gr.Button("Read the dataset's configs, splits and columns", size="sm")
        with gr.Row():
            ui.text_column = gr.Dropdown(["text"], value="text", label="text column", allow_custom_value=True)
            ui.pair_column = gr.Dropdown([""], value="", label="second text column (pairs, optional)",
                                         allow_custom_value=True)
            ui.label_column = gr.Dropdown(["label"], value="label", label="label column", allow_custom_value=True)
        ui.data_button = gr.Button("Tune and rank", variant="primary", elem_id="rank-data")


def _adapter_tab(gr, ui) -> None:
    """Your adapter: a Hub repo id or an uploaded adapter folder as a zip."""
    with gr.Tab("Your adapter", id="adapter"):
        gr.Markdown("A PEFT adapter of the registry's base model: a Hub repo id, or a zip of the adapter folder "
                    "(`adapter_config.json` + `adapter_model.safetensors`; pickle `.bin` files are refused).")
        with gr.Row():
            ui.repo_id = gr.Textbox("", label="Hub repo id", placeholder="owner/my-adapter")
            ui.adapter_zip = gr.File(None, label="…or an adapter folder as .zip", file_types=[".zip"],
                                     type="filepath")
        ui.adapter_button = gr.Button("Rank", variant="primary", elem_id="rank-adapter")


def _registry_tab(gr, ui, names: list[str]) -> None:
    """A registry task, ranked against the others (leave-one-out)."""
    with gr.Tab("Registry task", id="registry"):
        # A large registry (an index of the Hub) lists its first entries; any other name can be typed.
        ui.entry = gr.Dropdown(names[:MAX_LISTED], value=names[0] if names else None, allow_custom_value=True,
                               label="registry task (left out of the sources)" + (
                                   f"; {len(names):,} entries, the first {MAX_LISTED:,} listed, type any name"
                                   if len(names) > MAX_LISTED else ""))
        ui.registry_button = gr.Button("Rank", variant="primary", elem_id="rank-registry")


def _status_tab(gr, ui) -> None:
    """What the registry holds, and the button that rebuilds it in the background."""
    with gr.Tab("Registry status", id="status"):
        ui.status = gr.Markdown()
        ui.signatures = gr.Dataframe(headers=["signature", "entries", "method", "base model", "dim"],
                                     label="signature groups", interactive=False)
        with gr.Row():
            ui.status_button = gr.Button("Update status")
            ui.refresh_button = gr.Button("Refresh the registry (in the background)")


def _answer_area(gr, ui, config: SpaceConfig) -> None:
    """The answer of every way to ask: message, table, figures (`ui.answer_outputs`, in `_outputs` order, the last
    one the session's `Downloads`), and the downloads, written when asked (`ui.downloads_button`, `ui.files`)."""
    ui.message = gr.Markdown(elem_id="message")
    table = gr.Dataframe(headers=TABLE_COLUMNS, datatype=TABLE_TYPES, label="sources, best first",
                         interactive=False, elem_id="ranking", wrap=True)
    # Drawn in the browser from each answer's data (Gradio's native plots; bars in rank order).
    with gr.Row():
        bar = gr.BarPlot(x="source", y="score", title="Best sources (score: the ranking's similarity)",
                         tooltip=["name", "score"], x_label_angle=-40, label="top sources", show_label=False,
                         elem_id="bar", height=360)
        heatmap = gr.Dataframe(label=HEATMAP_LABEL, interactive=False, elem_id="heatmap", max_height=420)
    emb_map = gr.ScatterPlot(x="x", y="y", color="kind", color_map=KINDS, tooltip=["name", "kind"],
                             title=MAP_TITLE, x_title="PC 1", y_title="PC 2", label="map of the registry",
                             show_label=False, elem_id="map", height=420)
    # The last answer's Downloads, per session (gradio_client's too); dropped with the files' age.
    ui.answer_state = gr.State(None, time_to_live=config.keep_files_s)
    ui.downloads_button = gr.Button("Prepare downloads: the ranking (CSV, JSON) and the target's embedding",
                                    size="sm", elem_id="prepare-downloads")
    with gr.Row():
        ui.files = [gr.File(label="ranking (CSV)"), gr.File(label="ranking (JSON)"),
                    gr.File(label="your target's embedding (zip: taskemb.safetensors + taskemb.json; "
                            "publish it with `taskemb-hub publish`)")]
    ui.answer_outputs = [ui.message, table, bar, emb_map, heatmap, ui.answer_state]


def _outputs(answer: Answer):
    """An `Answer` as the values of `ui.answer_outputs`: what is shown, and the `Downloads` the session keeps (None
    for a refusal, so `/downloads` never serves the files of an earlier question)."""
    import pandas as pd

    table = pd.DataFrame(answer.rows, columns=TABLE_COLUMNS)
    return answer.message, table, answer.bar, answer.map, answer.heatmap, answer.downloads


def _wire_downloads(gr, ui, config: SpaceConfig):
    """`/downloads`: the files of the session's last answer, written on request (the function is returned). Asking
    again on the page empties its file boxes and the session's answer at once, so neither shows or writes the
    files of an earlier answer while the new one is on its way (an API client gets its last completed answer's)."""
    import logging

    def downloads(answer: Downloads | None = None):
        if answer is None:
            raise gr.Error("⚠️ No ranking to download: this session has no answer (none asked yet, or the last "
                           "question was refused). Ask one, then prepare its downloads.", title="",
                           print_exception=False)
        try:
            return answer.write(config)
        except Exception as err:  # noqa: BLE001 - one line for the visitor, the traceback in the log
            logging.getLogger("taskemb_hub.space").exception("unexpected error in downloads")
            raise gr.Error(f"⚠️ The downloads could not be written ({type(err).__name__}). It was logged; try "
                           "again.", title="", print_exception=False) from None

    ui.downloads_button.click(downloads, ui.answer_state, ui.files, api_name="downloads", concurrency_limit=8)
    return downloads


def _asked(ui, button):
    """`button`'s click, chained: first (unqueued) the page forgets the previous answer's files and saved answer,
    then (`.then`, returned) the question runs. At the click rather than when the answer comes, and in that order:
    while a new question waits or tunes, or when gradio refuses it before it runs, Prepare downloads must not write
    the previous answer's files under it (two listeners of one click would race, and the answer could be erased).
    Should the clearing itself fail (a proxy error), gradio's page runs no `.then`: the visitor sees the error and
    clicks again."""
    return button.click(lambda: (None, None, None, None), None, [*ui.files, ui.answer_state], queue=False,
                        api_visibility="private").then


def _wire_endpoints(gr, ui, state: RegistryState, config: SpaceConfig) -> tuple:
    """The API: `/rank_data`, `/rank_adapter`, `/rank_registry`, `/registry_status`, `/refresh_registry` (the
    functions, in that order, are returned)."""
    # Parameter names are the API's (gradio_client keyword arguments): keep them descriptive.
    # Defaults of None make gradio_client list a parameter as optional: a dataset-id call needs no data_file.
    def rank_data(data_file=None, dataset_id="", dataset_config=None, dataset_split="train", text_column="text",
                  text_pair_column=None, label_column="label", base_model=ANY, method=ANY,
                  top_k=config.default_top_k, similarity=DEFAULT_SIMILARITY, ranker="auto", hide_flagged=False,
                  progress=gr.Progress(track_tqdm=True)):
        return _outputs(data_answer(state, config, data_file, dataset_id, dataset_config, dataset_split,
                                    text_column, text_pair_column, label_column, base_model, method, top_k,
                                    similarity, progress=progress, ranker=ranker, hide_flagged=hide_flagged))

    def rank_adapter(repo_id="", adapter_zip=None, base_model=ANY, method=ANY, top_k=config.default_top_k,
                     similarity=DEFAULT_SIMILARITY, ranker="auto", hide_flagged=False, progress=gr.Progress()):
        return _outputs(adapter_answer(state, config, repo_id, adapter_zip, base_model, method, top_k, similarity,
                                       progress=progress, ranker=ranker, hide_flagged=hide_flagged))

    def rank_registry(entry=None, base_model=ANY, method=ANY, top_k=config.default_top_k,
                      similarity=DEFAULT_SIMILARITY, ranker="auto", hide_flagged=False):
        return _outputs(registry_answer(state, config, entry, base_model, method, top_k, similarity, ranker,
                                        hide_flagged))

    def registry_status():
        import pandas as pd

        text, rows = status_of(state)
        return text, pd.DataFrame(rows, columns=["signature", "entries", "method", "base model", "dim"])

    def refresh_registry():
        try:
            return start_refresh(state)
        except TaskEmbHubError as err:
            return f"⚠️ {err}"

    filters = [ui.base_model, ui.method, ui.top_k, ui.similarity, ui.ranker, ui.hide_flagged]
    _asked(ui, ui.data_button)(rank_data, [ui.data_file, ui.dataset_id, ui.dataset_config, ui.dataset_split,
                                           ui.text_column, ui.pair_column, ui.label_column, *filters],
                               ui.answer_outputs, api_name="rank_data", concurrency_limit=1, concurrency_id="tuning")
    _asked(ui, ui.adapter_button)(rank_adapter, [ui.repo_id, ui.adapter_zip, *filters], ui.answer_outputs,
                                  api_name="rank_adapter", concurrency_limit=4)
    _asked(ui, ui.registry_button)(rank_registry, [ui.entry, *filters], ui.answer_outputs,
                                   api_name="rank_registry", concurrency_limit=8)
    ui.status_button.click(registry_status, None, [ui.status, ui.signatures], api_name="registry_status")
    ui.refresh_button.click(refresh_registry, None, ui.status, api_name="refresh_registry")
    return rank_data, rank_adapter, rank_registry, registry_status, refresh_registry


def _wire_page_helpers(gr, app, ui, state: RegistryState, config: SpaceConfig, *, registry_status) -> None:
    """What the page does between answers (not part of the API): fill the column pickers from a file or a Hub
    dataset, narrow the choices to the filters, show the status on load."""
    private = {"api_visibility": "private"}

    def on_file(file):
        if not file:
            return gr.update(), gr.update(), gr.update(), ""
        try:
            columns = data_columns(file, config)
        except TaskEmbHubError as err:
            return gr.update(), gr.update(), gr.update(), f"⚠️ {err}"
        text, label = guess_columns(columns)
        return (gr.update(choices=columns, value=text), gr.update(choices=[""] + columns, value=""),
                gr.update(choices=columns, value=label),
                f"Columns of the file: {', '.join(f'`{c}`' for c in columns)}. Check the pickers, then "
                "**Tune and rank**.")

    ui.data_file.change(on_file, ui.data_file, [ui.text_column, ui.pair_column, ui.label_column, ui.message],
                        **private)

    def on_dataset(ds_id, ds_config):
        try:
            info = dataset_info(ds_id, ds_config or None)
        except TaskEmbHubError as err:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), f"⚠️ {err}"
        columns = info["columns"]
        text, label = guess_columns(columns)
        return (gr.update(choices=info["configs"], value=ds_config or (info["configs"] or [None])[0]),
                gr.update(choices=info["splits"], value="train" if "train" in info["splits"] else
                          (info["splits"] or [None])[0]),
                gr.update(choices=columns, value=text), gr.update(choices=[""] + columns, value=""),
                gr.update(choices=columns, value=label), f"Dataset `{ds_id}`: columns {columns}.")

    ui.inspect.click(on_dataset, [ui.dataset_id, ui.dataset_config],
                     [ui.dataset_config, ui.dataset_split, ui.text_column, ui.pair_column, ui.label_column,
                      ui.message], **private)

    def update_choices(base, meth):
        bases_now, methods_now, _ = filter_choices(state)
        selector = state.selector
        names_now = [selector.entries[i].name for g in state.derived(selector).signatures
                     if base in (None, "", ANY, g["base_model"]) and meth in (None, "", ANY, g["method"])
                     for i in g["members"]]
        return (gr.update(choices=bases_now), gr.update(choices=methods_now),
                gr.update(choices=names_now[:MAX_LISTED]))

    choices = [ui.base_model, ui.method, ui.entry]
    for trigger in (ui.base_model.change, ui.method.change):
        trigger(update_choices, [ui.base_model, ui.method], choices, **private)
    ui.status_button.click(update_choices, [ui.base_model, ui.method], choices, **private)
    app.load(registry_status, None, [ui.status, ui.signatures], **private)


def launch(registry: str = "default", *, host: str = "127.0.0.1", port: int | None = None,
           config: SpaceConfig | None = None, selector: AutoSourceSelector | None = None, mcp: bool = False,
           **launch_kwargs):
    """Build and serve the Space (blocking unless `prevent_thread_lock=True`).

    The upload limit of the server itself is twice the Space's file limit: files in between get
    the Space's own message; larger ones are cut off by the server before they are stored.
    What the first tuning would wait for (peft's import, the base model's files) is done in a background
    thread as the server starts (`_warmup`).
    With `mcp=True` the app is also an MCP server (streamable HTTP at `/gradio_api/mcp/`).
    """
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "urllib3"):  # one line per HTTP request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = config or SpaceConfig()
    if mcp:
        _check_mcp()
    app = build_app(selector, registry=registry, config=config, mcp=mcp)
    from ._warmup import start_warmup

    start_warmup(app.space_state, config)  # tuning's imports and model files, while the server starts
    launch_kwargs.setdefault("max_file_size", 2 * config.limits.max_file_bytes)
    # mcp_server given either way: gradio would otherwise read GRADIO_MCP_SERVER and list the page's endpoints
    app.launch(server_name=host, server_port=port, mcp_server=mcp, **launch_kwargs)
    return app


def _check_mcp() -> None:
    """Refuse `mcp=True` in one line when the `mcp` package is missing (gradio would print its error and serve no MCP)."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise TaskEmbHubError('The MCP server needs the mcp package: pip install "taskemb-hub[space]" '
                                '(it brings gradio[mcp]).') from None
