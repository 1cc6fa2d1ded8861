"""The Space as an MCP server: the `mcp` client SDK against the app served on 127.0.0.1 with `mcp=True`.

The registry is test_space's three toy tasks (tiny BERT); the tools are listed with their typed input
schemas and descriptions, each is called and returns the ranking as JSON, bad input is a tool error
(`isError`) whose text is the page's one-line message, and the server keeps serving after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import sys
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("gradio", reason="the Space needs the [space] extra")
pytest.importorskip("mcp", reason="the MCP server needs the [space] extra (gradio[mcp])")

import torch  # noqa: E402
from mcp import ClientSession  # noqa: E402
from mcp.client import streamable_http  # noqa: E402

from taskemb_hub.ranking.selector import AutoSourceSelector  # noqa: E402
from taskemb_hub.space import _handlers as handlers  # noqa: E402
from taskemb_hub.space import build_app  # noqa: E402
from taskemb_hub.space._mcp import TOOL_NAMES  # noqa: E402
from test_space import _config, _free_port, hub, toy  # noqa: E402,F401 - fixtures shared with the page's tests

# mcp >= 1.24 names it streamable_http_client; older 1.x releases only have streamablehttp_client
_transport = getattr(streamable_http, "streamable_http_client", None) or streamable_http.streamablehttp_client


@pytest.fixture(scope="module")
def served(toy, hub):  # noqa: F811
    state = handlers.RegistryState(lambda: AutoSourceSelector.from_local(toy["registry"]), str(toy["registry"].name))
    config = _config(toy, hub_endpoint=hub.endpoint)
    app = build_app(config=config, state=state, mcp=True)
    port = _free_port()
    with warnings.catch_warnings(record=True) as launch_warnings:
        warnings.simplefilter("always")
        app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, mcp_server=True)
    yield {"url": f"http://127.0.0.1:{port}/gradio_api/mcp/", "app": app, "state": state, "config": config,
           "page": f"http://127.0.0.1:{port}/", "launch_warnings": [str(w.message) for w in launch_warnings]}
    app.close()


def _session(url: str, work):
    """Run `await work(session)` in one MCP session (streamable HTTP, as Gradio serves it)."""

    async def run():
        async with _transport(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)

    return asyncio.run(run())


def _call(url: str, tool: str, arguments: dict, progress: bool = False):
    seen = []

    async def record(step, total, message):
        seen.append(message)

    async def work(session):
        return await session.call_tool(tool, arguments, progress_callback=record if progress else None)

    result = _session(url, work)
    return (result, seen) if progress else result


def _payload(result) -> dict:
    assert not result.isError, result.content
    assert [c.type for c in result.content] == ["text"]  # data, no images
    return json.loads(result.content[0].text)


def _page_message(served, **kwargs) -> str:
    """The message the page's `rank_registry` shows for the same input."""
    args = {"base_model": "any", "method": "any", "top_k": 3, "similarity": "cosine", **kwargs}
    return handlers.rank_registry(served["state"], served["config"], **args).message


