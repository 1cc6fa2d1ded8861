"""BitFit's attention key biases get no gradient on absolute-position softmax encoders (softmax ignores the
constant q·b_k they add to a row of logits), so there they are neither tuned nor embedded; vectors embedded with
them live in another space. On other base models (rotary RoFormer, one whose config cannot be read) they stay.

Before: their blocks were float noise that per-module normalisation scaled to unit norm, so two runs
whose weights agree to 1e-8 gave embeddings at cosine ~0.84 (tiny BERT) / 0.90 (MiniLM).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from taskemb_hub import AutoSourceSelector, TaskEmbedding, TuningConfig, tune
from taskemb_hub.errors import AdapterError, IncompatibleEmbeddingError, RegistryError
from taskemb_hub.methods import EmbeddingOptions, get_method
from taskemb_hub.methods.base import embed_module_tensors
from taskemb_hub.methods.bitfit import (GRADIENT_FREE_KEY_MODEL_TYPES, drop_gradient_free_blocks, key_biases_are_gradient_free)
from taskemb_hub.methods.bitfit import is_attention_key as is_gradient_free

ROOT = Path(__file__).resolve().parents[1]
# The target modules before the fix: every encoder Linear, attention keys included (as adapters already on the Hub).
OLD_TARGET_MODULES = r".*encoder\.layer\.\d+\..*(query|key|value|dense)$"
KEY = "attention.self.key"


@pytest.fixture(scope="module")
def no_dropout_bert(tiny_bert, tmp_path_factory) -> str:
    """The tiny BERT without dropout: batch 16 and batch 8 x 2 accumulated steps then compute the same weights."""
    from transformers import AutoConfig

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    shutil.copytree(tiny_bert, folder, dirs_exist_ok=True)
    config = AutoConfig.from_pretrained(folder)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(folder)
    return str(folder)


def _tune(base, task, out, *, old_modules=False, batch_size=16, accumulate=1, steps=8):
    cfg = TuningConfig(method="bitfit", base_model=base, max_steps=steps, batch_size=batch_size,
                       gradient_accumulation_steps=accumulate, eval_examples=0,
                       method_kwargs={"target_modules": OLD_TARGET_MODULES} if old_modules else {})
    checkpoint = tune(task, cfg, out, progress=False)[-1]
    return checkpoint.embedding, load_file(str(Path(checkpoint.path) / "adapter_model.safetensors"))


def _embedded_with_key_blocks(run, task="old") -> TaskEmbedding:
    """What taskemb-hub embedded before the fix: every BEFT bias, key biases included."""
    embedding, weights = run
    vector, signature = embed_module_tensors(get_method("bitfit"), weights, ".beft_bias", EmbeddingOptions())
    assert any(is_gradient_free(m) for m in signature["modules"])
    return TaskEmbedding(vector=vector, task=task, base_model=embedding.base_model, method="bitfit", signature=signature)


@pytest.fixture(scope="module")
def toy_task():
    from conftest import _sentiment_rows
    from taskemb_hub.data import CLASSIFICATION, TaskData

    return TaskData(name="toy-sentiment", task_type=CLASSIFICATION, labels=["neg", "pos"],
                    splits={"train": _sentiment_rows(128, 0), "validation": _sentiment_rows(16, 1)})


@pytest.fixture(scope="module")
def runs(no_dropout_bert, toy_task, tmp_path_factory):
    """Two runs with the old target modules whose weights agree to float error, and one with today's."""
    out = tmp_path_factory.mktemp("key-bias-runs")
    return {"old": _tune(no_dropout_bert, toy_task, out / "old", old_modules=True),
            "old_accumulated": _tune(no_dropout_bert, toy_task, out / "old-acc", old_modules=True, batch_size=8, accumulate=2),
            "new": _tune(no_dropout_bert, toy_task, out / "new"), "new_folder": out / "new" / "step-8"}


@pytest.fixture
def bert_config_readable(no_dropout_bert, monkeypatch):
    """Embeddings record a local base model by its folder name; from the folder above it, that name resolves."""
    monkeypatch.chdir(Path(no_dropout_bert).parent)


def test_key_biases_are_neither_trained_nor_embedded(runs):
    embedding, weights = runs["new"]
    assert weights and not [k for k in weights if KEY in k]
    assert any("attention.self.query" in k for k in weights) and any("attention.self.value" in k for k in weights)
    assert not [m for m in embedding.signature["modules"] if KEY in m]
    # 2 layers x (query 32 + value 32 + attention.output 32 + intermediate 64 + output 32)
    assert embedding.dim == 2 * (32 + 32 + 32 + 64 + 32)


