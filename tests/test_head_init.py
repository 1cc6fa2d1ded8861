"""A zero-initialised head must still let the body learn, whatever the head's shape."""

import torch
from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

from taskemb_hub import TuningConfig, tune
from taskemb_hub.tuning.training import build_model, head_module

from conftest import _sentiment_rows


def _tiny_roberta(folder):
    """A 2-layer RoBERTa (two-layer classification head: dense -> tanh -> out_proj), random weights."""
    import json

    words = sorted({w for r in _sentiment_rows(64, 0) for w in r["text"].split()})
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + words)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    RobertaTokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=130, pad_token_id=1)).save_pretrained(folder)
    return str(folder)


def test_a_two_layer_head_keeps_its_hidden_layer_and_zeroes_its_output(tmp_path, sentiment_task):
    model = build_model(sentiment_task, _tiny_roberta(tmp_path), head_init="zeros")
    head = head_module(model)
    assert torch.count_nonzero(head.out_proj.weight) == 0 and torch.count_nonzero(head.out_proj.bias) == 0
    assert torch.count_nonzero(head.dense.weight) > 0, "a zeroed hidden layer would block every gradient"


def test_bitfit_on_a_two_layer_head_model_moves_the_body(tmp_path, sentiment_task):
    cfg = TuningConfig(method="bitfit", base_model=_tiny_roberta(tmp_path), max_steps=4, eval_examples=0)
    checkpoint = tune(sentiment_task, cfg, tmp_path / "run", progress=False)[-1]
    assert float(checkpoint.embedding.vector.abs().max()) > 0, "the body biases trained"


def test_a_one_layer_head_is_zeroed_as_before(tiny_bert, sentiment_task):
    head = head_module(build_model(sentiment_task, tiny_bert, head_init="zeros"))
    assert all(torch.count_nonzero(p) == 0 for p in head.parameters())
