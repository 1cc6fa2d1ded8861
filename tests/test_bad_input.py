"""Bad input fails with an error that names the problem and the fix; nothing stored is harmed."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from taskemb_hub import (AdapterError, DataError, IncompatibleEmbeddingError, RegistryError, TaskEmbedding,
                         TuningConfig, UnknownMethodError, UnsafeWeightsError, load_task, tune)
from taskemb_hub.registries.local import LOCK_NAME, LocalRegistry
from taskemb_hub.ranking.selector import AutoSourceSelector


@pytest.fixture
def adapter_dir(tiny_bert, sentiment_task, tmp_path):
    return tune(sentiment_task, TuningConfig(method="lora", base_model=tiny_bert, max_steps=2, eval_examples=0), tmp_path / "run",
                progress=False)[-1].path


def test_folder_without_adapter_config(tmp_path):
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(AdapterError, match="no adapter_config.json.*save_pretrained"):
        TaskEmbedding.from_adapter(tmp_path)


def test_weights_for_another_base_model_are_refused(adapter_dir):
    with pytest.raises(IncompatibleEmbeddingError, match="was tuned on base model .*not 'bert-base-uncased'"):
        TaskEmbedding.from_adapter(adapter_dir, base_model="bert-base-uncased")


def test_mismatched_shapes_cannot_be_compared(adapter_dir, tiny_bert, sentiment_task):
    other = tune(sentiment_task, TuningConfig(method="lora", base_model=tiny_bert, max_steps=2, eval_examples=0,
                                              method_kwargs={"target_modules": ["query"]}), None, progress=False)[-1]
    mine = TaskEmbedding.from_adapter(adapter_dir)
    with pytest.raises(IncompatibleEmbeddingError, match="shapes/options differ.*same base model, PEFT method"):
        mine.similarity(other.embedding)


def test_lora_factors_that_do_not_multiply(adapter_dir):
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    key = next(k for k in weights if k.endswith("lora_A.weight"))
    weights[key] = torch.zeros(3, 7)
    save_file(weights, str(adapter_dir / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="do not multiply"):
        TaskEmbedding.from_adapter(adapter_dir)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights(adapter_dir, bad):
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    key = next(k for k in weights if k.endswith("lora_B.weight"))
    weights[key][0, 0] = bad
    save_file(weights, str(adapter_dir / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="NaN or inf.*lower learning rate"):
        TaskEmbedding.from_adapter(adapter_dir)


def test_unknown_peft_type(adapter_dir):
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["peft_type"] = "VBLORA"
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(UnknownMethodError, match="Unknown PEFT method 'VBLORA'. Available: bitfit, ia3, lora"):
        TaskEmbedding.from_adapter(adapter_dir)


def test_empty_registry(tmp_path):
    with pytest.raises(RegistryError, match="is empty.*registry add"):
        AutoSourceSelector.from_local(tmp_path)


def test_pickle_weights_are_refused_unless_allowed(adapter_dir):
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    torch.save(weights, adapter_dir / "adapter_model.bin")
    (adapter_dir / "adapter_model.safetensors").unlink()
    with pytest.raises(UnsafeWeightsError, match="pickle file.*allow_pickle=True"):
        TaskEmbedding.from_adapter(adapter_dir)
    assert TaskEmbedding.from_adapter(adapter_dir, allow_pickle=True).dim > 0


def test_data_file_missing_the_named_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\ngreat,1\nbad,0\n")
    with pytest.raises(DataError) as err:
        load_task(path)
    message = str(err.value)
    assert "['text', 'label'] not found" in message and "['review', 'stars']" in message
    assert "--text-column" in message and "--label-column" in message
    assert load_task(path, text_column="review", label_column="stars").labels == ["0", "1"]


def test_save_steps_beyond_max_steps():
    with pytest.raises(Exception, match=r"save steps \[500\] fall outside 1..max_steps=100"):
        TuningConfig(max_steps=100, save_steps=[50, 500])


def test_registry_add_never_clobbers_an_entry(adapter_dir, tmp_path):
    registry = LocalRegistry(tmp_path / "reg", create=True)
    entry = registry.add(adapter_dir, name="toy")
    before = (entry / "taskemb.safetensors").read_bytes()
    with pytest.raises(RegistryError, match="already exists.*overwrite"):
        registry.add(adapter_dir, name="toy")
    broken = tmp_path / "broken"
    shutil.copytree(adapter_dir, broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
    (broken / "taskemb.safetensors").unlink()
    with pytest.raises(AdapterError):
        registry.add(broken, name="toy", overwrite=True)
    assert (entry / "taskemb.safetensors").read_bytes() == before
    assert [p.name for p in (tmp_path / "reg").iterdir() if p.name != LOCK_NAME] == ["toy"], "no staging leftovers"


def test_unreadable_entry_is_skipped_not_fatal(adapter_dir, tmp_path):
    registry = LocalRegistry(tmp_path / "reg", create=True)
    registry.add(adapter_dir, name="good")
    bad = tmp_path / "reg" / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text("{not json")
    selector = AutoSourceSelector.from_local(tmp_path / "reg")
    assert [e.name for e in selector.entries] == ["good"]
    assert selector.skipped[0][0] == "bad" and "not valid JSON" in selector.skipped[0][1]


# ---- data that cannot carry a task is refused before any tuning ---------------------------------------

def _toy(rows, task_type="text-classification", labels=("neg", "pos")):
    from taskemb_hub.data import TaskData

    return TaskData(name="toy", task_type=task_type, splits={"train": rows},
                    labels=list(labels) if task_type == "text-classification" else None)


def test_a_single_label_is_refused_not_embedded_as_zeros(tiny_bert):
    rows = [{"text": f"the movie was very good {i}", "label": 1} for i in range(64)]
    with pytest.raises(DataError, match=r"every training row has label 'pos'.*at least two labels"):
        tune(_toy(rows), TuningConfig(base_model=tiny_bert, max_steps=2, eval_examples=0), None, progress=False)


def test_too_few_rows_are_refused(tiny_bert):
    rows = [{"text": "good", "label": 1}, {"text": "bad", "label": 0}, {"text": "fine", "label": 1}]
    with pytest.raises(DataError, match=r"3 training rows.*at least 20"):
        tune(_toy(rows), TuningConfig(base_model=tiny_bert, max_steps=2, eval_examples=0), None, progress=False)


def test_constant_regression_targets_and_unanswerable_qa_are_refused(tiny_bert):
    rows = [{"text": f"row {i}", "label": 2.5} for i in range(32)]
    with pytest.raises(DataError, match=r"every training row has the value 2.5"):
        tune(_toy(rows, "regression"), TuningConfig(base_model=tiny_bert, max_steps=2, eval_examples=0), None,
             progress=False)
    qa = [{"id": str(i), "question": "who?", "context": "paris is a city", "answers": {"text": [], "answer_start": []}}
          for i in range(32)]
    with pytest.raises(DataError, match=r"no training row has an answer"):
        tune(_toy(qa, "extractive-qa"), TuningConfig(base_model=tiny_bert, max_steps=2, eval_examples=0), None,
             progress=False)


@pytest.mark.parametrize("raw, problem", [(b'{"peft_type": "\xff"}', "not valid JSON \\(not UTF-8"),
                                          (b'["peft_type"]', "holds a JSON list, not an object"),
                                          (b'{"peft_type": 7}', "no 'peft_type' \\(or not a string\\)")])
def test_an_adapter_config_that_is_not_a_json_object_is_an_adapter_error(tmp_path, raw, problem):
    from taskemb_hub.adapters import read_adapter
    from taskemb_hub.errors import AdapterError

    (tmp_path / "adapter_config.json").write_bytes(raw)
    with pytest.raises(AdapterError, match=problem):
        read_adapter(tmp_path)
