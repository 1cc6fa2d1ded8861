"""Curation flags (taskemb_hub/curation.py): near-duplicates, fewer rows than the recipe, a test split, barely
learned; in `Ranking` rows, `rank(exclude_flagged=True)`, the CLI, the index's `flags` column and the Space."""

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from taskemb_hub import curation
from taskemb_hub.cli import main
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.index import SHARD_DIR, read_index, write_index
from taskemb_hub.ranking.selector import AutoSourceSelector

SIGNATURE = {"method": "bitfit", "synthetic": True}
RECIPE = {"max_steps": 100, "max_train_examples": 1000}
LEARNED = {"accuracy": 0.9, "macro_f1": 0.89}


def _emb(task, vector, *, train_size=1000, metrics=None, extra=None):
    return TaskEmbedding(vector=vector, task=task, base_model="org/base", method="bitfit", signature=SIGNATURE,
                         step=100, train_size=train_size, metrics=dict(metrics or LEARNED),
                         extra={"recipe": dict(RECIPE), "labels": ["neg", "pos"], **(extra or {})})


def _registry(n=12, dim=32, seed=0):
    """`n` unrelated, well-tuned entries (cosines far below 0.999)."""
    g = torch.Generator().manual_seed(seed)
    return [RegistryEntry(f"org{i:02d}/task-{i}", _emb(f"task-{i}", torch.randn(dim, generator=g)), f"org{i:02d}/task-{i}@{i:040x}")
            for i in range(n)]


def _with_problems():
    """The registry plus: task-3 re-published twice (one a float-noise copy), and one entry of each other kind."""
    entries = _registry()
    base = entries[3].embedding.vector
    entries.append(RegistryEntry("zed/copy-of-3", _emb("copy", base.clone())))
    entries.append(RegistryEntry("amy/renamed-3", _emb("renamed", base + 1e-4 * torch.randn(base.shape, generator=torch.Generator().manual_seed(3)))))
    g = torch.Generator().manual_seed(9)
    entries.append(RegistryEntry("few/rows", _emb("few", torch.randn(32, generator=g), train_size=200)))
    entries.append(RegistryEntry("test/split", _emb("split", torch.randn(32, generator=g), extra={"train_split": "test"})))
    entries.append(RegistryEntry("test/file", _emb("file", torch.randn(32, generator=g), extra={"source": "local:sst2_test.csv"})))
    entries.append(RegistryEntry("chance/recorded", _emb("chance", torch.randn(32, generator=g), metrics={"accuracy": 0.53},
                                 extra={"chance": {"metric": "accuracy", "value": 0.5, "margin": 0.058, "rows": 300}})))
    entries.append(RegistryEntry("chance/uniform", _emb("uniform", torch.randn(32, generator=g),
                                                        metrics={"accuracy": 0.52, "macro_f1": 0.5})))
    entries.append(RegistryEntry("chance/constant", _emb("constant", torch.randn(32, generator=g),
                                                         metrics={"accuracy": 0.7, "macro_f1": 0.7 / 1.7})))
    return entries


EXPECTED = {"zed/copy-of-3": "duplicate", "org03/task-3": "duplicate", "few/rows": "fewer_rows",
            "test/split": "test_split", "test/file": "test_split", "chance/recorded": "barely_learned",
            "chance/uniform": "barely_learned", "chance/constant": "barely_learned"}


def test_every_kind_is_flagged_and_one_duplicate_is_kept():
    flags = AutoSourceSelector(_with_problems()).flags()
    assert {name: list(f) for name, f in flags.items()} == {n: [k] for n, k in EXPECTED.items()}
    # the cluster {amy/renamed-3, org03/task-3, zed/copy-of-3}: the first by name is kept, the reason symmetric
    assert "amy/renamed-3" not in flags
    assert flags["org03/task-3"]["duplicate"].startswith(
        "one of 3 near-duplicates (amy/renamed-3, org03/task-3, zed/copy-of-3; cosine 0.999")  # float noise of task-3
    assert " to amy/renamed-3, the one kept: the first by name" in flags["org03/task-3"]["duplicate"]
    assert "no registry records which was published first" in flags["zed/copy-of-3"]["duplicate"]
    assert "fewer than the 1,000 of the registry's recipe (all its training data)" in flags["few/rows"]["fewer_rows"]
    assert "predicts one class" in flags["chance/constant"]["barely_learned"]
    assert "300 held-out rows" in flags["chance/recorded"]["barely_learned"]


def test_a_small_dataset_is_flagged_only_against_the_registrys_recipe():
    entries = _registry(4)
    small = _emb("small", torch.randn(32), train_size=300)  # a 300-row dataset, fully used
    entries.append(RegistryEntry("small/all-rows", small))
    assert "fewer_rows" in AutoSourceSelector(entries).flags()["small/all-rows"]
    for e in entries:  # a registry whose recipe takes 300 rows: no longer fewer than it asks
        e.embedding.extra["recipe"]["max_train_examples"] = 300
    assert "small/all-rows" not in AutoSourceSelector(entries).flags()