# ---- the tool list ------------------------------------------------------------------------------------
def test_tools_are_listed_with_typed_parameters_and_descriptions(served):
    tools = {t.name: t for t in _session(served["url"], lambda s: s.list_tools()).tools}
    assert set(tools) == set(TOOL_NAMES)  # the page's endpoints (plots, files) are not tools
    task = tools["rank_registry_task"]
    assert task.description.startswith("Rank the sources of this registry for one of its own tasks")
    assert "ranking (a list of rows, best first: rank, source, score" in task.description
    schema = task.inputSchema
    assert schema["required"] == ["task"] and schema["properties"]["task"]["type"] == "string"
    assert schema["properties"]["top_k"]["type"] == "integer" and schema["properties"]["top_k"]["default"] == 10
    assert "cosine" in schema["properties"]["similarity"]["enum"] and "pcr-1" in schema["properties"]["similarity"]["enum"]
    assert schema["properties"]["top_k"]["description"] == "how many sources to return, 1 to 50."
    for tool in tools.values():  # every parameter described for the agent
        assert tool.description and all(p.get("description") for p in tool.inputSchema["properties"].values()), tool
    assert tools["rank_hub_dataset"].inputSchema["required"] == ["dataset_id"]
    assert tools["rank_hub_adapter"].inputSchema["required"] == ["repo_id"]
    assert "my Hugging Face Hub dataset" in tools["rank_hub_dataset"].description
    # ...and the page's endpoints stay public for gradio_client
    from gradio_client import Client

    named = Client(served["page"], verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/rank_data", "/rank_adapter", "/rank_registry", "/registry_status", "/downloads"} <= set(named)
    # /downloads (a gr.State input: the session's last answer) is no tool, so gradio's warning about one is not shown
    assert not [w for w in served["launch_warnings"] if "gr.State" in w], served["launch_warnings"]


# ---- each tool returns the ranking --------------------------------------------------------------------
def test_registry_task_ranking_puts_the_nearest_source_first(served, toy):
    payload = _payload(_call(served["url"], "rank_registry_task", {"task": "toy-pair", "top_k": 2,
                                                                     "similarity": "cosine"}))
    rows = payload["ranking"]
    assert [r["rank"] for r in rows] == [1, 2] and {r["source"] for r in rows} == {"toy-sentiment", "toy-city"}
    assert not (toy["root"] / "answers").exists()  # SpaceConfig.work_dir: a tool's JSON is built without a file
    # the nearest entry by a cosine computed here, independently of the ranking code
    entries = {e.name: e.embedding.vector.float() for e in AutoSourceSelector.from_local(toy["registry"]).entries}
    cosine = {n: torch.nn.functional.cosine_similarity(entries["toy-pair"], v, dim=0).item()
              for n, v in entries.items() if n != "toy-pair"}
    assert rows[0]["source"] == max(cosine, key=cosine.get)
    for r in rows:
        assert r["score"] == pytest.approx(cosine[r["source"]], abs=1e-4)
        assert {"task", "method", "step", "train_size", "metric"} <= set(r)
    assert payload["message"] == _page_message(served, entry="toy-pair", top_k=2)  # the page's own summary
    assert payload["similarity"] == "cosine" and payload["skipped_count"] == 0


def test_adapter_and_dataset_tools_rank_their_own_task_first(served):
    adapter = _payload(_call(served["url"], "rank_hub_adapter", {"repo_id": "alice/sentiment-adapter", "top_k": 3}))
    assert adapter["ranking"][0]["source"] == "toy-sentiment", adapter["message"]
    data = _payload(_call(served["url"], "rank_hub_dataset", {"dataset_id": "carol/reviews", "text_column": "review",
                                                              "label_column": "stars", "top_k": 3}))
    assert data["ranking"][0]["source"] == "toy-sentiment" and data["target"] == "reviews", data["message"]
    assert "the recipe of the registry's entries" in data["message"]


def test_list_registry_gives_entries_and_signatures(served, toy):
    listing = _payload(_call(served["url"], "list_registry", {}))
    assert listing["entries_total"] == 3 and listing["matching"] == 3
    assert sorted(e["name"] for e in listing["entries"]) == ["toy-city", "toy-pair", "toy-sentiment"]
    [group] = listing["signatures"]
    assert (group["entries"], group["method"], group["base_model"]) == (3, "bitfit", toy["base_model"])
    assert all(e["signature"] == group["signature"] and e["method"] == "bitfit" for e in listing["entries"])
    page = _payload(_call(served["url"], "list_registry", {"name_contains": "CITY", "limit": 5}))
    assert [e["name"] for e in page["entries"]] == ["toy-city"] and page["matching"] == 1
    second = _payload(_call(served["url"], "list_registry", {"offset": 2, "limit": 1}))
    assert len(second["entries"]) == 1 and second["offset"] == 2


# ---- bad input is a tool error with the page's message; the server keeps serving ----------------------
def test_unknown_task_is_a_tool_error_with_the_pages_message_and_the_server_keeps_serving(served):
    result = _call(served["url"], "rank_registry_task", {"task": "nope", "top_k": 3})
    assert result.isError
    [content] = result.content
    expected = _page_message(served, entry="nope")
    assert "'nope' is not an entry of this registry" in expected and "\n" not in expected
    assert content.text == expected
    # with a progress token gradio takes its streaming path: the same text, no "Error:" title in front
    result, _ = _call(served["url"], "rank_registry_task", {"task": "nope", "top_k": 3}, progress=True)
    assert result.isError and result.content[0].text == expected
    bad_k = _call(served["url"], "rank_registry_task", {"task": "toy-pair", "top_k": 0})
    assert bad_k.isError and bad_k.content[0].text == _page_message(served, entry="toy-pair", top_k=0)
    wrong_type = _call(served["url"], "rank_registry_task", {"task": "toy-pair", "top_k": "three"})
    assert wrong_type.isError and "'three' is not of type 'integer'" in wrong_type.content[0].text
    adapter = _call(served["url"], "rank_hub_adapter", {"repo_id": "../etc/passwd"})
    assert adapter.isError and adapter.content[0].text == handlers.rank_adapter(
        served["state"], served["config"], "../etc/passwd").message
    listing = _call(served["url"], "list_registry", {"limit": 0})
    assert listing.isError and listing.content[0].text.startswith("⚠️ limit must be between 1 and 500")
    # still serving
    ok = _payload(_call(served["url"], "rank_registry_task", {"task": "toy-city", "top_k": 1}))
    assert len(ok["ranking"]) == 1 and ok["ranking"][0]["source"] != "toy-city"


def test_the_pages_endpoints_cannot_be_called_as_tools(served):
    """Left out of the tool list is not enough: gradio resolves any named endpoint by name, and the page's
    `rank_data` takes a file URL gradio would download."""
    for name, arguments in (("rank_registry", {"entry": "toy-pair"}), ("refresh_registry", {}),
                            ("rank_data", {"data_file": "https://example.com/huge.csv"})):
        result = _call(served["url"], name, arguments)
        assert result.isError, name
    assert not _call(served["url"], "rank_registry_task", {"task": "toy-pair", "top_k": 1}).isError


# ---- launching ----------------------------------------------------------------------------------------
def test_cli_space_mcp_without_the_mcp_package_exits_2_with_the_fix(monkeypatch, capsys, toy):  # noqa: F811
    from taskemb_hub.cli import main

    monkeypatch.setitem(sys.modules, "mcp", None)  # `import mcp` raises ImportError
    assert main(["space", "--mcp", "--registry", str(toy["registry"]), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert 'pip install "taskemb-hub[space]"' in err and len(err.strip().splitlines()) == 1


def test_the_hub_space_serves_mcp_by_default(monkeypatch):
    from taskemb_hub.space import app as space_app

    calls = []
    monkeypatch.setattr(space_app, "launch", lambda *args, **kwargs: calls.append(kwargs))
    entry = Path(__file__).resolve().parents[1] / "spaces" / "app.py"
    runpy.run_path(str(entry), run_name="__main__")
    monkeypatch.setenv("TASKEMB_MCP", "0")
    runpy.run_path(str(entry), run_name="__main__")
    assert [c["mcp"] for c in calls] == [True, False]
