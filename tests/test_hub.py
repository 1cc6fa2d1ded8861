"""publish -> list by tag -> rank, against a local Hub-compatible server with the real client."""

import json

import pytest

from taskemb_hub import TuningConfig, tune
from taskemb_hub.cards import TAG
from taskemb_hub.cli import main
from taskemb_hub.registries.hub import publish
from taskemb_hub.selector import AutoSourceSelector

from local_hub import LocalHub


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from huggingface_hub import constants

    with LocalHub() as server:
        # HF_ENDPOINT for our code (read at call time) and the client's import-time constants.
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        yield server


@pytest.fixture
def checkpoints(tiny_bert, sentiment_task, qa_task, tmp_path):
    out = {}
    for task in (sentiment_task, qa_task):
        out[task.name] = tune(task, TuningConfig(base_model=tiny_bert, max_steps=3, eval_examples=0),
                              tmp_path / task.name, progress=False)[-1]
    return out


def test_published_adapters_come_back_from_the_hub_as_a_registry(hub, checkpoints):
    for name, checkpoint in checkpoints.items():
        publish(checkpoint.path, f"alice/{name}", endpoint=hub.endpoint, token="hf_secret_token_value")
    files = hub.state.repos["alice/toy-sentiment"]["files"]
    assert {"adapter_config.json", "adapter_model.safetensors", "taskemb.safetensors", "README.md"} <= set(files)
    assert TAG in hub.state.tags("alice/toy-sentiment")

    selector = AutoSourceSelector.from_hub(endpoint=hub.endpoint)
    assert sorted(e.name for e in selector.entries) == ["alice/toy-qa", "alice/toy-sentiment"]
    ranking = selector.rank(checkpoints["toy-sentiment"].embedding)
    assert ranking.names[0] == "alice/toy-sentiment" and ranking[0]["score"] == pytest.approx(1.0)


def test_untagged_and_broken_repos_are_skipped_not_fatal(hub, checkpoints):
    from huggingface_hub import HfApi

    publish(checkpoints["toy-sentiment"].path, "alice/good", endpoint=hub.endpoint)
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("bob/untagged")
    api.upload_file(path_or_fileobj=b"# no metadata", path_in_repo="README.md", repo_id="bob/untagged")
    api.create_repo("bob/broken")
    api.upload_file(path_or_fileobj=f"---\ntags: [{TAG}]\n---\n".encode(), path_in_repo="README.md", repo_id="bob/broken")
    selector = AutoSourceSelector.from_hub(endpoint=hub.endpoint)
    assert [e.name for e in selector.entries] == ["alice/good"]
    assert selector.skipped[0][0] == "bob/broken" and "no taskemb.safetensors" in selector.skipped[0][1]


def test_cli_publish_never_prints_the_token(hub, checkpoints, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    assert main(["publish", str(checkpoints["toy-qa"].path), "--repo-id", "alice/qa", "--json"]) == 0
    out = capsys.readouterr()
    assert "hf_secret_token_value" not in out.out + out.err
    assert json.loads(out.out)["url"].startswith(hub.endpoint)


def test_selector_snapshot_pushes_and_loads_with_hub_mixin_verbs(hub, checkpoints, tmp_path):
    publish(checkpoints["toy-qa"].path, "alice/qa", endpoint=hub.endpoint)
    selector = AutoSourceSelector.from_hub(endpoint=hub.endpoint)
    selector.push_to_hub("alice/selector")
    again = AutoSourceSelector.from_pretrained("alice/selector")
    assert [e.name for e in again.entries] == ["alice/qa"]
    assert again.rank(checkpoints["toy-qa"].embedding).rows == selector.rank(checkpoints["toy-qa"].embedding).rows