def test_a_hub_dataset_named_test_is_not_a_test_split():
    entry = _emb("t", torch.randn(8), extra={"source": "someone/test-reviews", "train_split": "train"})
    assert curation.test_split_reason(entry) is None
    assert curation.test_split_reason(_emb("t", torch.randn(8), extra={"train_split": "test_matched"}))


@pytest.mark.parametrize("n,dim", [(300, 64), (3000, 256)])  # the exact product, then the sketched first stage
def test_near_duplicate_pairs_are_exactly_the_pairs_at_or_above_the_threshold(n, dim):
    g = torch.Generator().manual_seed(n)
    unit = torch.nn.functional.normalize(torch.randn(n, dim, generator=g) + torch.randn(dim, generator=g), dim=1)
    for a, b, eps in [(0, n - 1, 0.0), (5, 17, 0.02), (40, 41, 0.06), (7, 99, 0.03)]:  # cos ~1, ~.9998, ~.998, ~.9995
        noise = torch.nn.functional.normalize(torch.randn(dim, generator=g), dim=0)
        unit[b] = torch.nn.functional.normalize(unit[a] + eps * noise, dim=0)
    i, j = ((unit.double() @ unit.double().T) >= curation.DUPLICATE_COSINE).triu(1).nonzero(as_tuple=True)
    exact = set(zip(i.tolist(), j.tolist()))
    budget = curation.EXACT_PAIR_BUDGET
    try:
        if n == 3000:
            curation.EXACT_PAIR_BUDGET = 0  # force the sketch + exact check path
        found = {(i, j) for i, j, _ in curation.near_duplicate_pairs(unit)}
    finally:
        curation.EXACT_PAIR_BUDGET = budget
    assert found == exact and {(0, n - 1), (5, 17), (7, 99)} <= exact and (40, 41) not in exact


def test_rows_carry_flags_and_exclude_flagged_drops_them_and_says_why():
    selector = AutoSourceSelector(_with_problems())
    target = _emb("target", selector.entries[3].embedding.vector + 0.5 * torch.randn(32))
    cheap = {r["source"]: r["flags"] for r in selector.rank(target).rows}  # no duplicate search without being asked
    assert {n: list(f) for n, f in cheap.items() if f} == {n: [k] for n, k in EXPECTED.items() if k != "duplicate"}
    selector.flags()  # computed once: later rankings show them all
    ranking = selector.rank(target)
    by_name = {r["source"]: r["flags"] for r in ranking.rows}
    assert set(EXPECTED) <= set(by_name) and all(EXPECTED[n] in by_name[n] for n in EXPECTED)
    assert by_name["amy/renamed-3"] == {} and "flags" in ranking.to_pandas().columns
    assert "Flagged 8 of these sources" in str(ranking)
    kept = selector.rank(target, exclude_flagged=True)
    assert set(kept.names) == set(by_name) - set(EXPECTED)
    assert "8 flagged sources left out (3 barely learned, " in kept.why
    assert all(part in kept.why for part in ("2 near-duplicate", "2 tuned on a test split", "1 fewer rows than the recipe"))
    assert all(r["flags"] == {} for r in kept.rows) and len(kept.to_dict()["ranking"]) == len(kept)


