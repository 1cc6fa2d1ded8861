"""Tasks load from task folders, local files (with column mapping) and Hub datasets."""

import json

import pandas as pd
import pytest

from taskemb_hub import DataError, load_task
from taskemb_hub.data import CLASSIFICATION, EXTRACTIVE_QA, REGRESSION

from conftest import DATA_DIR, needs_data


def test_jsonl_with_string_labels_becomes_classification(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"sentence": s, "y": y}) for s, y in [("a", "pos"), ("b", "neg"), ("c", "pos")]))
    task = load_task(path, text_column="sentence", label_column="y")
    assert task.task_type == CLASSIFICATION and task.labels == ["neg", "pos"]
    assert [r["label"] for r in task.splits["train"]] == [1, 0, 1]  # too few rows to hold any out


def test_float_labels_become_regression_and_pairs_are_kept(tmp_path):
    path = tmp_path / "sts.parquet"
    pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "score": [0.5, 3.2]}).to_parquet(path)
    task = load_task(path, text_column="s1", text_pair_column="s2", label_column="score")
    assert task.task_type == REGRESSION and task.pair
    assert task.splits["train"][1] == {"text": "b", "text_pair": "d", "label": 3.2}


def test_squad_style_json_becomes_extractive_qa(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [{"id": "1", "question": "q?", "context": "ctx", "answers": {"text": ["ctx"], "answer_start": [0]}},
            {"id": "2", "question": "q2?", "context": "ctx", "answers": {"text": [], "answer_start": []}}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    task = load_task(path)
    assert task.task_type == EXTRACTIVE_QA and task.splits["train"][1]["answers"]["text"] == []


def test_missing_file_and_folder_without_task_json(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_task(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="without task.json"):
        load_task(tmp_path)


def test_unknown_task_type(tmp_path):
    with pytest.raises(DataError, match="Unknown task type 'ner'"):
        load_task(tmp_path / "x.csv", task_type="ner")


@needs_data
@pytest.mark.parametrize("name,kind,pair", [("rotten_tomatoes", CLASSIFICATION, False),
                                            ("vitaminc", CLASSIFICATION, True), ("ropes", EXTRACTIVE_QA, False)])
def test_offline_suite_task_folders(name, kind, pair):
    task = load_task(DATA_DIR / name)
    meta = json.loads((DATA_DIR / name / "task.json").read_text())
    assert task.task_type == kind and task.pair == pair
    assert len(task.splits["train"]) == meta["sizes"]["train"]
    assert len(task.train_rows(100, seed=1)) == 100
