"""The registry index and the ranking matrix behind every selector: masks, float16 storage, memory maps."""

import pytest
import torch

from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.index import read_index, write_index
from taskemb_hub.ranking.selector import AutoSourceSelector

SIGNATURE = {"method": "bitfit", "synthetic": True}


def _entries(n: int, dim: int, seed: int = 0, clusters: int = 8):
    """Embeddings around a few task clusters plus a shared offset (as real PEFT embeddings have)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=g)
    offset = 3 * torch.randn(dim, generator=g)
    out = []
    for i in range(n):
        vector = offset + centres[i % clusters] + 0.7 * torch.randn(dim, generator=g)
        emb = TaskEmbedding(vector=vector, task=f"task-{i}", base_model="org/base", method="bitfit",
                            signature=SIGNATURE, step=100, train_size=1000 + i, metrics={"accuracy": i / n},
                            extra={"recipe": {"max_steps": 100}})
        out.append(RegistryEntry(f"org/task-{i}", emb, f"org/task-{i}@{i:040x}"))
    return out


@pytest.mark.parametrize("similarity", ["cosine", "centered"])
def test_leave_one_out_by_masking_equals_ranking_a_copy_without_the_entry(similarity):
    entries = _entries(60, 64)
    selector = AutoSourceSelector(entries, similarity=similarity)
    for i in (0, 17, 59):
        masked = selector.rank(entries[i].name)  # the target's own entry is left out by a mask
        copy = AutoSourceSelector([e for j, e in enumerate(entries) if j != i], similarity=similarity)
        expected = copy.rank(entries[i].embedding)
        assert masked.names == expected.names
        assert [r["score"] for r in masked] == pytest.approx([r["score"] for r in expected], abs=1e-5)


def test_the_centred_similarity_is_the_cosine_after_subtracting_the_mean():
    entries = _entries(30, 32)
    target = entries[0].embedding.vector + 0.1
    matrix = torch.stack([e.embedding.vector for e in entries]).double()
    mu = matrix.mean(0)
    explicit = torch.nn.functional.cosine_similarity(matrix - mu, (target.double() - mu)[None], dim=1)
    ranking = AutoSourceSelector(entries).rank(TaskEmbedding(vector=target, task="t", base_model="org/base",
                                                             method="bitfit", signature=SIGNATURE), similarity="centered")
    by_name = {r["source"]: r["score"] for r in ranking}
    assert [by_name[e.name] for e in entries] == pytest.approx(explicit.tolist(), abs=1e-5)


def test_a_float16_index_ranks_the_same_top10_as_float32(tmp_path):
    entries = _entries(2000, 512, seed=1, clusters=200)
    write_index(entries, tmp_path / "f16", dtype=torch.float16)
    write_index(entries, tmp_path / "f32", dtype=torch.float32)
    f16, f32 = (AutoSourceSelector.from_index(tmp_path / d) for d in ("f16", "f32"))
    agree = total = 0
    for i in range(0, 2000, 97):
        for similarity in ("cosine", "centered"):
            a = f16.rank(entries[i].name, top_k=10, similarity=similarity)
            b = f32.rank(entries[i].name, similarity=similarity)
            exact = {r["source"]: r["score"] for r in b}
            tenth = b[9]["score"]
            # every float16 pick is a float32 top-10 pick or ties with the 10th within float16's precision
            assert all(exact[name] >= tenth - 2e-3 for name in a.names), (i, similarity)
            agree += len(set(a.names) & set(b.names[:10]))
            total += 10
    assert agree / total >= 0.9  # measured here: the rest are near-ties of clustered tasks


def test_an_index_round_trips_the_metadata_and_keeps_vectors_memory_mapped(tmp_path):
    entries = _entries(50, 40)
    write_index(entries, tmp_path / "idx", failures=[("bob/broken", "HTTP 500 on taskemb.safetensors")])
    contents = read_index(tmp_path / "idx")
    (group,) = contents.groups.values()
    assert group.unit.dtype == torch.float16  # stored and scored as float16 blocks, never copied to float32
    assert contents.shas["org/task-3"] == f"{3:040x}"
    selector = AutoSourceSelector.from_index(tmp_path / "idx")
    ranking = selector.rank(entries[5].embedding, top_k=3)
    untouched = [e for e in selector.entries if e.name not in ranking.names]
    assert all(e._embedding is None for e in untouched)  # only the shown rows were ever materialised
    shown = next(e for e in selector.entries if e.name == ranking.names[0]).embedding
    original = next(e for e in entries if e.name == ranking.names[0]).embedding
    assert (shown.task, shown.train_size, shown.metrics, shown.extra["recipe"]) == \
        (original.task, original.train_size, original.metrics, original.extra["recipe"])
    assert torch.allclose(shown.vector, original.vector, rtol=2e-3, atol=2e-3)
    assert ("bob/broken", "HTTP 500 on taskemb.safetensors") in ranking.skipped


def test_rewriting_an_unchanged_index_writes_identical_bytes(tmp_path):
    write_index(_entries(20, 16), tmp_path / "a")
    again = read_index(tmp_path / "a").entries
    write_index(again, tmp_path / "b")
    for name in ("index.json", "README.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for path in (tmp_path / "a" / "signatures").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / "signatures" / path.name).read_bytes(), path.name


def test_an_entry_whose_vector_length_breaks_its_signature_is_skipped_not_fatal():
    entries = _entries(5, 16)
    bad = TaskEmbedding(vector=torch.ones(17), task="bad", base_model="org/base", method="bitfit", signature=SIGNATURE)
    selector = AutoSourceSelector(entries + [RegistryEntry("org/bad", bad, "org/bad")])
    ranking = selector.rank(entries[0].embedding)
    assert "org/bad" not in ranking.names and len(ranking) == 5
    assert "does not match its signature" in dict(ranking.skipped)["org/bad"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_shards_are_written_block_by_block_in_safetensors_own_layout(tmp_path, monkeypatch, dtype):
    import taskemb_hub.registries._index_files as index
    from safetensors.torch import load_file, save_file

    from taskemb_hub._ann import Projection

    monkeypatch.setattr(index, "_WRITE_BLOCK_ROWS", 7)  # 50 rows: seven full blocks and a partial one
    entries = _entries(50, 1100)  # wider than the projection: the shard carries `projected` too
    write_index(entries, tmp_path / "idx", dtype=dtype)
    [shard] = (tmp_path / "idx" / "signatures").glob("*.safetensors")
    stored = load_file(shard)  # any safetensors reader opens it

    vectors = torch.stack([e.embedding.vector for e in sorted(entries, key=lambda e: e.name)])
    norms = vectors.norm(dim=1)
    unit = (vectors / norms.unsqueeze(1)).to(dtype)
    assert torch.equal(stored["unit"], unit) and torch.equal(stored["norms"], norms)
    assert torch.allclose(stored["mean"], (unit.double() * norms.double().unsqueeze(1)).mean(0).float(), atol=1e-5)
    assert torch.equal(stored["projected"], Projection(1100)(unit).half()), "each block projected as a whole matrix"
    save_file(stored, str(tmp_path / "reference.safetensors"))
    assert shard.read_bytes() == (tmp_path / "reference.safetensors").read_bytes(), "save_file's bytes exactly"


def test_an_index_rebuilt_from_an_index_never_loads_its_vectors_into_the_entries(tmp_path):
    write_index(_entries(30, 48), tmp_path / "a")
    entries = read_index(tmp_path / "a").entries
    write_index(entries, tmp_path / "b")
    assert all(e._embedding is None for e in entries), "rows were streamed from the memory map, not kept per entry"


def test_a_shard_whose_rows_fail_to_load_leaves_no_file_behind(tmp_path):
    entries = _entries(10, 16)

    def broken():  # its stored float16 row is known, so the failure comes while the float32 shard is written
        raise OSError("disk gone")

    broken.stored_row = (torch.zeros(16, dtype=torch.float16), torch.tensor(1.0))
    lazy = RegistryEntry("org/zz-lazy", location="org/zz-lazy", signature_hash=entries[0].signature_hash, load=broken)
    with pytest.raises(OSError, match="disk gone"):
        write_index(entries + [lazy], tmp_path / "idx", dtype=torch.float32)
    assert list((tmp_path / "idx").iterdir()) == [tmp_path / "idx" / "signatures"]
    assert list((tmp_path / "idx" / "signatures").iterdir()) == [], "no half-written shard (nor a staging folder)"


@pytest.mark.parametrize("dtype", [torch.int8, None])
def test_a_failed_rewrite_leaves_the_existing_index_as_it_was(tmp_path, dtype):
    write_index(_entries(12, 16), tmp_path / "idx")
    before = {p.relative_to(tmp_path): p.read_bytes() for p in sorted((tmp_path / "idx").rglob("*")) if p.is_file()}

    def broken():
        raise OSError("disk gone")

    broken.stored_row = (torch.zeros(16, dtype=torch.float16), torch.tensor(1.0))
    lazy = RegistryEntry("org/zz-lazy", location="org/zz-lazy", signature_hash=_entries(1, 16)[0].signature_hash,
                         load=broken)
    with pytest.raises(ValueError if dtype else OSError):  # a bad dtype, or a row that fails to load midway
        write_index(_entries(20, 16, seed=1) + [lazy], tmp_path / "idx", dtype=dtype or torch.float32)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in sorted((tmp_path / "idx").rglob("*")) if p.is_file()}
    assert after == before
    assert len(read_index(tmp_path / "idx").entries) == 12