def test_cli_rank_exclude_flagged(tmp_path, capsys):
    write_index(_with_problems(), tmp_path / "index")
    target = _emb("target", torch.randn(32))
    target.save(tmp_path / "target")
    assert main(["rank", "--target", str(tmp_path / "target"), "--registry", f"index:{tmp_path / 'index'}",
                 "--exclude-flagged", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert not set(EXPECTED) & {r["source"] for r in out["ranking"]} and "8 flagged sources left out" in out["why"]


def test_an_index_round_trips_the_flags_and_readers_use_them(tmp_path, monkeypatch):
    write_index(_with_problems(), tmp_path / "index")
    table = pq.read_table(next((tmp_path / "index" / SHARD_DIR).glob("*.parquet")))
    stored = {n: json.loads(f) for n, f in zip(table.column("name").to_pylist(), table.column("flags").to_pylist())}
    assert {n: list(f) for n, f in stored.items() if f} == {n: [k] for n, k in EXPECTED.items()}
    assert stored["amy/renamed-3"] == {}
    monkeypatch.setattr(curation, "near_duplicate_pairs", lambda *a, **k: pytest.fail("recomputed"))
    selector = AutoSourceSelector.from_index(tmp_path / "index")
    assert selector.flags() == {n: f for n, f in stored.items() if f}


def test_an_index_without_the_flags_column_still_reads_and_its_flags_are_computed(tmp_path):
    write_index(_with_problems(), tmp_path / "index")
    for path in (tmp_path / "index" / SHARD_DIR).rglob("*.parquet"):  # as an index written before flags existed
        table = pq.read_table(path)
        pq.write_table(table.drop(["flags"]), path)
        assert "flags" not in pq.read_schema(path).names
    contents = read_index(tmp_path / "index")
    assert len(contents.entries) == len(_with_problems()) and not contents.refused
    flags = AutoSourceSelector.from_index(tmp_path / "index").flags()
    assert {n: list(f) for n, f in flags.items()} == {n: [k] for n, k in EXPECTED.items()}


def test_a_malformed_flags_cell_is_ignored_not_trusted(tmp_path):
    write_index(_with_problems(), tmp_path / "index")
    path = next((tmp_path / "index" / SHARD_DIR).rglob("*.parquet"))
    table = pq.read_table(path)
    cells = ["[1, 2]"] + table.column("flags").to_pylist()[1:]
    table = table.set_column(table.schema.get_field_index("flags"), "flags", pa.array(cells))
    pq.write_table(table, path)
    flags = AutoSourceSelector.from_index(tmp_path / "index").flags()  # recomputed: one row recorded none
    assert {n: list(f) for n, f in flags.items()} == {n: [k] for n, k in EXPECTED.items()}


def test_tune_records_the_training_split_and_the_chance_baseline(tiny_bert, sentiment_task):
    from taskemb_hub import TuningConfig, tune

    emb = tune(sentiment_task, TuningConfig(base_model=tiny_bert, max_steps=2, eval_examples=16), None,
               progress=False)[-1].embedding
    assert emb.extra["train_split"] == "train"
    assert emb.extra["chance"]["metric"] == "accuracy" and emb.extra["chance"]["rows"] == 16


def test_the_space_shows_flags_and_hides_flagged_sources(tmp_path):
    from taskemb_hub.space import _handlers as h

    write_index(_with_problems(), tmp_path / "index")  # a Space serves an index: its stored flags are shown
    selector = AutoSourceSelector.from_index(tmp_path / "index")
    state = h.RegistryState(None, "test", selector=selector)
    shown = h.rank_registry(state, h.SpaceConfig(), "org00/task-0", top_k=50, similarity="cosine", ranker="peft")
    assert shown.ok and h.TABLE_COLUMNS[-1] == "flags"
    name = lambda cell: re.sub(r"^\[([^\]]+)\]\(.*\)$", r"\1", cell)  # an index's Hub entries are linked
    cells = {name(row[1]): row[-1] for row in shown.rows}
    assert cells["zed/copy-of-3"] == "near-duplicate" and cells["few/rows"] == "fewer rows than the recipe"
    hidden = h.rank_registry(state, h.SpaceConfig(), "org00/task-0", top_k=50, similarity="cosine", ranker="peft",
                             hide_flagged=True)
    assert hidden.ok and not set(EXPECTED) & {name(row[1]) for row in hidden.rows} and "8 flagged sources" in hidden.message


def test_most_packaged_entries_are_flagged_as_barely_learned_as_the_readme_says():
    """README, Curation: 'Most of the packaged entries are flagged as barely learned after their 100 steps'."""
    flags = AutoSourceSelector.from_default().flags()
    barely = [name for name, kinds in flags.items() if "barely_learned" in kinds]
    assert len(barely) > 16 / 2, barely


# ---- review fixes: order, precision, the kept duplicate, exclude_flagged's scores, lazy duplicate search ----------
def _capped(caps):
    entries = []
    for i, cap in enumerate(caps):
        e = _emb(f"t{i}", torch.randn(32, generator=torch.Generator().manual_seed(i)) + 2, train_size=600)
        e.extra["recipe"]["max_train_examples"] = cap
        entries.append(RegistryEntry(f"org/t{i}", e, f"org/t{i}@{i:040x}"))
    return entries


def test_flags_do_not_depend_on_the_order_of_the_entries():
    entries = _capped([1000, 1000, 500, 500])  # a tie: the larger cap is the recipe, whatever the order
    forward, backward = curation.index_flags(entries), curation.index_flags(entries[::-1])
    assert forward == backward and len(forward) == 4 and all("fewer_rows" in f for f in forward.values())
    assert AutoSourceSelector(entries).flags() == AutoSourceSelector(entries[::-1]).flags() == forward
    problems = _with_problems()
    assert curation.index_flags(problems) == curation.index_flags(problems[::-1])


def _near_pair():
    """Two rows at float32 cosine 0.99918 whose float16 storage rounds it to 0.99902: a reason printed from the
    float32 rows says 0.9992, from the stored rows 0.9990."""
    entries = _registry(6)
    first, second = torch.zeros(32), torch.zeros(32)
    first[0], second[0], second[1] = 1.0, 0.99918, (1 - 0.99918 ** 2) ** 0.5
    entries += [RegistryEntry("dup/a", _emb("a", first)), RegistryEntry("dup/b", _emb("b", second))]
    return entries


def test_an_index_updated_incrementally_writes_the_flags_a_fresh_build_writes(tmp_path):
    write_index(_near_pair(), tmp_path / "old")
    fresh = _near_pair()
    carried = [e for e in read_index(tmp_path / "old").entries if e.name != "org00/task-0"]  # float16 rows
    updated = carried + [e for e in fresh if e.name == "org00/task-0"]  # one entry re-read, the rest carried
    assert curation.index_flags(updated) == curation.index_flags(fresh)
    assert "cosine 0.9990 to dup/a" in curation.index_flags(fresh)["dup/b"]["duplicate"]
    write_index(updated, tmp_path / "updated")
    write_index(fresh, tmp_path / "fresh")
    assert (AutoSourceSelector.from_index(tmp_path / "updated").flags()
            == AutoSourceSelector.from_index(tmp_path / "fresh").flags())


def test_a_republished_adapter_cannot_hide_the_whole_cluster():
    entries = _registry(6)
    original = entries[2]
    original.embedding.metrics = {"accuracy": 0.51, "macro_f1": 0.5}  # barely learned: hidden for that anyway
    copy = RegistryEntry("aaa/popular", _emb("copy", original.embedding.vector.clone()))
    again = RegistryEntry("zzz/popular", _emb("again", original.embedding.vector.clone()))
    flags = AutoSourceSelector(entries + [copy, again]).flags()
    # aaa/popular is kept: the first by name that no other flag hides (the original is barely learned)
    assert "aaa/popular" not in flags and set(flags["zzz/popular"]) == {"duplicate"}
    assert "one of 3 near-duplicates (aaa/popular, org02/task-2, zzz/popular;" in flags["org02/task-2"]["duplicate"]
    assert "a near-duplicate of" not in json.dumps(flags)
    copy.embedding.metrics = {"accuracy": 0.5}  # now the first two by name are barely learned: zzz/popular is kept
    selector = AutoSourceSelector(entries + [copy, again])
    kept = selector.rank(_emb("target", torch.randn(32)), exclude_flagged=True).names
    assert "zzz/popular" in kept and "zzz/popular" not in selector.flags()


@pytest.mark.parametrize("ranker", ["peft", "auto"])
def test_exclude_flagged_filters_the_output_and_keeps_the_scores(ranker):
    selector = AutoSourceSelector.from_default()
    flagged = {n for n, f in selector.flags().items() if f}
    assert len(flagged) > 8  # the packaged registry: most are flagged, fewer than 8 would remain for pcr-1
    full = selector.rank("fever", ranker=ranker)
    kept = selector.rank("fever", ranker=ranker, exclude_flagged=True)
    expected = [(r["source"], r["score"]) for r in full.rows if r["source"] not in flagged]
    assert [(r["source"], r["score"]) for r in kept.rows] == expected and expected
    assert [r["rank"] for r in kept.rows] == list(range(1, len(expected) + 1))
    assert kept.similarity == full.similarity == "pcr-1" and "cosine: pcr-1 needs" not in kept.why
    top = selector.rank("fever", top_k=2, ranker=ranker, exclude_flagged=True)
    assert [(r["source"], r["score"]) for r in top.rows] == expected[:2]


def test_a_ranking_without_exclude_flagged_runs_no_duplicate_search(tmp_path, monkeypatch):
    calls = []
    real = curation.near_duplicate_pairs
    monkeypatch.setattr(curation, "near_duplicate_pairs", lambda *a, **k: calls.append(1) or real(*a, **k))
    selector = AutoSourceSelector(_with_problems())  # no stored flags, as from_hub or an older index
    target = _emb("target", torch.randn(32))
    rows = {r["source"]: r["flags"] for r in selector.rank(target).rows}
    assert not calls and "fewer_rows" in rows["few/rows"] and rows["zed/copy-of-3"] == {}
    kept = selector.rank(target, exclude_flagged=True)
    assert calls == [1] and "zed/copy-of-3" not in kept.names  # the search ran for exclude_flagged
    assert "duplicate" in {r["source"]: r["flags"] for r in selector.rank(target).rows}["zed/copy-of-3"]
    selector.flags()
    assert calls == [1]  # cached per selector
    write_index(_with_problems(), tmp_path / "index")  # an index's stored duplicate flags are shown for free
    calls.clear()
    stored = AutoSourceSelector.from_index(tmp_path / "index").rank(target)
    assert "duplicate" in {r["source"]: r["flags"] for r in stored.rows}["zed/copy-of-3"] and not calls
