"""Review fixes (issue 22): an index is anyone's file, so nothing read from one may serve another."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from taskemb_hub.registries.index import write_index
from taskemb_hub.ranking.selector import AutoSourceSelector

from test_index_webhooks import _emb, _entries


def test_an_index_listing_the_same_chunk_ids_over_other_vectors_never_changes_another_indexs_ranking(
        tmp_path, monkeypatch):
    monkeypatch.setenv("TASKEMB_HUB_INDEX_CACHE", str(tmp_path / "assembled"))
    legit = write_index(_entries(600), tmp_path / "legit", chunk_rows=256)
    shutil.copytree(legit, tmp_path / "evil")  # the same index.json, so the same chunk ids ...
    for file in Path(tmp_path / "evil" / "signatures").rglob("*.safetensors"):  # ... over other vectors
        tensors = load_file(file)
        tensors["unit"] = torch.flip(tensors["unit"], [1]).contiguous()
        save_file(tensors, file)
    target = _emb("q", torch.randn(32, generator=torch.Generator().manual_seed(5)) + 2)
    before = AutoSourceSelector.from_index(legit).rank(target, top_k=5).names
    shutil.rmtree(tmp_path / "assembled")
    evil = AutoSourceSelector.from_index(tmp_path / "evil").rank(target, top_k=5).names  # read first this time
    assert evil != before  # the hostile copy's own vectors rank (the check below means something)
    assert AutoSourceSelector.from_index(legit).rank(target, top_k=5).names == before