def test_an_adapter_with_key_biases_embeds_into_todays_space(runs):
    embedding, weights = runs["old"]
    assert len([k for k in weights if KEY in k]) == 2  # tuned, as adapters made before the fix were
    assert embedding.signature_hash == runs["new"][0].signature_hash
    assert embedding.dim == runs["new"][0].dim
    assert embedding.similarity(runs["new"][0]) > 0.999  # the keys changed nothing the model computes


def test_two_runs_with_equal_weights_have_equal_embeddings(runs):
    (a, wa), (b, wb) = runs["old"], runs["old_accumulated"]
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-6  # equal weights, to float error
    assert a.similarity(b) > 1 - 1e-9
    if all(torch.equal(wa[k], wb[k]) for k in wa):
        pytest.skip("the two runs are bit-identical on this platform: no float noise to show the old embedding's defect")
    # what the fix removes: the key-bias noise blown up to unit blocks made the same weights look different
    assert _embedded_with_key_blocks(runs["old"]).similarity(_embedded_with_key_blocks(runs["old_accumulated"])) < 0.99


def test_old_vectors_are_refused_next_to_new_ones_with_the_fix_named(runs, bert_config_readable):
    old = _embedded_with_key_blocks(runs["old"], task="old-source")
    new_source = dataclasses.replace(runs["new"][0], task="new-source")
    target = runs["old_accumulated"][0]
    assert old.signature_hash != target.signature_hash
    with pytest.raises(IncompatibleEmbeddingError, match="key biases.*drop_gradient_free_blocks"):
        target.similarity(old)

    ranking = AutoSourceSelector.from_embeddings([old, new_source]).rank(target)
    assert ranking.names == ["new-source"]
    (name, reason), = ranking.skipped
    assert name == "old-source" and "'old-source' was embedded by an older taskemb-hub" in reason

    with pytest.raises(RegistryError, match="key biases"):
        AutoSourceSelector.from_embeddings([old]).rank(target)


def test_an_index_keeps_old_vectors_in_their_own_shard_and_never_ranks_them(runs, tmp_path, bert_config_readable):
    from taskemb_hub.registries import RegistryEntry
    from taskemb_hub.registries.index import write_index

    old = _embedded_with_key_blocks(runs["old"], task="old-source")
    new_source = dataclasses.replace(runs["new"][0], task="new-source")
    write_index([RegistryEntry(e.task, e, f"alice/{e.task}@{'0' * 40}") for e in (old, new_source)], tmp_path / "index")
    ranking = AutoSourceSelector.from_index(tmp_path / "index").rank(runs["old_accumulated"][0])
    assert [r["task"] for r in ranking.rows] == ["new-source"]
    assert [reason for _, reason in ranking.skipped if "key biases" in reason and "older taskemb-hub" in reason]


def test_conversion_gives_todays_vector_exactly_and_converts_once(runs):
    embedding, _ = runs["old"]
    old = _embedded_with_key_blocks(runs["old"])
    assert old.dim == embedding.dim + 2 * 32
    converted = drop_gradient_free_blocks(old)
    assert torch.equal(converted.vector, embedding.vector)
    assert converted.signature == embedding.signature and converted.signature_hash == embedding.signature_hash
    assert drop_gradient_free_blocks(converted) is converted
    broken = TaskEmbedding(vector=old.vector[:-1], task="cut", base_model="tiny", method="bitfit", signature=old.signature)
    with pytest.raises(AdapterError, match="does not match its signature"):
        drop_gradient_free_blocks(broken)


def test_an_adapter_of_key_biases_only_is_refused_with_the_reason(runs):
    _, weights = runs["old"]
    keys_only = {k: v for k, v in weights.items() if KEY in k}
    with pytest.raises(AdapterError, match="only attention key biases"):
        TaskEmbedding.from_state_dict(keys_only, {"peft_type": "BEFT"}, task="keys", base_model="tiny",
                                      base_model_config={"model_type": "bert"})


