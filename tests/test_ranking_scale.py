"""Ranking large registries: leave-one-out by masking, float16 rows, and the approximate first stages
(projection, HNSW index) whose candidates are re-ranked exactly (taskemb_hub/_ann.py, _vectors.py).

Small random data throughout; the thresholds are lowered where a test needs a path to be chosen.
"""

import numpy as np
import pytest
import torch

from taskemb_hub import TaskEmbedding
from taskemb_hub import _ann, _vectors
from taskemb_hub._vectors import VectorGroup
from taskemb_hub.tuning.recipe import recipe_warnings
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.index import read_index, write_index
from taskemb_hub.ranking.selector import AutoSourceSelector

SIGNATURE = {"method": "bitfit", "synthetic": True}
SIMILARITIES = ("cosine", "centered")
needs_faiss = pytest.mark.skipif(not _ann.ann_available(),
                                 reason="faiss is not installed: `pip install -e '.[ann]'` (CI installs it via .[test])")


def emb(name, vector, recipe=None):
    return TaskEmbedding(vector=torch.as_tensor(vector, dtype=torch.float32), task=name, base_model="m",
                         method="bitfit", signature=SIGNATURE, extra={"recipe": recipe} if recipe else {})


def clustered(n, dim, seed=0, per_cluster=10):
    """Rows in clusters of `per_cluster` around centres in a 16-dim subspace, plus a common direction and
    noise: a registry of tasks tuned several times. Queries (returned second) are new members of clusters."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(16, dim, generator=g)
    common = torch.randn(dim, generator=g) * 3
    centres = torch.randn(n // per_cluster + 1, 16, generator=g)

    def members(idx):
        z = centres[idx] + 0.6 * torch.randn(len(idx), 16, generator=g)
        return z @ basis + common + 3 * torch.randn(len(idx), dim, generator=g)

    return members(torch.arange(n) // per_cluster), members(torch.randint(0, len(centres), (12,), generator=g))


def selector_of(rows, similarity="cosine"):
    # the HNSW graphs are per similarity (cosine / centred): these tests name the one they build
    return AutoSourceSelector([RegistryEntry(f"e{i}", emb(f"e{i}", v)) for i, v in enumerate(rows)], similarity=similarity)


@pytest.fixture
def no_float32_copy(monkeypatch):
    """Keep float16 rows float16 (small groups are otherwise converted once), as a large index is."""
    monkeypatch.setattr(_vectors, "_FLOAT32_COPY_BYTES", 0)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_masked_leave_one_out_equals_ranking_without_the_entry(similarity, tmp_path, no_float32_copy):
    rows, _ = clustered(300, 64)
    entries = [RegistryEntry(f"e{i}", emb(f"e{i}", v)) for i, v in enumerate(rows)]
    copy_based = AutoSourceSelector(entries[:7] + entries[8:]).rank(entries[7].embedding, similarity=similarity)
    masked = AutoSourceSelector(entries).rank("e7", similarity=similarity)
    assert masked.names == copy_based.names and "e7" not in masked.names
    # the masked mean is the stored mean less the entry: float32 rounding apart, the same scores
    assert [r["score"] for r in masked] == pytest.approx([r["score"] for r in copy_based], abs=3e-6)
    # the same through a float16 index (memory-mapped rows, stored mean), top 10 by the bounded float16 path
    contents = read_index(write_index(entries, tmp_path / "index"))
    from_index = AutoSourceSelector(contents.entries, groups=contents.groups, similarity="cosine").rank("e7", top_k=10, similarity=similarity)
    assert from_index.search == "exact" and from_index.names == copy_based.names[:10]
    assert [r["score"] for r in from_index] == pytest.approx([r["score"] for r in copy_based][:10], abs=2e-3)


def test_float16_rows_give_the_float32_top10_on_random_data(no_float32_copy):
    g = torch.Generator().manual_seed(1)
    rows, queries = torch.randn(4000, 512, generator=g), torch.randn(20, 512, generator=g)
    full = VectorGroup.from_vectors(list(range(len(rows))), list(rows))
    half = VectorGroup(rows=full.rows, unit=full.unit.half(), norms=full.norms, mean=full.mean)
    for similarity in SIMILARITIES:
        agree = []
        for q in queries:
            exact32 = torch.topk(full.scores(q, similarity), 10)
            positions, scores = half.top(q, similarity, 10)
            agree.append(len(set(positions.tolist()) & set(exact32.indices.tolist())) / 10)
            assert (scores - exact32.values).abs().max() < 2e-3  # float16 rows: ~3 decimal digits
        assert np.mean(agree) >= 0.95, (similarity, agree)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_float16_product_filter_keeps_the_exact_top10(similarity, no_float32_copy):
    """The float16 kernel's error bound drops rows only when they cannot reach the k-th best."""
    rows, queries = clustered(3000, 256, seed=2)
    group = VectorGroup.from_vectors(list(range(len(rows))), list(rows))
    group.unit = group.unit.half()
    keep = torch.ones(len(rows), dtype=torch.bool)
    keep[[3, 50]] = False
    for q in queries:
        reference = group.scores(q, similarity, keep)
        positions, scores = group.top(q, similarity, 10, keep)
        assert positions.tolist() == torch.sort(reference, descending=True, stable=True).indices[:10].tolist()
        assert scores.tolist() == pytest.approx(reference[positions].tolist(), abs=1e-6)


