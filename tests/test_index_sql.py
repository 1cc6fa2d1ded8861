"""An index queried with SQL (DuckDB) without the package: the `projection` column ranks as the projected first stage."""

import numpy as np
import pytest
import torch

from taskemb_hub._ann import PROJECTION_DIM, Projection, candidate_count
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.index import read_index, write_index
from taskemb_hub.ranking.selector import AutoSourceSelector

duckdb = pytest.importorskip("duckdb")

SIGNATURE = {"method": "bitfit", "synthetic": True}
DIM = 1536  # above PROJECTION_DIM: the stored projection is a real count sketch, not a padded copy


def readme_projection(vector, dim_out=1024, seed=0):
    """The README's numpy-only projection of a target (what `_ann.Projection` computes)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vector))
    signs = rng.choice(np.float32([-1.0, 1.0]), len(vector))
    x = np.asarray(vector, np.float32)[order] * signs
    return np.pad(x, (0, -len(x) % dim_out)).reshape(-1, dim_out).sum(0)


def _emb(name, vector):
    return TaskEmbedding(vector=vector, task=name, base_model="org/base", method="bitfit", signature=SIGNATURE,
                         step=100, train_size=1000, metrics={"accuracy": 0.5}, extra={"recipe": {"max_steps": 100}})


@pytest.fixture(autouse=True)
def _assembled_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKEMB_HUB_INDEX_CACHE", str(tmp_path / "assembled"))  # never the user's HF_HOME


@pytest.fixture(scope="module")
def big_index(tmp_path_factory):
    """20,500 entries (the projection stage starts at 20,000 rows): 256 near the target at distinct cosines
    0.95, 0.9485, ... and the rest random, so that the 256 candidates are the near ones under either rounding."""
    g = torch.Generator().manual_seed(0)
    target = torch.nn.functional.normalize(torch.randn(DIM, generator=g), dim=0)
    vectors = torch.randn(20_500, DIM, generator=g)
    for i in range(256):
        u = vectors[i] - (vectors[i] @ target) * target
        c = 0.95 - 0.0015 * i
        vectors[i] = c * target + (1 - c * c) ** 0.5 * torch.nn.functional.normalize(u, dim=0)
    vectors *= torch.rand(len(vectors), 1, generator=g) + 0.5
    entries = [RegistryEntry(f"org/t{i:05d}", _emb(f"t{i}", v), f"org/t{i:05d}@{i:040x}") for i, v in enumerate(vectors)]
    folder = write_index(entries, tmp_path_factory.mktemp("sql") / "index")
    return folder, target, {e.name: v for e, v in zip(entries, vectors)}


def test_the_readme_numpy_projection_is_the_package_projection():
    v = torch.randn(DIM)
    assert np.allclose(readme_projection(v.numpy()), Projection(DIM)(v).numpy(), atol=1e-5)
    small = torch.randn(384)  # a row no longer than 1,024 is a signed permutation, padded with zeros
    assert np.allclose(readme_projection(small.numpy()), Projection(384)(small).numpy(), atol=1e-6)


def test_sql_top_candidates_are_the_projection_stage_candidates_and_rerank_to_rank(big_index):
    folder, target, vectors = big_index
    contents = read_index(folder)
    [(sig, group)] = contents.groups.items()
    names = [contents.entries[r].name for r in group.rows]
    count = candidate_count(10, 0)
    ranking = AutoSourceSelector.from_index(folder).rank(_emb("target", target), top_k=10, similarity="cosine",
                                                          ranker="peft")
    assert ranking.search == "projection"  # rank() really took the projected first stage here

    query = readme_projection(target.numpy()).tolist()
    sql = (f"SELECT name, array_cosine_similarity(projection::FLOAT[{PROJECTION_DIM}], ?::FLOAT[{PROJECTION_DIM}]) AS score "
           f"FROM read_parquet('{folder}/signatures/**/*.parquet') WHERE signature = ? ORDER BY score DESC")
    rows = duckdb.execute(sql, [query, sig]).fetchall()
    assert len(rows) == len(names)
    stage = group._projection_candidates(target, "cosine", None, count)
    assert {name for name, _ in rows[:count]} == {names[i] for i in stage.tolist()}

    # the SQL cosine is the stage's approximate score, up to its float16 query rounding
    approx = dict(zip(names, group._projected_scores(target, "cosine").tolist()))
    assert max(abs(score - approx[name]) for name, score in rows) < 3e-3

    # re-scoring the SQL candidates exactly (float64 cosine of the full vectors) gives rank()'s top-10
    candidates = [name for name, _ in rows[:count]]
    exact = torch.stack([vectors[n] for n in candidates]).double() @ target.double()
    exact /= torch.stack([vectors[n] for n in candidates]).double().norm(dim=1)
    top = [candidates[i] for i in torch.argsort(exact, descending=True)[:10].tolist()]
    assert top == ranking.names
    assert [r["score"] for r in ranking] == pytest.approx(sorted(exact.tolist(), reverse=True)[:10], abs=1e-3)


def test_the_projection_column_is_validated(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taskemb_hub.errors import RegistryError

    entries = [RegistryEntry(f"org/t{i}", _emb(f"t{i}", torch.randn(64)), f"org/t{i}@{i:040x}") for i in range(3)]
    folder = write_index(entries, tmp_path / "idx")
    [path] = (folder / "signatures").glob("*.parquet")
    table = pq.read_table(path)
    assert table.schema.field("projection").type == pa.list_(pa.float32(), PROJECTION_DIM)
    flat = table.column("projection").combine_chunks().flatten().to_numpy(zero_copy_only=False).copy()
    flat[5] = np.nan
    broken = table.set_column(table.schema.get_field_index("projection"), "projection",
                              pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), PROJECTION_DIM))
    pq.write_table(broken, path)
    with pytest.raises(RegistryError, match="'projection' column holds nulls or NaN") as err:
        read_index(folder)
    assert "\n" not in str(err.value)
    short = table.set_column(table.schema.get_field_index("projection"), "projection",
                             pa.array([[0.0] * 8] * 3, pa.list_(pa.float32(), 8)))
    pq.write_table(short, path)
    with pytest.raises(RegistryError, match=r"fixed_size_list<float32>\[1024\]"):
        read_index(folder)
