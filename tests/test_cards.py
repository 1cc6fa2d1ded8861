"""The dataset card in cards/ describes the committed ground-truth files, and the Hub tools read them."""

import pytest

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "cards" / "transfer-matrix.md"
RESULTS = ROOT / "benchmarks" / "results"
GROUND_TRUTHS = {"limited": RESULTS / "transfer_limited.jsonl", "small": RESULTS / "transfer_small.jsonl"}


def documented_fields() -> list[str]:
    section = CARD.read_text().split("## Fields", 1)[1].split("\n## ", 1)[0]
    return [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]


def test_card_metadata_points_the_hub_viewer_at_the_file():
    from huggingface_hub import DatasetCard

    meta = DatasetCard.load(CARD).data.to_dict()
    assert meta["license"] == "apache-2.0" and "taskemb-hub" in meta["tags"]
    assert {c["config_name"]: c["data_files"] for c in meta["configs"]} == {
        name: path.name for name, path in GROUND_TRUTHS.items()}


@pytest.mark.parametrize("regime", sorted(GROUND_TRUTHS))
def test_documented_fields_are_the_columns_datasets_loads(tmp_path, regime):
    from datasets import load_dataset

    rows = load_dataset("json", data_files=str(GROUND_TRUTHS[regime]), split="train", cache_dir=str(tmp_path))
    assert sorted(rows.column_names) == sorted(documented_fields())
    assert "base" in set(rows["source"])  # the reference run every relative gain needs
    assert all(0.0 <= s <= 1.0 for s in rows["score"])
