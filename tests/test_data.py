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


# ---- files that cannot be read as a task: one DataError naming the problem and the fix ----------------

def test_empty_file_is_refused(tmp_path):
    for name in ("empty.csv", "empty.jsonl"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(DataError, match=r"is empty.*Add rows"):
            load_task(tmp_path / name)


def test_header_only_csv_is_refused(tmp_path):
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(DataError, match=r"has no rows.*Add rows"):
        load_task(tmp_path / "header.csv")


def test_non_utf8_file_is_refused_with_the_fix(tmp_path):
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\xe9 cr\xe8me,1\nok,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8.*byte 0x[0-9a-f]{2}.*iconv"):
        load_task(tmp_path / "latin.csv")


# ---- the label set -----------------------------------------------------------------------------------

def test_labels_come_from_the_training_split_not_an_unlabelled_test_split():
    """GLUE-style test splits are labelled -1 (no label): that is not a class."""
    from taskemb_hub.data import task_from_columns

    splits = {"train": [{"text": "a", "label": 0}, {"text": "b", "label": 1}, {"text": "c", "label": 1}],
              "validation": [{"text": "d", "label": 1}],
              "test": [{"text": "e", "label": -1}, {"text": "f", "label": -1}]}
    task = task_from_columns("glue", splits, {"text": "text", "text_pair": None, "label": "label"}, None)
    assert task.labels == ["0", "1"] and task.num_labels == 2
    assert [r["label"] for r in task.splits["train"]] == [0, 1, 1]
    assert "test" not in task.splits, "a split with no labelled row is dropped"
    assert task.eval_rows() == [{"text": "d", "label": 1}]


def test_class_label_names_are_the_labels():
    import datasets

    from taskemb_hub.data import task_from_columns

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "neutral", "positive"])})
    train = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 2, 0]}, features=features)
    test = datasets.Dataset.from_dict({"text": ["d"], "label": [-1]}, features=features)
    task = task_from_columns("x", {"train": train, "test": test}, {"text": "text", "text_pair": None, "label": "label"},
                             None)
    assert task.labels == ["negative", "neutral", "positive"]
    assert [r["label"] for r in task.splits["train"]] == [0, 2, 0]
    assert "test" not in task.splits


# ---- cells and labels that were silently misread (issue 21) ----------------------------------------------
def _csv(tmp_path, rows, name="t.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_empty_text_cells_are_left_out_with_a_warning_not_trained_on_as_none(tmp_path):
    rows = [{"text": f"row {i}" if i % 3 else None, "label": i % 2} for i in range(60)]
    rows[1]["text"] = "   "
    with pytest.warns(UserWarning, match=r"21 train row\(s\) have an empty text cell \('text'\); they were left out"):
        task = load_task(_csv(tmp_path, rows))
    texts = [r["text"] for split in task.splits.values() for r in split]
    assert len(texts) == 39 and "None" not in texts and all(t.strip() for t in texts)


def test_an_empty_second_text_leaves_the_row_out(tmp_path):
    rows = [{"a": f"x{i}", "b": None if i == 5 else f"y{i}", "label": i % 2} for i in range(30)]
    with pytest.warns(UserWarning, match=r"1 train row\(s\) have an empty text cell \('a' or 'b'\)"):
        task = load_task(_csv(tmp_path, rows), text_column="a", text_pair_column="b")
    assert all(r["text_pair"] != "None" for split in task.splits.values() for r in split)


def test_minus_one_labels_in_a_file_are_unlabelled_rows_not_a_class(tmp_path):
    rows = [{"text": f"row {i}", "label": [0, 1, -1][i % 3]} for i in range(60)]
    with pytest.warns(UserWarning, match=r"20 training row\(s\) labelled -1 .* were left out"):
        task = load_task(_csv(tmp_path, rows))
    assert task.labels == ["0", "1"] and task.num_labels == 2
    assert {r["label"] for split in task.splits.values() for r in split} == {0, 1}
    assert sum(len(split) for split in task.splits.values()) == 40


def test_minus_one_and_one_stay_a_binary_task(tmp_path):
    rows = [{"text": f"row {i}", "label": [-1, 1][i % 2]} for i in range(40)]
    task = load_task(_csv(tmp_path, rows))
    assert task.labels == ["-1", "1"]


def test_class_labels_with_one_fraction_are_refused_not_made_regression(tmp_path):
    rows = [{"text": f"row {i}", "label": float(i % 2)} for i in range(60)]
    rows[7]["label"] = 0.5
    with pytest.raises(DataError, match=r"classes \(0, 1\) in 59 rows but 1 fractional value\(s\) \(0.5\).*"
                                        r"--task-type regression"):
        load_task(_csv(tmp_path, rows))
    assert load_task(_csv(tmp_path, rows), task_type="regression").task_type == REGRESSION  # said explicitly


@pytest.mark.parametrize("builder", ["csv", "json", "parquet", "text", "pandas", "CSV"])
def test_a_datasets_builder_name_is_refused_not_read_from_the_working_folder(tmp_path, monkeypatch, builder):
    monkeypatch.chdir(tmp_path)
    _csv(tmp_path, [{"text": f"secret {i}", "label": i % 2} for i in range(40)], name="private.csv")
    with pytest.raises(DataError, match=r"names a loader of the datasets library.*'owner/name'"):
        load_task(builder)


# ---- columns of the wrong kind are refused, not stringified (issue 21, found by tests/fuzz_inputs.py) ----
def test_a_header_naming_one_column_twice_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("text,text,label\n" + "\n".join(f"a {i},b {i},{i % 2}" for i in range(40)))
    with pytest.raises(DataError, match=r"dup.csv: the header names column\(s\) \['text'\] more than once"):
        load_task(path)


@pytest.mark.parametrize("texts, kind", [([{"a": i} for i in range(40)], "record"), (list(range(40)), "number")])
def test_a_text_column_of_records_or_numbers_is_refused(tmp_path, texts, kind):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"text": texts, "label": [i % 2 for i in range(40)]}).to_parquet(path)
    with pytest.raises(DataError, match=f"the text column 'text' holds {kind} values, not text"):
        load_task(path)


def test_a_label_column_of_lists_is_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"t {i}", "label": [1, 0]}) for i in range(40)))
    with pytest.raises(DataError, match="the label column 'label' holds .* values; each row needs one label"):
        load_task(path)


def test_labels_mixing_words_and_numbers_are_refused(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("text,label\n" + "\n".join(f"t {i},{'pos' if i % 3 else 1.5}" for i in range(40)))
    with pytest.raises(DataError, match=r"mixes numbers \(1.5\) and words \(pos\)"):
        load_task(path)


def test_a_csv_text_column_of_numbers_is_read_as_texts(tmp_path):
    """CSV has no types: pandas guesses int64 for texts such as zip codes; parquet and JSON say what a number is."""
    path = tmp_path / "codes.csv"
    path.write_text("text,label\n" + "\n".join(f"{10000 + i},{i % 2}" for i in range(40)))
    task = load_task(path)
    assert task.splits["train"][0]["text"].isdigit()
