"""The Space's endpoints as MCP tools (`taskemb-hub space --mcp`, the Hub Space by default).

Gradio's own MCP server (`launch(mcp_server=True)`, `pip install "gradio[mcp]"`) lists every public
endpoint of the app as a tool, named after its function, described by its docstring (the `Args:`
lines describe the parameters) and typed by its type hints. The page's endpoints answer with
plots (their files written on request by `/downloads`); an agent wants the ranking as data. So `add_tools` adds typed,
API-only endpoints (`gr.api`) that return the ranking as a JSON text, and `hide_from_mcp` keeps
the page's endpoints out of the tool list (they stay callable with `gradio_client`).

Tools: `rank_registry_task`, `rank_hub_dataset`, `rank_hub_adapter`, `list_registry`. A failure
is raised as `gr.Error` with the one-line message the page shows, which the MCP server returns
as a tool error (`isError: true`, the message as its text); the server keeps serving.
Like the page's endpoints, none uses the operator's token: Hub reads are anonymous.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from ..errors import TaskEmbHubError
from ..ranking.rankers import RANKERS
from ..ranking.selector import DEFAULT_SIMILARITY, SIMILARITIES
from ._answers import Answer, _hub_url, _repo_id_of
from ._config import ANY, SpaceConfig
from ._handlers import rank_adapter, rank_data, rank_registry
from ._registry_state import RegistryState, _hashes, public_source
from ._uploads import scrub_obj

TOOL_NAMES = ("rank_registry_task", "rank_hub_dataset", "rank_hub_adapter", "list_registry")
MAX_LISTED = 500  # entries one `list_registry` call returns (an index of the Hub holds 100k: page with offset)
MAX_SKIPPED = 20  # incompatible entries named in a result (their count is always given)

# Module-level: gradio reads the tools' type hints with typing.get_type_hints (strings under
# `from __future__ import annotations`), which resolves names in this module's globals.
Similarity = Literal[SIMILARITIES]  # type: ignore[valid-type]
Ranker = Literal[RANKERS]  # type: ignore[valid-type]

_FILTERS_DOC = """\
        base_model: rank in the space of this base model (a Hub model id the registry holds; 'any': the largest group).
        method: rank among entries of this PEFT method (e.g. 'bitfit', 'lora'; 'any': the largest group).
        top_k: how many sources to return, 1 to MAX_TOP_K.
        similarity: how embeddings are compared: cosine, centered, or pcr-1/2/3 (the registry's mean and top directions removed).
        ranker: auto (PEFT embeddings, fused with text embeddings when the target's texts are known), peft, textemb or fusion.
    Returns:
        A JSON object: message (one line, Markdown), target, method, base_model, similarity, ranker, why, registry, ranking (a list of rows, best first: rank, source, score, task, method, step, train_size, metric, metric_name, repo_url, dataset, dataset_url), warnings, skipped (first 20 incompatible entries) and skipped_count."""


def hide_from_mcp(*fns) -> None:
    """Keep the page's endpoints out of the MCP tool list (they return plots, and files on request, not data).

    Gradio lists as tools only the functions whose `_mcp_type` is unset or "tool" (the attribute its
    `gr.mcp.tool/resource/prompt` decorators set); any other value leaves the function out of the
    tools, resources and prompts while it stays a public API endpoint for `gradio_client`.
    """
    for fn in fns:
        fn._mcp_type = "page"


def _result(answer: Answer) -> str:
    """The ranking as JSON text; a failed answer becomes a tool error with the page's message."""
    import gradio as gr

    if not answer.ok:
        # title="": gradio's progress path would otherwise send "Error: <message>"
        raise gr.Error(answer.message, title="", print_exception=False)
    payload: dict[str, Any] = answer.downloads.payload()  # the JSON download's content, built without a file
    skipped = payload.get("skipped") or []
    payload.update(skipped=skipped[:MAX_SKIPPED], skipped_count=len(skipped))
    return json.dumps({"message": answer.message, **payload}, ensure_ascii=False)


def _doc(fn, config: SpaceConfig):
    """Finish a tool's docstring (what the agent reads): the shared filter lines and this Space's limits."""
    fn.__doc__ = fn.__doc__.replace("FILTERS", _FILTERS_DOC.strip()).replace("MAX_TOP_K", str(config.max_top_k))
    return fn


def add_tools(state: RegistryState, config: SpaceConfig) -> list[str]:
    """Add the MCP tools to the `gr.Blocks` being built (call inside its `with` block).

    Args:
        state: the registry the page serves (the tools read `state.selector` per call, as the page does).
        config: the Space's limits and options.

    Returns:
        The tools' names (`TOOL_NAMES`).

    Example:
        ```python
        >>> with gr.Blocks() as app:
        ...     add_tools(state, config)
        >>> app.launch(mcp_server=True)
        ```
    """
    import gradio as gr

    rank_registry_task, rank_hub_dataset, rank_hub_adapter, list_registry = _tools(state, config)
    gr.api(_doc(rank_registry_task, config), api_name="rank_registry_task", concurrency_limit=8)
    # The tuning shares the page's queue slot: one tuning at a time, whether asked by the page or an agent.
    gr.api(_doc(rank_hub_dataset, config), api_name="rank_hub_dataset", concurrency_limit=1, concurrency_id="tuning")
    gr.api(_doc(rank_hub_adapter, config), api_name="rank_hub_adapter", concurrency_limit=4)
    gr.api(list_registry, api_name="list_registry", concurrency_limit=8)
    _serve_only_the_tools(gr.context.Context.root_block)
    return list(TOOL_NAMES)


def _tools(state: RegistryState, config: SpaceConfig) -> tuple:
    """The tools' functions, bound to the Space's registry and config: their names, parameters (names, type hints,
    defaults) and docstrings are what an agent sees."""
    import gradio as gr

    k0 = config.default_top_k

    def rank_registry_task(task: str, base_model: str = ANY, method: str = ANY, top_k: int = k0,
                           similarity: Similarity = DEFAULT_SIMILARITY, ranker: Ranker = "auto") -> str:
        """Rank the sources of this registry for one of its own tasks: which other registry task is the best source
        to train on first (intermediate-task transfer) for it. The task itself, and other entries of the same task,
        are left out of the sources. Use list_registry to see the entries' names.

        Args:
            task: an entry name of this registry (as list_registry gives it), or a task name an entry records.
            FILTERS
        """
        return _result(rank_registry(state, config, task, base_model, method, top_k, similarity, ranker))

    def rank_hub_dataset(dataset_id: str, text_column: str = "text", label_column: str = "label",
                         text_pair_column: str = "", dataset_config: str = "", dataset_split: str = "train",
                         base_model: str = ANY, method: str = ANY, top_k: int = k0,
                         similarity: Similarity = DEFAULT_SIMILARITY, ranker: Ranker = "auto") -> str:
        """Rank the sources of this registry for my Hugging Face Hub dataset: tunes the registry's recipe (a small
        PEFT adapter, the same steps and row count as the registry's entries) on the dataset's rows, embeds it and
        ranks the registry's tasks as sources to train on first. Takes minutes; one tuning runs at a time (others
        wait in the queue). The dataset is read anonymously (public datasets only).

        Args:
            dataset_id: a public Hub dataset id, 'owner/name' (or a canonical 'name').
            text_column: the column holding the text (the first text of a pair).
            label_column: the column holding the label (classes or numbers).
            text_pair_column: the column holding the second text of a pair task; '' for single-text tasks.
            dataset_config: the dataset's config (subset); '' for its first.
            dataset_split: the split to tune on.
            FILTERS
        """
        return _result(rank_data(state, config, None, dataset_id, dataset_config or None, dataset_split,
                                   text_column, text_pair_column or None, label_column, base_model, method, top_k,
                                   similarity, ranker=ranker))

    def rank_hub_adapter(repo_id: str, base_model: str = ANY, method: str = ANY, top_k: int = k0,
                         similarity: Similarity = DEFAULT_SIMILARITY, ranker: Ranker = "auto") -> str:
        """Rank the sources of this registry for my PEFT adapter on the Hugging Face Hub: embeds the adapter's tuned
        weights (its base model must be one the registry holds) and ranks the registry's tasks as sources to train on
        first. The repo is read anonymously (public repos only); pickle .bin weights are refused.

        Args:
            repo_id: the Hub model repo of a PEFT adapter, 'owner/name' (adapter_config.json + adapter_model.safetensors).
            FILTERS
        """
        return _result(rank_adapter(state, config, repo_id, None, base_model, method, top_k, similarity,
                                      ranker=ranker))

    def list_registry(name_contains: str = "", base_model: str = ANY, method: str = ANY, offset: int = 0,
                      limit: int = 100) -> str:
        """List this registry: its signature groups (base model, PEFT method, dimension, entry count: only entries of
        one group are comparable) and its entries (name, task, method, base model, step, train size, signature,
        Hub repo URL), to pick a task for rank_registry_task or filters for the other tools.

        Args:
            name_contains: keep entries whose name or task contains this text (case-insensitive); '' for all.
            base_model: keep entries of this base model; 'any' for all.
            method: keep entries of this PEFT method; 'any' for all.
            offset: skip this many matching entries (to page through a large registry).
            limit: return at most this many entries, 1 to 500.
        Returns:
            A JSON object: registry, entries_total, signatures (a list), matching (count), offset, entries (a list).
        """
        try:
            return json.dumps(_listing(state, config, name_contains, base_model, method, offset, limit),
                              ensure_ascii=False)
        except TaskEmbHubError as err:
            raise gr.Error(f"⚠️ {err}", title="", print_exception=False) from None

    return rank_registry_task, rank_hub_dataset, rank_hub_adapter, list_registry


def _serve_only_the_tools(blocks) -> None:
    """After launch, the MCP server resolves only `TOOL_NAMES`: gradio keeps every named endpoint callable by name
    over MCP (`tool_to_endpoint`) even when left out of the tool list, and the page's `rank_data` takes a file URL
    gradio would fetch. The page's endpoints stay API endpoints for `gradio_client`."""
    if blocks is None or getattr(blocks, "_taskemb_tools_only", False):
        return
    launch = blocks.launch

    def launch_serving_only_the_tools(*args, **kwargs):
        import warnings

        with warnings.catch_warnings():
            # gradio warns of a State input among the endpoints it maps before the filter below: that is the page's
            # `/downloads` (the session's last answer), which the filter leaves out of MCP
            warnings.filterwarnings("ignore", message="This MCP server includes a tool that has a gr.State input")
            result = launch(*args, **kwargs)
        server = getattr(blocks, "mcp_server_obj", None)
        if server is not None:
            prefix = getattr(server, "tool_prefix", "")
            server.tool_to_endpoint = {name: endpoint for name, endpoint in server.tool_to_endpoint.items()
                                       if name.removeprefix(prefix) in TOOL_NAMES}
        return result

    blocks.launch = launch_serving_only_the_tools
    blocks._taskemb_tools_only = True


def _listing(state: RegistryState, config: SpaceConfig, name_contains: str, base_model: str, method: str,
             offset: int, limit: int) -> dict[str, Any]:
    """What `list_registry` returns (metadata only: an index's vectors are not loaded)."""
    if not 1 <= int(limit) <= MAX_LISTED:
        raise TaskEmbHubError(f"limit must be between 1 and {MAX_LISTED}, not {limit}. Page with offset.")
    if int(offset) < 0:
        raise TaskEmbHubError(f"offset must be 0 or more, not {offset}.")
    selector = state.selector  # one registry for the whole call, even if a refresh swaps it meanwhile
    derived = state.derived(selector)
    signatures = [{k: g[k] for k in ("signature", "entries", "method", "base_model", "dim")} for g in derived.signatures]
    wanted = (name_contains or "").strip().lower()
    keep = {g["signature"] for g in derived.signatures
            if base_model in (None, "", ANY, g["base_model"]) and method in (None, "", ANY, g["method"])}
    matching = []
    for entry, signature in zip(selector.entries, _hashes(selector)):
        if signature not in keep:
            continue
        info = entry.info
        if wanted and wanted not in entry.name.lower() and wanted not in str(info.task).lower():
            continue
        matching.append((entry, info, signature))
    rows = []
    for entry, info, signature in matching[int(offset):int(offset) + int(limit)]:
        repo = _repo_id_of(entry)
        rows.append({"name": entry.name, "task": info.task, "method": info.method, "base_model": info.base_model,
                     "step": info.step, "train_size": info.train_size, "signature": signature,
                     "repo_url": _hub_url(config, repo) if repo else None})
    return {"registry": public_source(state.source), "entries_total": len(selector.entries),
            "signatures": signatures, "matching": len(matching), "offset": int(offset),
            "entries": scrub_obj(rows)}
