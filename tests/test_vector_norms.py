"""Vectors that cannot be right (all zeros, or a norm their signature rules out) are refused wherever an
entry is read: a local folder, the Hub, an index; the reason goes to `skipped`, and no such entry moves
the `centered` mean (issue 21)."""

import pytest
import torch

from taskemb_hub.embedding import TaskEmbedding, norm_problem
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.index import IndexRegistry, read_index, write_index
from taskemb_hub.registries.local import LocalRegistry
from taskemb_hub.ranking.selector import AutoSourceSelector


MODULES = {f"encoder.layer.{i}.output.dense": [8] for i in range(4)}
SIGNATURE = {"method": "bitfit", "modules": MODULES, "per_module_norm": True}
BASE = "test/tiny-bert"


def unit_blocks(seed: int, moved: int = 4) -> torch.Tensor:
    """A vector as `concat_blocks` makes it: `moved` unit-norm blocks of 8, the rest zero."""
    g = torch.Generator().manual_seed(seed)
    blocks = [torch.nn.functional.normalize(torch.randn(8, generator=g), dim=0) if i < moved else torch.zeros(8)
              for i in range(len(MODULES))]
    return torch.cat(blocks)


def emb(task: str, vector: torch.Tensor) -> TaskEmbedding:
    return TaskEmbedding(vector=vector, task=task, base_model=BASE, method="bitfit", signature=dict(SIGNATURE), step=100)


GOOD = {f"good-{i}": unit_blocks(i, moved=1 + i % 4) for i in range(5)}
BAD = {"zeros": torch.zeros(32), "huge": 1000 * unit_blocks(99), "tiny": 0.01 * unit_blocks(98)}


def test_the_norm_bounds_follow_the_signature():
    assert norm_problem(1.0, SIGNATURE) is None and norm_problem(2.0, SIGNATURE) is None  # 1 .. sqrt(4)
    assert "all zeros" in norm_problem(0.0, SIGNATURE)
    assert "all zeros" in norm_problem(float("nan"), SIGNATURE)
    huge = norm_problem(2000.0, SIGNATURE)
    assert "does not fit its signature" in huge and "between 1 and 2" in huge and "\n" not in huge
    assert norm_problem(2000.0, {"method": "prompt", "pooling": "mean"}) is None  # no known norm: only zeros refused
    for name, vector in GOOD.items():
        emb(name, vector).check_usable()


def test_a_local_folder_skips_zero_and_off_norm_entries(tmp_path):
    for name, vector in {**GOOD, **BAD}.items():
        emb(name, vector).save(tmp_path / name)  # written as a copied or edited folder would be, not through add()
    registry = LocalRegistry(tmp_path)
    assert sorted(e.name for e in registry.entries()) == sorted(GOOD)
    reasons = dict(registry.skipped)
    assert set(reasons) == set(BAD)
    assert "all zeros" in reasons["zeros"] and "does not fit its signature" in reasons["huge"]
    assert "does not fit its signature" in reasons["tiny"]
    selector = AutoSourceSelector.from_local(tmp_path)
    assert {n for n, _ in selector.skipped} == set(BAD)


def test_an_index_row_with_a_forged_norm_is_skipped_and_does_not_move_the_mean(tmp_path):
    good = [RegistryEntry(name, emb(name, v), f"{name}@{i:040x}") for i, (name, v) in enumerate(GOOD.items())]
    bad = [RegistryEntry(name, emb(name, v), f"{name}@{9:040x}") for name, v in BAD.items()]  # as a third party's
    write_index(good + bad, tmp_path / "index", dtype=torch.float32)
    contents = read_index(tmp_path / "index")
    assert sorted(e.name for e in contents.entries) == sorted(GOOD)
    assert {name for name, _ in contents.refused} == set(BAD)
    (group,) = contents.groups.values()
    expected = torch.stack(list(GOOD.values())).mean(0)
    assert torch.allclose(group.mean, expected, atol=1e-5)  # was: pulled ~200 units towards the huge row
    registry = IndexRegistry(tmp_path / "index")
    registry.read()
    assert {name for name, _ in registry.skipped} == set(BAD)
    selector = AutoSourceSelector.from_index(tmp_path / "index", similarity="centered")
    clean = AutoSourceSelector([RegistryEntry(n, emb(n, v)) for n, v in GOOD.items()], similarity="centered")
    target = emb("target", unit_blocks(7))
    assert selector.rank(target).names == clean.rank(target).names


def test_a_forged_index_mean_is_computed_again(tmp_path):
    from safetensors.torch import load_file, save_file

    good = [RegistryEntry(name, emb(name, v), f"{name}@{i:040x}") for i, (name, v) in enumerate(GOOD.items())]
    write_index(good, tmp_path / "index", dtype=torch.float32)
    (shard,) = (tmp_path / "index" / "signatures").glob("*.safetensors")
    tensors = load_file(shard)
    tensors["mean"] = torch.full_like(tensors["mean"], 100.0)  # longer than any vector of this signature can be
    save_file(tensors, shard)
    (group,) = read_index(tmp_path / "index").groups.values()
    assert torch.allclose(group.mean, torch.stack(list(GOOD.values())).mean(0), atol=1e-5)


def test_the_hub_skips_zero_and_off_norm_entries(hub, tmp_path):
    import json

    from huggingface_hub import CommitOperationAdd, HfApi

    from taskemb_hub.cards import build_card

    api = HfApi(endpoint=hub.endpoint)
    for name, vector in {**GOOD, **BAD}.items():
        entry = emb(name, vector)
        folder = entry.save(tmp_path / "upload" / name)
        files = {"taskemb.safetensors": (folder / "taskemb.safetensors").read_bytes(),
                 "taskemb.json": (folder / "taskemb.json").read_bytes(), "README.md": str(build_card(entry)).encode()}
        api.create_repo(f"alice/{name}", exist_ok=True)
        api.create_commit(f"alice/{name}", [CommitOperationAdd(path_in_repo=k, path_or_fileobj=v) for k, v in files.items()],
                          commit_message="test")
    assert json.loads((tmp_path / "upload" / "huge" / "taskemb.json").read_text())["dim"] == 32
    selector = AutoSourceSelector.from_hub(similarity="centered")
    assert sorted(e.name for e in selector.entries) == sorted(f"alice/{n}" for n in GOOD)
    reasons = dict(selector.skipped)
    assert set(reasons) == {f"alice/{n}" for n in BAD}
    assert "all zeros" in reasons["alice/zeros"] and "does not fit its signature" in reasons["alice/huge"]
