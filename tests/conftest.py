"""Shared fixtures: a tiny random BERT saved as a local base model, small synthetic tasks, a local Hub; and what keeps
the tests independent of their order: caches kept apart from the user's, the same random draws in any order."""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

import numpy
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

from taskemb_hub.data import CLASSIFICATION, EXTRACTIVE_QA, REGRESSION, TaskData  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks"
needs_data = pytest.mark.skipif(
    not (DATA_DIR / "manifest.json").is_file(),
    reason=f"the offline task suite is not at {DATA_DIR} (it ships with CI and the dev machines, not with a clone)",
)


@pytest.fixture(scope="session", autouse=True)
def _caches_outside_home(tmp_path_factory):
    """The index and ANN caches in this run's temporary folder, never the user's `HF_HOME`: a graph or an assembled
    index left there by another run (or another checkout) would be read back instead of built."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for variable, name in (("TASKEMB_HUB_INDEX_CACHE", "assembled"), ("TASKEMB_HUB_ANN_CACHE", "ann")):
            monkeypatch.setenv(variable, str(tmp_path_factory.mktemp(name)))
        yield


def _seed_global_generators(node_id: str) -> None:
    # A seed of the test's own (its id's CRC-32), not 0: tests seed their own `torch.Generator`s with 0, 1, 2..., and
    # an unseeded `torch.randn` drawing the very numbers of one of them would make a "random" vector a duplicate.
    seed = zlib.crc32(node_id.encode())
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


@pytest.fixture(scope="module", autouse=True)
def _same_draws_for_each_module(request):
    """Module fixtures that draw from the global generators get the same numbers whichever files ran before."""
    _seed_global_generators(request.node.nodeid)


@pytest.fixture(autouse=True)
def _same_draws_for_each_test(request):
    """A test that draws from `torch.randn` & co. without a generator sees the same numbers alone and in a full
    run, in any order (unseeded, its draws would depend on how many numbers the tests before it took)."""
    _seed_global_generators(request.node.nodeid)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A `local_hub.LocalHub` that `huggingface_hub`, `datasets` and `evaluate` talk to for this test only."""
    from local_hub import local_hub_fixture

    yield from local_hub_fixture(monkeypatch, tmp_path)


WORDS = ("good great fine bad awful poor movie hotel food room staff the a is was very not and it this that "
         "where who what paris london city river born lives question answer yes no true false").split()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with random weights and a small word-piece vocabulary."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(WORDS) + list("abcdefghijklmnopqrstuvwxyz.,?!0123456789")
    (folder / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertForMaskedLM(config).bert.save_pretrained(folder)
    return str(folder)


def _sentiment_rows(n: int, seed: int, pair: bool = False) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        word = rng.choice(["good", "great", "fine"] if label else ["bad", "awful", "poor"])
        row = {"text": f"the {rng.choice(['movie', 'hotel', 'food'])} was very {word}", "label": label}
        if pair:
            row["text_pair"] = f"it is {'not ' if rng.random() < 0.5 else ''}{word}"
        rows.append(row)
    return rows


@pytest.fixture
def sentiment_task() -> TaskData:
    return TaskData(name="toy-sentiment", task_type=CLASSIFICATION, labels=["neg", "pos"],
                    splits={"train": _sentiment_rows(64, 0), "validation": _sentiment_rows(16, 1)})


@pytest.fixture
def pair_task() -> TaskData:
    return TaskData(name="toy-pair", task_type=CLASSIFICATION, labels=["a", "b"], pair=True,
                    splits={"train": _sentiment_rows(48, 2, pair=True), "validation": _sentiment_rows(8, 3, pair=True)})


@pytest.fixture
def regression_task() -> TaskData:
    rows = [{"text": r["text"], "label": float(r["label"]) + 0.25} for r in _sentiment_rows(48, 4)]
    return TaskData(name="toy-regression", task_type=REGRESSION, splits={"train": rows, "validation": rows[:8]})


@pytest.fixture
def qa_task() -> TaskData:
    rng = random.Random(5)
    rows = []
    for i in range(40):
        city = rng.choice(["paris", "london"])
        context = f"this city is {city} and the river is very fine"
        answerable = i % 4 != 0
        rows.append({"id": str(i), "question": "where was it?" if answerable else "who was born?", "context": context,
                     "answers": {"text": [city], "answer_start": [context.index(city)]} if answerable
                     else {"text": [], "answer_start": []}})
    return TaskData(name="toy-qa", task_type=EXTRACTIVE_QA, splits={"train": rows, "validation": rows[:8]})