def _convert_script():
    spec = importlib.util.spec_from_file_location("convert_bitfit_key_bias", ROOT / "benchmarks" / "convert_bitfit_key_bias.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_conversion_script_is_idempotent_and_leaves_other_methods_alone(runs, tmp_path, capsys):
    script = _convert_script()
    embedding, _ = runs["old"]
    old = _embedded_with_key_blocks(runs["old"], task="a")
    old.save(tmp_path / "a" / "seed0" / "step-100")
    runs["new"][0].save(tmp_path / "b" / "seed0" / "step-100")  # already without key biases
    other = TaskEmbedding(vector=torch.ones(4), task="c", base_model="tiny", method="lora", signature={"method": "lora"})
    other.save(tmp_path / "c" / "seed0" / "step-100")

    assert script.main([str(tmp_path), "--check"]) == 1  # something to convert; nothing changed
    assert TaskEmbedding.load(tmp_path / "a" / "seed0" / "step-100").dim == old.dim
    assert script.main([str(tmp_path)]) == 0
    assert "1 converted, 1 already without key biases, 1 not bitfit" in capsys.readouterr().out
    files = sorted(tmp_path.rglob("taskemb.*"))
    first = {f: f.read_bytes() for f in files}
    converted = TaskEmbedding.load(tmp_path / "a" / "seed0" / "step-100")
    assert torch.equal(converted.vector, embedding.vector) and converted.signature_hash == embedding.signature_hash

    assert script.main([str(tmp_path)]) == 0  # a second run changes nothing
    assert "0 converted, 2 already without key biases" in capsys.readouterr().out
    assert {f: f.read_bytes() for f in files} == first
    assert script.main([str(tmp_path), "--check"]) == 0


def test_the_conversion_script_finishes_an_entry_cut_between_its_two_files(runs, tmp_path):
    script = _convert_script()
    embedding, _ = runs["old"]
    folder = tmp_path / "a" / "seed0" / "step-100"
    _embedded_with_key_blocks(runs["old"], task="a").save(folder)
    meta = (folder / "taskemb.json").read_bytes()
    drop_gradient_free_blocks(TaskEmbedding.load(folder)).save(folder)
    (folder / "taskemb.json").write_bytes(meta)  # the vector was rewritten, the metadata not yet
    assert script.main([str(tmp_path)]) == 0
    assert TaskEmbedding.load(folder).signature_hash == embedding.signature_hash


def test_the_stored_benchmark_vectors_and_the_packaged_registry_hold_no_key_bias_blocks():
    from taskemb_hub.default_registry import default_registry_path

    script = _convert_script()
    for folder in [*script.DEFAULT_FOLDERS, default_registry_path()]:
        if folder.is_dir():
            assert script.convert_folder(folder, dry_run=True)["converted"] == 0, folder


# ---- which base models drop them ------------------------------------------------------------------------

@pytest.mark.parametrize("model_type, config_kwargs", [(t, {}) for t in sorted(GRADIENT_FREE_KEY_MODEL_TYPES)] + [
    ("roformer", {}), ("esm", {"position_embedding_type": "rotary"}), ("yoso", {})])
def test_key_biases_are_dropped_exactly_where_they_get_no_gradient(model_type, config_kwargs):
    """A tiny random model of each listed type, biases moved off zero, float64: the key-bias gradient is float
    round-off (ratio ~1e-17 to the other biases) on the allow-list, real (1e-5..1e-3) on rotary/LSH attention."""
    import re

    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, vocab_size=100, max_position_embeddings=64, pad_token_id=0,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **config_kwargs)
    model = AutoModel.from_config(config).double()
    if model_type == "xmod":
        model.set_default_language("en_XX")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_()
    hidden = model(input_ids=torch.randint(5, 100, (2, 12))).last_hidden_state
    (hidden * torch.randn_like(hidden)).sum().backward()
    grads = {n: p.grad.norm().item() for n, p in model.named_parameters()
             if re.search(r"encoder\.layer\.\d+\..*(query|key|value|dense)\.bias$", n)}
    key = max(g for n, g in grads.items() if is_gradient_free(n.removesuffix(".bias")))
    ratio = key / max(g for n, g in grads.items() if not is_gradient_free(n.removesuffix(".bias")))
    assert key_biases_are_gradient_free(config) == (ratio < 1e-12), ratio


def test_the_decision_needs_a_readable_config_with_absolute_positions():
    from taskemb_hub.base_model import DEFAULT_BASE_MODEL, packaged_model_dir, read_base_model_config

    if packaged_model_dir() is not None:  # the default: the packaged MiniLM is a BERT with absolute positions
        assert key_biases_are_gradient_free(read_base_model_config(DEFAULT_BASE_MODEL))
    assert read_base_model_config("nobody/never-downloaded-model") is None  # a cache lookup, no request
    assert not key_biases_are_gradient_free(None)
    assert not key_biases_are_gradient_free({"model_type": "bert", "position_embedding_type": "relative_key_query"})
    assert key_biases_are_gradient_free({"model_type": "xlm_roberta"})


def test_training_targets_keep_the_keys_unless_the_base_model_ignores_them():
    import re

    bitfit = get_method("bitfit")
    key, query = "bert.encoder.layer.0.attention.self.key", "bert.encoder.layer.0.attention.self.query"
    for config in ({"model_type": "bert"}, {"model_type": "roformer"}, None):
        targets = bitfit.make_config_for_base_model("SEQ_CLS", config).target_modules
        assert re.fullmatch(targets, query)
        assert bool(re.fullmatch(targets, key)) == (config != {"model_type": "bert"}), config
    assert re.fullmatch(bitfit.make_config("SEQ_CLS").target_modules, key)  # no base model known: every Linear