@pytest.mark.parametrize("search", ["projection", pytest.param("ann", marks=needs_faiss)])
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_approximate_first_stage_with_exact_rerank_returns_the_exact_top10(search, similarity):
    rows, queries = clustered(3000, 2048, seed=3)  # 2,048 values: projected to 1,024
    selector = selector_of(rows)
    for q in queries:
        target = emb("q", q)
        exact = selector.rank(target, top_k=10, similarity=similarity, search="exact")
        approximate = selector.rank(target, top_k=10, similarity=similarity, search=search)
        assert approximate.search == search and exact.search == "exact"
        assert approximate.names == exact.names
        assert [r["score"] for r in approximate] == pytest.approx([r["score"] for r in exact], abs=1e-5)
    # leave-one-out through the approximate path: the target's own entry is never returned
    loo = selector.rank("e11", top_k=10, similarity=similarity, search=search)
    assert "e11" not in loo.names and loo.names == selector.rank("e11", top_k=10, similarity=similarity,
                                                                 search="exact").names


def test_projection_is_seeded_and_preserves_inner_products():
    x = torch.randn(200, 20736, generator=torch.Generator().manual_seed(4))
    x = x / x.norm(dim=1, keepdim=True)
    p = _ann.Projection(20736)
    assert torch.equal(p(x), _ann.Projection(20736)(x))  # the same projection on every call and machine
    error = (p(x) @ p(x).T - x @ x.T).abs()
    assert error.mean() < 1.5 / 1024 ** 0.5  # about 1/sqrt(1024) per product


def test_rank_picks_the_path_by_group_size(monkeypatch):
    rows, queries = clustered(600, 2048, seed=5)
    selector, target = selector_of(rows), emb("q", queries[0])
    monkeypatch.setattr(_ann, "RERANK_MIN", 50)
    monkeypatch.setattr(_ann, "RERANK_PER_RESULT", 5)
    monkeypatch.setattr(_ann, "PROJECTION_MIN_ROWS", 1000)
    monkeypatch.setattr(_ann, "ANN_MIN_ROWS", 1000)
    assert selector.rank(target, top_k=5).search == "exact"  # 600 rows: below both thresholds
    monkeypatch.setattr(_ann, "PROJECTION_MIN_ROWS", 500)
    monkeypatch.setattr(_ann, "ann_available", lambda: False)
    assert selector.rank(target, top_k=5).search == "projection"  # above it, without faiss
    assert selector.rank(target).search == "exact"  # every row asked for: always exact
    assert selector.rank(target, top_k=5).to_dict()["search"] == "projection"
    monkeypatch.undo()
    monkeypatch.setattr(_ann, "RERANK_MIN", 50)
    monkeypatch.setattr(_ann, "RERANK_PER_RESULT", 5)
    monkeypatch.setattr(_ann, "PROJECTION_MIN_ROWS", 500)
    monkeypatch.setattr(_ann, "ANN_MIN_ROWS", 500)
    if not _ann.ann_available():  # without the extra there is no ANN: the projection scan
        assert selector.rank(target, top_k=5).search == "projection"
        return
    # the first ranking starts building the graph in the background and scans the projection meanwhile
    first = selector.rank(target, top_k=5)
    group = next(iter(selector._groups.values()))
    assert group.ann_ready("cosine", wait=True)
    after = selector.rank(target, top_k=5)
    assert first.search in ("projection", "ann") and after.search == "ann" and after.names == first.names
    assert not group.ann_ready("centered", start=False)  # built per similarity, only when asked


