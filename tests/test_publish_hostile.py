"""Published cards, against the local Hub (issue 21): the adapter folder's README.md wins over the repo's card
once the user writes in it (it was silently dropped: "no new commit"), a card is a real one (task, method,
recipe, metric, use with taskemb-hub; `base_model_relation: adapter`), never peft's empty template, and
hostile card content (paths, placeholders, metadata the Hub refuses) never reaches the Hub."""

import shutil

import pytest
import yaml

from taskemb_hub import TuningConfig, tune
from taskemb_hub.cards import PLACEHOLDER, TAG
from taskemb_hub.errors import RegistryError
from taskemb_hub.publishing import publish


BASE = "test/tiny-bert"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_bert):
    from conftest import _sentiment_rows
    from taskemb_hub.data import CLASSIFICATION, TaskData

    task = TaskData(name="toy-sentiment", task_type=CLASSIFICATION, labels=["neg", "pos"],
                    splits={"train": _sentiment_rows(64, 0), "validation": _sentiment_rows(16, 1)})
    cfg = TuningConfig(method="bitfit", base_model=tiny_bert, max_steps=4, eval_examples=8)
    return tune(task, cfg, tmp_path_factory.mktemp("run"), progress=False)[-1].path


@pytest.fixture
def folder(checkpoint, tmp_path):
    return shutil.copytree(checkpoint, tmp_path / "adapter")


def _card(hub, repo_id) -> tuple[dict, str]:
    text = hub.state.repo(repo_id).files["README.md"].decode()
    _, meta, body = text.split("---", 2)
    return yaml.safe_load(meta), body


def test_a_card_written_in_the_folder_after_the_first_publish_is_published(hub, folder):
    first = publish(folder, "alice/mine", endpoint=hub.endpoint, base_model_id=BASE)
    text = (folder / "README.md").read_text()
    meta, body = text.split("---", 2)[1:]
    (folder / "README.md").write_text(f"---{meta.rstrip()}\nlicense: mit\n---\n# My adapter\n\nMy own notes.\n{body}")
    again = publish(folder, "alice/mine", endpoint=hub.endpoint, base_model_id=BASE)
    assert first.committed and again.committed
    meta, body = _card(hub, "alice/mine")
    assert "My own notes." in body and meta["license"] == "mit"
    assert TAG in meta["tags"] and meta["taskemb"]["method"] == "bitfit" and meta["base_model"] == BASE
    assert body.count("<!-- taskemb-hub:start -->") == 1  # our section replaced in place, not added twice


def test_a_card_written_on_the_hub_stays_when_the_folder_card_is_the_generated_one(hub, folder):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/hub-card")
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\ntags: [my-tag]\n---\n# Mine\n\nWritten on the Hub.\n",
                    path_in_repo="README.md", repo_id="alice/hub-card")
    publish(folder, "alice/hub-card", endpoint=hub.endpoint, base_model_id=BASE)
    meta, body = _card(hub, "alice/hub-card")
    assert "Written on the Hub." in body and meta["license"] == "mit" and {"my-tag", TAG} <= set(meta["tags"])


def test_a_published_card_is_a_real_card_not_peft_s_template(hub, folder):
    assert PLACEHOLDER not in (folder / "README.md").read_text()  # tune's card: peft's template dropped
    publish(folder, "alice/real", endpoint=hub.endpoint, base_model_id=BASE)
    meta, body = _card(hub, "alice/real")
    assert PLACEHOLDER not in body and "<!--" not in body.replace("<!-- taskemb-hub:", "")
    assert meta["base_model_relation"] == "adapter" and meta["library_name"] == "peft"
    for words in ("toy-sentiment", "bitfit", "Recipe:", "4 of 4 steps", "batch 16", "accuracy",
                  "AutoSourceSelector.from_hub", "PeftModel.from_pretrained", "local data, not on the Hub"):
        assert words in body, words
    assert f"base_model:adapter:{BASE}" in hub.state.tags("alice/real")


def test_a_plain_peft_folder_publishes_without_the_template_and_keeps_what_was_filled_in(hub, tiny_bert, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    model = get_peft_model(AutoModel.from_pretrained(tiny_bert), LoraConfig(r=2, target_modules=["query", "value"]))
    model.save_pretrained(tmp_path / "plain")
    card = (tmp_path / "plain" / "README.md").read_text()
    assert card.count(PLACEHOLDER) > 30  # what peft writes
    filled = card.replace("### Direct Use\n\n<!-- This section is for the model use without fine-tuning or plugging "
                          "into a larger ecosystem/app. -->\n\n[More Information Needed]",
                          "### Direct Use\n\nSentiment of short reviews.")
    assert filled != card
    (tmp_path / "plain" / "README.md").write_text(filled)
    publish(tmp_path / "plain", "alice/plain", endpoint=hub.endpoint, base_model_id=BASE)
    meta, body = _card(hub, "alice/plain")
    assert PLACEHOLDER not in body and "Model Card for Model ID" not in body and "## Bias" not in body
    assert "### Direct Use\n\nSentiment of short reviews." in body and "not recorded" in body
    assert meta["base_model"] == BASE and not any(str(tiny_bert) in t for t in meta["tags"])


def test_hostile_card_metadata_never_reaches_the_hub(hub, folder, tmp_path):
    (folder / "README.md").write_text(
        "---\nbase_model: /home/bob/models/minilm\ntags: [mine, 'base_model:adapter:/home/bob/models/minilm']\n"
        f"datasets: ['{tmp_path}']\n---\n# Notes\n\nKept.\n")
    publish(folder, "alice/hostile", endpoint=hub.endpoint, base_model_id=BASE)
    meta, body = _card(hub, "alice/hostile")
    assert meta["base_model"] == BASE and "mine" in meta["tags"] and "Kept." in body
    assert "/home/bob" not in str(meta) and str(tmp_path) not in str(meta) and not meta.get("datasets")


def test_a_folder_card_the_hub_would_refuse_is_one_clear_error_and_nothing_is_uploaded(hub, folder):
    (folder / "README.md").write_text("---\nbase_model_relation: sibling\nlicense: [1, 2]\n---\n# x\n")
    with pytest.raises(RegistryError, match="rejects the model card's metadata.*Fix the YAML") as err:
        publish(folder, "alice/refused", endpoint=hub.endpoint, base_model_id=BASE)
    assert "\n" not in str(err.value) and "alice/refused" not in hub.state.repos