def test_a_base_model_whose_config_cannot_be_read_keeps_its_key_biases(runs):
    _, weights = runs["old"]  # tuned with key biases
    adapter_config = {"peft_type": "BEFT", "base_model_name_or_path": "nobody/elsewhere"}
    embedding = TaskEmbedding.from_state_dict(weights, adapter_config, task="elsewhere")
    assert len([m for m in embedding.signature["modules"] if KEY in m]) == 2
    assert embedding.dim == runs["new"][0].dim + 2 * 32


def test_an_adapter_folder_embeds_as_at_tune_time_without_the_base_model_at_hand(runs):
    """tune records the base model's type in the folder, so its folder name need not resolve."""
    embedding, _ = runs["new"]
    assert TaskEmbedding.from_adapter(runs["new_folder"]).signature_hash == embedding.signature_hash


@pytest.fixture(scope="module")
def tiny_roformer(tiny_bert, tmp_path_factory) -> str:
    """A 2-layer RoFormer (rotary positions, BERT's module names) with random weights and the tiny BERT's tokenizer."""
    from transformers import AutoConfig, RoFormerConfig, RoFormerModel

    folder = tmp_path_factory.mktemp("tiny-roformer")
    shutil.copytree(tiny_bert, folder, dirs_exist_ok=True)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    bert = AutoConfig.from_pretrained(tiny_bert)
    torch.manual_seed(0)
    RoFormerModel(RoFormerConfig(vocab_size=bert.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=128)).save_pretrained(folder)
    return str(folder)


def test_a_rotary_base_model_trains_and_embeds_its_key_biases(tiny_roformer, toy_task, tmp_path, monkeypatch):
    cfg = TuningConfig(method="bitfit", base_model=tiny_roformer, max_steps=4, batch_size=16, eval_examples=0,
                       head_init="random")  # RoFormer's two-layer head passes no gradient when zeroed
    checkpoint = tune(toy_task, cfg, tmp_path / "run", progress=False)[-1]
    weights = load_file(str(Path(checkpoint.path) / "adapter_model.safetensors"))
    keys = [k for k in weights if KEY in k]
    assert len(keys) == 2 and all(float(weights[k].abs().max()) > 0 for k in keys)  # trained
    embedding = checkpoint.embedding
    assert len([m for m in embedding.signature["modules"] if KEY in m]) == 2
    assert embedding.dim == 2 * (4 * 32 + 64 + 32)  # query, key, value, attention.output, intermediate, output
    assert TaskEmbedding.from_adapter(checkpoint.path).signature_hash == embedding.signature_hash

    # with the base model readable, its key blocks are refused to the conversion, and a vector embedded
    # without them (as 2e537fd did on every BERT-named model) is told to re-embed, not to convert
    monkeypatch.chdir(Path(tiny_roformer).parent)
    with pytest.raises(AdapterError, match="carry signal"):
        drop_gradient_free_blocks(embedding)
    vector, signature = embed_module_tensors(get_method("bitfit"), {k: v for k, v in weights.items() if KEY not in k},
                                             ".beft_bias", EmbeddingOptions())
    dropped = TaskEmbedding(vector=vector, task="dropped", base_model=embedding.base_model, method="bitfit",
                            signature=signature)
    for a, b in ((embedding, dropped), (dropped, embedding)):
        reason = a.incompatibility(b)
        assert ("'dropped' was embedded without BitFit's attention key biases (attention.self.key), which carry "
                "signal") in reason
        assert "drop_gradient_free_blocks" not in reason


def test_the_hint_names_conversion_only_where_it_makes_the_vectors_comparable(runs, bert_config_readable):
    old = _embedded_with_key_blocks(runs["old"], task="old")
    new = dataclasses.replace(runs["new"][0], task="new")
    for a, b in ((old, new), (new, old)):  # both directions
        assert "'old' was embedded by an older taskemb-hub" in a.incompatibility(b)
        assert "drop_gradient_free_blocks" in a.incompatibility(b)

    # review finding 5: another option differs too, so converting would not help
    other_options = dataclasses.replace(old, signature=dict(old.signature, per_module_norm=False))
    for a, b in ((other_options, new), (new, other_options)):
        reason = a.incompatibility(b)
        assert "per_module_norm" in reason and "key bias" not in reason and "drop_gradient_free_blocks" not in reason
    after = drop_gradient_free_blocks(other_options).incompatibility(new)  # converted: only the real difference left
    assert after.endswith(f"(per_module_norm: {new.dim} vs {new.dim} values)")

    # a base model this machine cannot check: say so, never suggest dropping what may be signal
    far_old, far_new = (dataclasses.replace(e, base_model="nobody/elsewhere") for e in (old, new))
    reason = far_new.incompatibility(far_old)
    assert "the config of 'nobody/elsewhere' cannot be read on this machine" in reason
    assert "drop_gradient_free_blocks" not in reason