@pytest.mark.parametrize("k", [1, 2])
def test_principal_component_removal_ranks_large_groups_by_projection_then_exact_scores(monkeypatch, k):
    rows, queries = clustered(600, 2048, seed=11)
    selector = selector_of(rows, similarity=f"pcr-{k}")
    monkeypatch.setattr(_ann, "RERANK_MIN", 50)
    monkeypatch.setattr(_ann, "RERANK_PER_RESULT", 5)
    monkeypatch.setattr(_ann, "PROJECTION_MIN_ROWS", 500)
    monkeypatch.setattr(_ann, "ANN_MIN_ROWS", 500)  # pcr has no graph: the projection stands in for it
    for q in queries[:5]:
        fast = selector.rank(emb("q", q), top_k=10)
        exact = selector.rank(emb("q", q), top_k=10, search="exact")
        assert fast.search == "projection" and fast.similarity == f"pcr-{k}"
        assert fast.names == exact.names and [r["score"] for r in fast] == pytest.approx([r["score"] for r in exact], abs=1e-6)


def test_pcr_first_stage_keeps_the_true_top_10_when_one_direction_dominates(monkeypatch):
    # every row is mostly a shared direction (‖m − μ‖ / ‖m‖ ≈ 0.2): the first stage must stay in one space (exact and
    # projected quantities mixed made ‖Pb‖² negative and scores explode), so it still finds the exact top 10
    g = torch.Generator().manual_seed(3)
    rows, queries = clustered(3000, 2048, seed=12)
    common = torch.randn(2048, generator=g) * 25
    selector = selector_of((rows + common).tolist(), similarity="pcr-1")
    monkeypatch.setattr(_ann, "PROJECTION_MIN_ROWS", 1000)
    for q in queries[:5]:
        fast = selector.rank(emb("q", q + common), top_k=10)
        exact = selector.rank(emb("q", q + common), top_k=10, search="exact")
        assert fast.search == "projection" and fast.names == exact.names


def test_pcr_scores_are_cosines_even_for_a_target_along_the_removed_direction():
    from taskemb_hub.ranking.similarity import SIMILARITY_FUNCTIONS

    g = torch.Generator().manual_seed(4)
    rows = torch.randn(40, 64, generator=g) + 3 * torch.outer(torch.randn(40, generator=g), torch.randn(64, generator=g))
    selector = selector_of(rows.tolist(), similarity="pcr-1")
    group = next(iter(selector._groups.values()), None) or selector._group(selector._hashes[0])
    direction = group._directions(None, 1)[:, 0].float()
    target = rows.mean(0) + 5 * direction * rows.norm(dim=1).mean() + 0.01 * torch.randn(64, generator=g)
    scores = [r["score"] for r in selector.rank(emb("t", target)).rows]
    assert max(abs(x) for x in scores) <= 1.0
    explicit = SIMILARITY_FUNCTIONS["pcr-1"](target.double().numpy(), rows.double().numpy())
    by_name = {r["source"]: r["score"] for r in selector.rank(emb("t", target)).rows}
    assert [by_name[f"e{i}"] for i in range(40)] == pytest.approx(explicit.tolist(), abs=1e-4)


