"""Edge cases a fresh review of the data, recipe and registry code found (each failed before its fix)."""

import json

import pytest

from taskemb_hub.data import CLASSIFICATION, EXTRACTIVE_QA, TaskData, load_task
from taskemb_hub.errors import DataError, RegistryError


def _qa_file(tmp_path, answers):
    path = tmp_path / "qa.jsonl"
    rows = [{"id": str(i), "question": "where?", "context": "it is in paris today", "answers": answers}
            for i in range(30)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.parametrize("answers, complaint", [
    ({"text": [""], "answer_start": [0]}, "not the context's text"),
    ({"text": ["paris"], "answer_start": []}, "answer_start values"),
    ({"text": ["paris"], "answer_start": [0]}, "not the context's text"),
    ("{not json", "not JSON"),
])
def test_malformed_qa_answers_are_one_clear_error(tmp_path, answers, complaint):
    with pytest.raises(DataError, match=complaint):
        load_task(_qa_file(tmp_path, answers), task_type="extractive-qa")


def test_a_well_formed_qa_file_loads(tmp_path):
    task = load_task(_qa_file(tmp_path, {"text": ["paris"], "answer_start": [9]}), task_type="extractive-qa")
    assert task.task_type == EXTRACTIVE_QA


def test_a_small_file_keeps_its_rows_for_training(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("text,label\n" + "\n".join(f"row {i},{i % 2}" for i in range(21)))
    task = load_task(path)
    assert len(task.splits["train"]) == 21  # a 10% hold-out would have left 19, under the 20-row minimum


def test_the_learning_warning_needs_enough_mixed_held_out_rows():
    from taskemb_hub.tuning.recipe import chance_level

    task = TaskData(name="t", task_type=CLASSIFICATION, labels=["a", "b"], splits={"train": []})
    assert chance_level(task, [{"text": "x", "label": 1}] * 3) is None  # all one class, 3 rows: cannot tell
    rows = [{"text": "x", "label": i % 2} for i in range(40)]
    assert chance_level(task, rows)["value"] == 0.5


def test_an_entry_name_with_a_hidden_part_is_refused(tmp_path):
    import torch

    from taskemb_hub.embedding import TaskEmbedding
    from taskemb_hub.registries import LocalRegistry

    emb = TaskEmbedding(vector=torch.ones(4), task="t", base_model="org/m", method="bitfit", signature={"m": 1})
    with pytest.raises(RegistryError, match="start with '.'"):
        LocalRegistry(tmp_path / "reg", create=True).add(emb, name="owner/.hidden")


def test_rank_from_data_tunes_on_the_registrys_base_model(monkeypatch):
    import taskemb_hub.tuning.targets as targets
    from taskemb_hub.ranking.selector import AutoSourceSelector

    seen = {}

    def fake_tune(task, cfg, out, progress):
        seen["base_model"] = cfg.base_model
        raise RuntimeError("stop here")

    monkeypatch.setattr("taskemb_hub.tuning.training.tune", fake_tune)
    task = TaskData(name="t", task_type=CLASSIFICATION, labels=["a", "b"],
                    splits={"train": [{"text": f"x {i}", "label": i % 2} for i in range(40)]})
    with pytest.raises(RuntimeError, match="stop here"):
        targets.target_from_data(task, AutoSourceSelector.from_default(), progress=False)
    assert seen["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"


# ---- the Space (issue 11) ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["csv", "json", "text", "parquet", "pandas", "imagefolder"])
def test_the_space_never_reads_the_servers_files_through_a_builder_name(name, tmp_path, monkeypatch):
    from taskemb_hub.space import _handlers

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(f"secret row {i},{i % 2}" for i in range(40)))
    with pytest.raises(DataError, match="not a Hub dataset id"):
        _handlers.dataset_info(name)


def test_an_upload_with_a_utf8_bom_reads_its_real_header(tmp_path):
    from taskemb_hub.space._uploads import read_header

    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftext,label\nhello,1\n".encode("utf-8"))
    assert read_header(path) == ["text", "label"]


def test_a_tiny_parquet_of_millions_of_rows_is_refused_before_loading(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taskemb_hub.space._uploads import UploadError, UploadLimits, check_data_file

    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"text": ["x" * 50] * 500_000, "label": [0, 1] * 250_000}), path, compression="zstd")
    assert path.stat().st_size < UploadLimits().max_file_bytes
    with pytest.raises(UploadError, match="rows, over this Space's limit"):
        check_data_file(path, UploadLimits())


def test_a_damaged_zip_is_a_message_not_an_unexpected_error(tmp_path):
    import zipfile

    from taskemb_hub.space._uploads import UploadError, UploadLimits, extract_adapter_zip

    path = tmp_path / "adapter.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("adapter_config.json", "{}" * 100)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"{}") + 10] ^= 0xFF  # corrupt the data: CRC mismatch
    path.write_bytes(bytes(raw))
    with pytest.raises(UploadError, match="cannot be unpacked"):
        extract_adapter_zip(path, tmp_path / "out", UploadLimits())


def test_the_registry_folder_of_the_server_is_never_shown():
    from taskemb_hub.space._handlers import public_source
    from taskemb_hub.space._uploads import scrub_paths as _redact  # the one scrubber every message goes through

    assert public_source("/srv/data/my-registry") == "my-registry"
    assert public_source("default") == "default" and public_source("index:me/idx") == "index:me/idx"
    assert "/srv/data" not in _redact("/srv/data/my-registry/broken: embedding files are unreadable")
