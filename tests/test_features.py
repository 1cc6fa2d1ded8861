"""Extractive QA reads long contexts through overlapping windows, as transformers' QA examples do."""

import numpy as np
import pytest
from transformers import AutoTokenizer

from taskemb_hub.data import EXTRACTIVE_QA, TaskData, load_task
from taskemb_hub.tuning.features import encode_rows, qa_predictions

from conftest import DATA_DIR, needs_data

FILLER = "the river is very fine and the city is very good . "


def long_qa_rows():
    """Answers placed early, in the middle and at the end of a context far longer than one window."""
    rows = []
    for i, where in enumerate((0, 12, 24)):
        parts = [FILLER] * 25
        parts.insert(where, "it was born in paris . ")
        context = "".join(parts)
        rows.append({"id": str(i), "question": "where was it born?", "context": context,
                     "answers": {"text": ["paris"], "answer_start": [context.index("paris")]}})
    return rows


def answer_windows(feats, rows):
    """Row index -> the context text that each of its labelled windows points at."""
    found = {i: [] for i in range(len(rows))}
    for f in feats:
        if f["start_positions"]:
            context, offsets = rows[f["example_index"]]["context"], f["offset_mapping"]
            found[f["example_index"]].append(context[offsets[f["start_positions"]][0]:offsets[f["end_positions"]][1]])
    return found


def test_an_answer_beyond_the_first_window_is_labelled_in_a_later_one(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = long_qa_rows()
    task = TaskData(name="long-qa", task_type=EXTRACTIVE_QA, splits={"train": rows})
    feats = encode_rows(task, rows, tokenizer, max_length=48, for_eval=True)  # + offsets, to read the labels back
    assert len(feats) > len(rows), "a long context becomes several windows"
    assert all(len(f["input_ids"]) <= 48 for f in feats)
    found = answer_windows(feats, rows)
    assert all(found.values()), f"every answer is labelled in some window: {found}"
    assert {a for answers in found.values() for a in answers} == {"paris"}, "and the labels point at the answer"


def test_prediction_takes_the_best_span_over_all_windows(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = long_qa_rows()[2:]  # the answer sits near the end of the context
    task = TaskData(name="long-qa", task_type=EXTRACTIVE_QA, splits={"validation": rows})
    feats = encode_rows(task, rows, tokenizer, max_length=48, for_eval=True)
    labelled = encode_rows(task, rows, tokenizer, max_length=48)
    starts, ends = [], []
    for f, lab in zip(feats, labelled):  # a model that is sure of the answer where the window holds it
        s, e = np.full(len(f["input_ids"]), -5.0), np.full(len(f["input_ids"]), -5.0)
        s[0] = e[0] = 0.0  # "no answer" is the best guess of windows without it
        if lab["start_positions"]:
            s[lab["start_positions"]], e[lab["end_positions"]] = 5.0, 5.0
        starts.append(s)
        ends.append(e)
    assert qa_predictions(feats, rows, starts, ends) == ["paris"]


@needs_data
@pytest.mark.parametrize("name", ["ropes", "quoref", "disfl_qa"])
def test_every_answerable_row_of_the_suite_is_labelled_in_some_window(name):
    from taskemb_hub.base_model import resolve_base_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(None)[0])
    task = load_task(DATA_DIR / name)
    rows = task.train_rows(400, seed=0)
    feats = encode_rows(task, rows, tokenizer, max_length=128)
    labelled = {f["example_index"] for f in feats if f["start_positions"]}
    answerable = [i for i, r in enumerate(rows) if r["answers"]["text"]]
    # first-window-only encoding labelled 335/400 (ropes), 173/400 (quoref), 60/274 (disfl_qa) as "no answer"
    assert [i for i in answerable if i not in labelled] == []