def test_a_large_groups_pcr_scores_do_not_depend_on_earlier_queries(monkeypatch):
    import taskemb_hub._vectors as vectors

    monkeypatch.setattr(vectors, "PCR_SAMPLE_ROWS", 20)
    rows, queries = clustered(50, 256, seed=13)
    names = [f"e{i}" for i in range(10)]
    fresh = selector_of(rows, similarity="pcr-1").rank(emb("q", queries[0]), exclude=names).rows
    used = selector_of(rows, similarity="pcr-1")
    used.rank(emb("q", queries[1]))  # another query first, with another mask
    used.rank(emb("q", queries[2]), exclude=["e40"])
    assert used.rank(emb("q", queries[0]), exclude=names).rows == fresh


def test_leave_one_out_never_lets_the_target_shape_its_own_directions():
    # 100 entries, one of them an outlier: ranked leave-one-out it must score as against the other 99 alone
    g = torch.Generator().manual_seed(5)
    rows = torch.randn(100, 128, generator=g)
    rows[0] += 30 * torch.randn(128, generator=g)
    whole = selector_of(rows.tolist(), similarity="pcr-1")
    rest = selector_of(rows[1:].tolist(), similarity="pcr-1")
    left_out = {r["source"]: r["score"] for r in whole.rank("e0").rows}
    alone = {r["source"]: r["score"] for r in rest.rank(emb("e0", rows[0])).rows}
    renamed = {f"e{int(name[1:]) + 1}": score for name, score in alone.items()}  # rest's e0 is whole's e1
    assert left_out == pytest.approx(renamed, abs=1e-5)


def test_a_row_almost_within_the_removed_direction_is_scored_exactly():
    from taskemb_hub.ranking.similarity import SIMILARITY_FUNCTIONS

    g = torch.Generator().manual_seed(6)
    rows = torch.randn(13, 256, generator=g) + 50
    rows[0] += 1000 * torch.nn.functional.normalize(torch.randn(256, generator=g), dim=0)
    selector = selector_of(rows.tolist(), similarity="pcr-1")
    for q in torch.randn(4, 256, generator=g) + 50:
        got = {r["source"]: r["score"] for r in selector.rank(emb("q", q)).rows}
        want = SIMILARITY_FUNCTIONS["pcr-1"](q.double().numpy(), rows.double().numpy())
        assert [got[f"e{i}"] for i in range(13)] == pytest.approx(want.tolist(), abs=1e-3)  # was 1.0 vs 0.03


def test_an_index_stores_the_projection_and_rebuilds_identically(tmp_path):
    rows, _ = clustered(120, 1500, seed=6)
    entries = [RegistryEntry(f"e{i}", emb(f"e{i}", v)) for i, v in enumerate(rows)]
    folder = write_index(entries, tmp_path / "index")
    contents = read_index(folder)
    group = next(iter(contents.groups.values()))
    assert group.projected is not None and group.projected.shape == (120, 1024)
    recomputed = VectorGroup(rows=group.rows, unit=group.unit, norms=group.norms, mean=group.mean).projected_rows()
    assert torch.equal(group.projected, recomputed)
    shard = next((folder / "signatures").glob("*.safetensors"))
    before = shard.read_bytes()
    write_index(contents.entries, folder)
    assert shard.read_bytes() == before


def test_recipe_warnings_over_representatives_with_counts_match_the_full_list():
    a, b = {"max_steps": 100, "stop_step": 100}, {"max_steps": 500, "stop_step": 500}
    sources = [emb(f"s{i}", [1.0, 0.0], a) for i in range(5)] + [emb(f"t{i}", [0.0, 1.0], b) for i in range(2)] \
        + [emb("u", [1.0, 1.0])]
    target = emb("target", [1.0, 0.5], a)
    full = recipe_warnings(target, sources)
    grouped = recipe_warnings(target, [sources[0], sources[5], sources[7]], counts=[5, 2, 1])
    assert grouped == full and full[1] is True and len(full[0]) == 3


