"""Every PEFT method tunes, saves, reloads and embeds; the embedding survives the round trip."""

import json

import pytest
import torch

from taskemb_hub import TaskEmbedding, TuningConfig, get_method, list_methods, tune
from taskemb_hub.errors import UnknownMethodError

METHODS = ["lora", "prompt", "prefix", "ia3", "bitfit"]


def test_all_five_methods_are_registered():
    assert set(METHODS) <= set(list_methods())


@pytest.mark.parametrize("method", METHODS)
def test_method_tunes_saves_reloads_and_embeds_identically(method, tiny_bert, sentiment_task, tmp_path):
    cfg = TuningConfig(method=method, base_model=tiny_bert, max_steps=6, save_steps=[3], batch_size=8, eval_examples=16)
    checkpoints = tune(sentiment_task, cfg, tmp_path / "run", progress=False)

    assert [c.step for c in checkpoints] == [3, 6]
    last = checkpoints[-1]
    assert set(last.metrics) == {"accuracy", "macro_f1"}
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md", "taskemb.safetensors", "taskemb.json"):
        assert (last.path / name).is_file(), name
    assert json.loads((last.path / "adapter_config.json").read_text())["peft_type"] == get_method(method).peft_type

    reloaded = TaskEmbedding.from_adapter(last.path)
    stored = TaskEmbedding.load(last.path)
    assert torch.equal(reloaded.vector, last.embedding.vector)
    assert torch.equal(stored.vector, last.embedding.vector)
    assert reloaded.signature_hash == stored.signature_hash
    assert reloaded.step == 6 and reloaded.task == "toy-sentiment" and reloaded.method == method
    assert reloaded.vector.norm() > 0, "tuning moved the weights"
    # a later checkpoint is a different point, not a copy of the first
    assert not torch.equal(checkpoints[0].embedding.vector, last.embedding.vector)


def test_tuned_adapter_loads_back_into_peft(tiny_bert, sentiment_task, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    checkpoint = tune(sentiment_task, TuningConfig(method="lora", base_model=tiny_bert, max_steps=2, eval_examples=0), tmp_path,
                      progress=False)[-1]
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    model = PeftModel.from_pretrained(base, str(checkpoint.path))
    assert TaskEmbedding.from_peft_model(model, task="x").vector.allclose(checkpoint.embedding.vector)


@pytest.mark.parametrize("fixture,metric", [("pair_task", "accuracy"), ("regression_task", "pearson"),
                                            ("qa_task", "f1")])
def test_pair_regression_and_qa_tasks_tune_with_their_metric(fixture, metric, request, tiny_bert):
    task = request.getfixturevalue(fixture)
    checkpoint = tune(task, TuningConfig(base_model=tiny_bert, max_steps=3, eval_examples=8), None, progress=False)[-1]
    assert metric in checkpoint.metrics
    assert checkpoint.path is None and checkpoint.embedding.dim > 0


def test_prefix_tuning_runs_on_question_answering(tiny_bert, qa_task):
    checkpoint = tune(qa_task, TuningConfig(method="prefix", base_model=tiny_bert, max_steps=3, eval_examples=8), None,
                      progress=False)[-1]
    assert {"exact_match", "f1"} <= set(checkpoint.metrics)


def test_same_seed_reproduces_the_same_embedding(tiny_bert, sentiment_task):
    cfg = TuningConfig(base_model=tiny_bert, max_steps=4, eval_examples=0, seed=3)
    a = tune(sentiment_task, cfg, None, progress=False)[-1].embedding
    b = tune(sentiment_task, cfg, None, progress=False)[-1].embedding
    assert torch.allclose(a.vector, b.vector, atol=1e-6)


def test_unknown_method_lists_the_available_ones():
    with pytest.raises(UnknownMethodError) as err:
        get_method("adapterdrop")
    assert "lora" in str(err.value) and "bitfit" in str(err.value)
    with pytest.raises(UnknownMethodError):
        TuningConfig(method="adapterdrop")


@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_mean_pooling_head_reads_the_masked_mean(method, tiny_bert, sentiment_task):
    from taskemb_hub.tuning.training import MeanPooler, build_model

    model = build_model(sentiment_task, tiny_bert, head_pooling="mean")
    assert isinstance(model.bert.pooler, MeanPooler)
    ids = torch.tensor([[2, 10, 11, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    states = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    pooled = model.bert(input_ids=ids, attention_mask=mask).pooler_output
    assert torch.allclose(pooled, states[:, :4].mean(1), atol=1e-6), "padding is left out of the mean"
    checkpoint = tune(sentiment_task, TuningConfig(method=method, base_model=tiny_bert, max_steps=3, eval_examples=8,
                                                   head_pooling="mean"), None, progress=False)[-1]
    assert checkpoint.embedding.extra["recipe"]["head_pooling"] == "mean" and "accuracy" in checkpoint.metrics


def test_spot_option_embeds_the_raw_prompt_in_its_own_space(tiny_bert, sentiment_task, tmp_path):
    from safetensors.torch import load_file

    from taskemb_hub.methods import EmbeddingOptions

    cfg = TuningConfig(method="prompt", base_model=tiny_bert, max_steps=3, batch_size=8, eval_examples=0)
    path = tune(sentiment_task, cfg, tmp_path, progress=False)[-1].path
    delta = TaskEmbedding.from_adapter(path)
    spot = TaskEmbedding.from_adapter(path, options=EmbeddingOptions(relative_to_init=False))

    tuned = load_file(str(path / "adapter_model.safetensors"))
    (key,) = [k for k in tuned if "prompt_embeddings" in k]
    init = load_file(str(path / "taskemb_init.safetensors"))["prompt_embeddings"]
    assert torch.allclose(spot.vector, tuned[key].mean(0), atol=1e-6)
    assert torch.allclose(delta.vector, (tuned[key] - init).mean(0), atol=1e-6)
    assert spot.signature_hash != delta.signature_hash, "raw and relative vectors must not be ranked together"


def test_a_default_tuning_is_comparable_with_the_packaged_registry(tiny_bert, sentiment_task):
    from taskemb_hub.default_registry import DEFAULT_METHOD

    checkpoint = tune(sentiment_task, TuningConfig(base_model=tiny_bert, max_steps=2, eval_examples=0), None,
                      progress=False)[-1]
    assert TuningConfig().method == DEFAULT_METHOD
    assert checkpoint.embedding.method == DEFAULT_METHOD