def test_unknown_search_is_refused():
    selector = selector_of(torch.randn(30, 8))
    from taskemb_hub.errors import TaskEmbHubError

    with pytest.raises(TaskEmbHubError, match="Unknown search"):
        selector.rank(emb("q", torch.randn(8)), top_k=3, search="fast")


@needs_faiss
def test_an_index_shards_hnsw_graph_is_built_once_and_reused_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKEMB_HUB_ANN_CACHE", str(tmp_path / "ann"))
    rows, queries = clustered(400, 1500, seed=7)
    folder = write_index([RegistryEntry(f"e{i}", emb(f"e{i}", v)) for i, v in enumerate(rows)], tmp_path / "index")
    builds = []
    original = _ann.AnnIndex.__init__
    monkeypatch.setattr(_ann.AnnIndex, "__init__", lambda self, *a, **k: builds.append(1) or original(self, *a, **k))
    rankings = []
    for _ in range(2):  # two processes' worth of selectors over the same index
        contents = read_index(folder)
        selector = AutoSourceSelector(contents.entries, groups=contents.groups, similarity="cosine")
        rankings.append(selector.rank(emb("q", queries[0]), top_k=5, search="ann").names)
    assert len(builds) == 1 and len(list((tmp_path / "ann").glob("*.faiss"))) == 1
    assert rankings[0] == rankings[1] == selector.rank(emb("q", queries[0]), top_k=5, search="exact").names


def test_the_readme_states_the_thresholds_the_code_uses():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Ranking large registries"):]
    section = section[:section.index("\n#")]
    assert f"`PROJECTION_MIN_ROWS` ({_ann.PROJECTION_MIN_ROWS:,})" in section
    assert f"`ANN_MIN_ROWS` ({_ann.ANN_MIN_ROWS:,})" in section
    assert f"seeded {_ann.PROJECTION_DIM:,}-value projection" in section
    assert f"`max({_ann.RERANK_MIN}, {_ann.RERANK_PER_RESULT}·top_k)`" in section


@needs_faiss
def test_a_ready_graph_answers_while_another_graph_builds(monkeypatch):
    import threading

    rows, queries = clustered(800, 256, seed=8)
    group = VectorGroup.from_vectors(list(range(len(rows))), list(rows))
    assert group.ann_ready("cosine", wait=True)
    release = threading.Event()
    original = _ann.AnnIndex.__init__

    def slow_build(self, *args, **kwargs):  # a build that lasts until the test lets it go
        release.wait(30)
        original(self, *args, **kwargs)

    monkeypatch.setattr(_ann.AnnIndex, "__init__", slow_build)
    assert not group.ann_ready("centered")  # starts the (slow) centred build in the background
    answered = []
    query = threading.Thread(target=lambda: answered.append(group.top(queries[0], "cosine", 10, search="ann")))
    query.start()
    query.join(10)
    finished = bool(answered)
    release.set()
    assert finished, "a query on the ready cosine graph waited for the centred build"
    assert group.ann_ready("centered", wait=True)


@needs_faiss
def test_a_damaged_cached_graph_is_rebuilt_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKEMB_HUB_ANN_CACHE", str(tmp_path / "ann"))
    rows, queries = clustered(300, 1500, seed=9)
    folder = write_index([RegistryEntry(f"e{i}", emb(f"e{i}", v)) for i, v in enumerate(rows)], tmp_path / "index")
    contents = read_index(folder)
    AutoSourceSelector(contents.entries, groups=contents.groups, similarity="cosine").rank(emb("q", queries[0]), top_k=5, search="ann")
    (graph,) = (tmp_path / "ann").glob("*.faiss")
    graph.write_bytes(b"not a faiss index")
    contents = read_index(folder)
    selector = AutoSourceSelector(contents.entries, groups=contents.groups, similarity="cosine")
    target = emb("q", queries[0])
    assert selector.rank(target, top_k=5, search="ann").names == selector.rank(target, top_k=5, search="exact").names
    assert graph.read_bytes() != b"not a faiss index"  # rebuilt and stored again
