"""Curation: which registry entries a ranking should be wary of, and why.

Four flags, each computed from an entry's recorded metadata or its stored vector (nothing is re-tuned):

- `duplicate`: one adapter published again under another name. Entries of one signature whose vectors
  have cosine >= `DUPLICATE_COSINE` form a cluster (connected pairs); every member but one is flagged with
  a symmetric reason listing the cluster (which member is the original cannot be told: no registry records
  publication dates; see `duplicate_flags` for the one kept). This search is the costly flag (~a minute at
  100k entries): a ranking runs it only with `exclude_flagged`, else shows (`shown_flags`) the per-entry flags
  and the duplicate flags an index stored.
- `fewer_rows`: tuned on fewer training rows than the registry's recipe takes (`max_train_examples`
  of the recipe most entries of its method record, else the packaged recipe's 1,000). Such an entry is
  not broken (a small dataset fully used), but it sits elsewhere than entries tuned on the full count.
- `test_split`: its metadata names a test split as its training data (`extra["train_split"]`, which
  `tune` records since this version, or a local data file named like a test split, `local:test.csv`).
- `barely_learned`: its recorded in-task metric is within noise of a model that learned nothing (see
  `barely_learned_reason` for the threshold and why).

The duplicate check scales: below `EXACT_PAIR_BUDGET` multiply-adds it is one blocked product of the
unit rows; above it, a 64-value count sketch of the rows (of the index's stored projection when there is
one) is compared block by block, and only pairs whose sketched distance could be a duplicate's are
checked exactly (`near_duplicate_pairs`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any, Iterable

import torch

DUPLICATE_COSINE = 0.999  # same adapter re-published (float16 storage moves a cosine by ~1e-5, not 1e-3)
FLAG_LABELS = {"duplicate": "near-duplicate", "fewer_rows": "fewer rows than the recipe",
               "test_split": "tuned on a test split", "barely_learned": "barely learned"}
# Without a recorded baseline, accuracy within this much of uniform chance (1/labels) counts as not learned:
# about two standard errors of an accuracy near 0.5 on the 300-500 held-out rows `tune` scores.
CHANCE_MARGIN = 0.05
MIN_PEARSON = 0.1  # regression without a baseline: a correlation below this is about 2 SE of noise at 300 rows
EXACT_PAIR_BUDGET = 2e10  # n*n*dim below this: exact blocked product (~10 s on two cores at the limit)
SKETCH_DIM = 32
# A pair is checked exactly when its sketched squared distance is within this factor of a duplicate's largest
# (2 - 2 * DUPLICATE_COSINE). A count sketch's squared distance / true one is about chi2_32 / 32: exceeding 4 has
# probability ~1e-13 for a spread difference; at most 2 when the difference sits in two colliding coordinates.
SKETCH_SLACK = 4.0
_BLOCK = 2048
# A tile's matrix product may round a pair's cosine differently by its position in the tile: the first stage passes
# pairs this much below the threshold and the per-pair exact check decides, so a pair's verdict is position-free.
_FIRST_STAGE_SLACK = 1e-4
_COLUMNS = 8192
_LISTED = 5  # a duplicate's reason names at most this many members of its cluster
_TEST_SPLIT = re.compile(r"(?<![a-z])test(?![a-z])")
_DATA_SUFFIX = re.compile(r"\.(csv|tsv|jsonl?|parquet|txt|arrow)(\.(gz|bz2|zip))?$")


# ---- per-entry flags ---------------------------------------------------------------------------
def recipe_caps(infos: Iterable) -> dict[str, int | None]:
    """The registry's `max_train_examples` per method: the value most entries of that method record.

    A tie goes to the larger cap (None, all rows, counting as the largest): a rule of the counts and values
    alone, so the answer (and every `fewer_rows` flag) does not depend on the order the entries come in.
    The larger cap is the recipe that asks for more rows, the one whose entries the others sit apart from.

    Args:
        infos: entry metadata (`RegistryEntry.info` objects: `method`, `extra`).

    Returns:
        method -> row cap (None: the registry's recipe takes all rows).

    Example:
        >>> recipe_caps(e.info for e in AutoSourceSelector.from_default().entries)
        {'bitfit': 1000}
    """
    counts: dict[str, Counter] = {}
    for info in infos:
        recipe = (info.extra or {}).get("recipe")
        if isinstance(recipe, dict) and "max_train_examples" in recipe:
            counts.setdefault(info.method, Counter())[_cap(recipe.get("max_train_examples"))] += 1
    return {method: max(c.items(), key=lambda kv: (kv[1], math.inf if kv[0] is None else kv[0]))[0]
            for method, c in counts.items()}


def _cap(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def fewer_rows_reason(info, cap: int | None) -> str | None:
    """Why `info` counts as tuned on fewer rows than the recipe `cap`, or None."""
    rows = info.train_size
    if cap is None or not isinstance(rows, int) or rows >= cap:
        return None
    own = _cap(((info.extra or {}).get("recipe") or {}).get("max_train_examples"))
    why = f"its own recipe capped it at {own:,}" if own is not None and own <= rows else "all its training data"
    return f"tuned on {rows:,} rows, fewer than the {cap:,} of the registry's recipe ({why})"


def test_split_reason(info) -> str | None:
    """Why `info` counts as tuned on a test split (its recorded training split, or a local data file named
    like one), or None. A Hub dataset id is a dataset, not a split: `user/test-reviews` is not flagged."""
    extra = info.extra or {}
    split = extra.get("train_split")
    if isinstance(split, str) and _TEST_SPLIT.search(split.lower()):
        return f"its metadata names the {split!r} split as training data"
    source = extra.get("source")
    if isinstance(source, str) and source.startswith("local:") and _DATA_SUFFIX.search(source.lower()):
        stem = _DATA_SUFFIX.sub("", source[len("local:"):].lower())
        if _TEST_SPLIT.search(stem):
            return f"it was tuned on a data file named like a test split ({source[len('local:'):]})"
    return None


def barely_learned_reason(info) -> str | None:
    """Why `info`'s recorded metric is within noise of a model that learned nothing, or None.

    Threshold, in order:
      1. a recorded baseline (`extra["chance"]`: the majority class's share of the held-out rows, or a
         constant's score, with two standard errors of those rows; `tune` records it since this version):
         flagged when the metric is at most baseline + margin, the test `rank` applies to targets;
      2. classification without one: accuracy at most 1/labels + `CHANCE_MARGIN` (uniform chance is a lower
         bound of the majority share, so this flags only entries certainly near chance), or a macro-F1 that
         is exactly a constant predictor's (2a/(1+a)/m for accuracy a over m classes);
      3. regression without one: Pearson below `MIN_PEARSON`. Extractive QA without one is not judged
         (the share of unanswerable questions is unknown).
    """
    metrics, extra = info.metrics or {}, info.extra or {}
    chance = extra.get("chance")
    if isinstance(chance, dict) and chance.get("metric") in metrics and _num(chance.get("value")) is not None:
        score, base, margin = metrics[chance["metric"]], chance["value"], _num(chance.get("margin")) or 0.0
        if _num(score) is not None and score <= base + margin:
            return (f"{chance['metric']} {score:.3f}, where a model that learned nothing scores {base:.3f} "
                    f"(± {margin:.3f}, {chance.get('rows', '?')} held-out rows)")
        return None
    labels, accuracy = extra.get("labels"), _num(metrics.get("accuracy"))
    if accuracy is not None and isinstance(labels, list) and len(labels) >= 2:
        uniform = 1 / len(labels)
        if accuracy <= uniform + CHANCE_MARGIN:
            return (f"accuracy {accuracy:.3f}, not above uniform chance {uniform:.3f} + {CHANCE_MARGIN} "
                    f"({len(labels)} labels)")
        f1 = _num(metrics.get("macro_f1"))
        constant = [2 * accuracy / (1 + accuracy) / m for m in range(2, len(labels) + 1)]  # over m classes present
        if f1 is not None and any(abs(f1 - c) < 1e-6 for c in constant):
            return f"macro-F1 {f1:.3f} is a constant predictor's at accuracy {accuracy:.3f}: it predicts one class"
        return None
    pearson = _num(metrics.get("pearson"))
    if pearson is not None and pearson < MIN_PEARSON:
        return f"Pearson {pearson:.3f}, below {MIN_PEARSON} (no correlation beyond noise)"
    return None


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def entry_flags(info, caps: dict[str, int | None]) -> dict[str, str]:
    """The per-entry flags of one entry's metadata: kind -> reason (no `duplicate`: that needs the others).

    Example:
        >>> entry_flags(entry.info, recipe_caps(e.info for e in entries))
        {'fewer_rows': "tuned on 750 rows, fewer than the 1,000 of the registry's recipe (all its training data)"}
    """
    from .tuning.recipe import DEFAULT_RECIPE

    cap = caps.get(info.method, DEFAULT_RECIPE["max_train_examples"]) if caps else DEFAULT_RECIPE["max_train_examples"]
    found = {"fewer_rows": fewer_rows_reason(info, cap), "test_split": test_split_reason(info),
             "barely_learned": barely_learned_reason(info)}
    return {k: v for k, v in found.items() if v}


# ---- near duplicates ---------------------------------------------------------------------------
def near_duplicate_pairs(unit: torch.Tensor, *, threshold: float = DUPLICATE_COSINE,
                         projected: torch.Tensor | None = None) -> list[tuple[int, int, float]]:
    """Pairs of rows of `unit` (n x d unit rows, any float type) whose cosine is >= `threshold`.

    Args:
        unit: the unit rows (a `VectorGroup.unit`, possibly a float16 memory map).
        threshold: the cosine that makes two rows duplicates.
        projected: the rows' stored projection (an index's `projected`), sketched instead of `unit`.

    Returns:
        `(i, j, cosine)` with i < j, the cosine exact: float32 products of the rows rounded to float16 (`_stored`),
        as an index stores them, so a row carried from an index and the same row freshly read give one cosine.

    Example:
        >>> near_duplicate_pairs(torch.nn.functional.normalize(torch.randn(5, 8), dim=1)[[0, 1, 0]])
        [(0, 2, 0.99999994...)]
    """
    n, d = unit.shape
    if n < 2:
        return []
    if n * n * d <= EXACT_PAIR_BUDGET:
        return _blocked_pairs((unit, unit), lambda a, b: _stored(a) @ _stored(b).T,
                              lambda g: g >= threshold - _FIRST_STAGE_SLACK, unit, threshold)
    from ._ann import Projection

    source = projected if projected is not None and projected.shape[0] == n else unit
    sketch_of = Projection(source.shape[1], SKETCH_DIM, seed=1)
    sketch = torch.cat([sketch_of(_stored(source[s:s + _BLOCK])) for s in range(0, n, _BLOCK)])
    sq = sketch.pow(2).sum(1, keepdim=True)
    # [s_i, |s_i|², 1] · [-2 s_j, 1, |s_j|²] = |s_i - s_j|²: one product per tile gives the squared distances
    left = torch.cat([sketch, sq, torch.ones_like(sq)], 1)
    right = torch.cat([-2 * sketch, torch.ones_like(sq), sq], 1)
    limit = SKETCH_SLACK * 2 * (1 - threshold) + 1e-6
    return _blocked_pairs((left, right), lambda a, b: a @ b.T, lambda g: g <= limit, unit, threshold)


def _stored(rows: torch.Tensor) -> torch.Tensor:
    """`rows` at the precision an index stores them (float16), as float32: the cosines that decide a duplicate are
    then the same whether a row comes from an index's float16 file or from a freshly read float32 vector."""
    return rows.to(torch.float16).float()


def _blocked_pairs(rows: tuple[torch.Tensor, torch.Tensor], product, keep, unit: torch.Tensor, threshold: float):
    """Upper-triangle pairs (i < j) whose `product(left[i], right[j])` passes `keep`, tile by tile (tens of MB
    each, never n x n), then checked exactly on `unit`."""
    left_rows, right_rows = rows
    n = left_rows.shape[0]
    found = []
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        left = left_rows[start:stop]
        for col in range(start, n, _COLUMNS):
            mask = keep(product(left, right_rows[col:col + _COLUMNS]))
            if col == start:
                mask &= torch.ones_like(mask).triu(1)  # j > i only, each pair once
            if bool(mask.any()):
                i, j = mask.nonzero(as_tuple=True)
                found.append(torch.stack([i + start, j + col], 1))
    pairs = torch.cat(found) if found else torch.zeros(0, 2, dtype=torch.long)
    out = []
    for s in range(0, len(pairs), 65536):  # exact cosines of the candidates
        p = pairs[s:s + 65536]
        cos = (_stored(unit[p[:, 0]]) * _stored(unit[p[:, 1]])).sum(1)  # one formula per pair, wherever it sits
        out += [(int(a), int(b), float(c)) for (a, b), c in zip(p.tolist(), cos.tolist()) if c >= threshold]
    return out


def duplicate_flags(names: list[str], pairs: list[tuple[int, int, float]], unit: torch.Tensor,
                    flagged: frozenset | set = frozenset()) -> dict[str, str]:
    """Every member of a near-duplicate cluster but the one kept: name -> reason.

    Which member is the original cannot be told: no registry records when an entry was first published (the
    Hub registry records a repo's current commit, `hub_sha`, not its creation), and a name says nothing (anyone
    can re-publish a popular adapter as `aaa/...`). So the reason is symmetric: it lists the cluster and says
    that the one kept is merely the first by name. The kept member is the first by name among those no other
    flag marks (`flagged`), so that `exclude_flagged` never hides a whole cluster for being duplicates; the
    rule depends on the names and flags alone, not on the order the entries come in.

    Args:
        names: the rows' entry names. pairs: `near_duplicate_pairs` of the rows. unit: the rows.
        flagged: names that other flags already mark (fewer rows, test split, barely learned).

    Returns:
        name -> `one of 3 near-duplicates (a/x, b/y, c/z; cosine 1.0000 to a/x, the one kept: ...)`.

    Example:
        >>> duplicate_flags(["b/y", "a/x"], [(0, 1, 1.0)], unit)
        {'b/y': 'one of 2 near-duplicates (a/x, b/y; cosine 1.0000 to a/x, the one kept: the first by name ...)'}
    """
    parent = list(range(len(names)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for i in {k for p in pairs for k in p[:2]}:
        members.setdefault(root(i), []).append(i)
    out = {}
    for group in members.values():
        group.sort(key=lambda r: names[r])
        kept = next((r for r in group if names[r] not in flagged), group[0])
        listed = ", ".join(names[r] for r in group[:_LISTED]) + (f" and {len(group) - _LISTED} more"
                                                                  if len(group) > _LISTED else "")
        for i in group:
            if i != kept:
                cos = float((_stored(unit[i]) * _stored(unit[kept])).sum())
                out[names[i]] = (f"one of {len(group)} near-duplicates ({listed}; cosine {cos:.4f} to {names[kept]}, "
                                 "the one kept: the first by name no other flag marks, as no registry records which "
                                 "was published first)")
    return out


# ---- a whole selector / index ------------------------------------------------------------------
def registry_flags(selector) -> dict[str, dict[str, str]]:
    """Flags of every entry of an `AutoSourceSelector`: name -> {kind: reason} (flagged entries only).

    Computed once per selector. Entries read from an index that recorded flags keep those (its
    `flags` column, written by `index build` over the whole registry), so a 100k-entry index is not
    compared pair by pair on its first ranking.

    Example:
        >>> registry_flags(AutoSourceSelector.from_default())["sports_understanding"]
        {'fewer_rows': "tuned on 750 rows, fewer than the 1,000 of ...", 'barely_learned': 'accuracy 0.350, ...'}
    """
    if "flags" in selector._lookup:
        return selector._lookup["flags"]
    stored = [_stored_flags(e) for e in selector.entries]
    if selector.entries and all(s is not None for s in stored):
        flags = {e.name: s for e, s in zip(selector.entries, stored) if s}
    else:
        infos = [e.info for e in selector.entries]
        caps = recipe_caps(infos)
        flags = {e.name: f for e, info in zip(selector.entries, infos) if (f := entry_flags(info, caps))}
        selector._lookup["recipe_caps"] = caps
        others = set(flags)
        for h in selector._positions("hash"):
            group = selector._group(h)
            if group is None or len(group) < 2:
                continue
            names = [selector.entries[i].name for i in group.rows]
            pairs = near_duplicate_pairs(group.unit, projected=group.projected)
            for name, why in duplicate_flags(names, pairs, group.unit, others).items():
                flags.setdefault(name, {})["duplicate"] = why
    selector._lookup["flags"] = flags
    return flags


def _stored_flags(entry) -> dict | None:
    """The flags an index row recorded for a lazy index entry (None: not an index entry, or an older index)."""
    info = getattr(entry, "_info", None)
    flags = getattr(info(), "flags", None) if info is not None else None
    return flags if isinstance(flags, dict) else None


def index_flags(entries: list) -> dict[str, dict[str, str]]:
    """Flags of every entry an index is written from (`index build`'s `flags` column): name -> {kind: reason}.

    Vectors are read one block at a time (an index's rows from its memory map), never a whole signature at once.
    The entries are sorted by name first and every cosine is taken at the stored float16 precision, so an index
    updated incrementally (rows carried from the old index, a few fetched) and one built afresh from the same
    entries write identical flags.

    Example:
        >>> index_flags(AutoSourceSelector.from_default().entries)["play_dialog"]
        {'barely_learned': "macro-F1 0.378 is a constant predictor's at accuracy 0.607: it predicts one class"}
    """
    entries = sorted(entries, key=lambda e: e.name)  # rows in one order whatever the caller's: one set of flags
    caps = recipe_caps(e.info for e in entries)
    flags = {e.name: f for e in entries if (f := entry_flags(e.info, caps))}
    others = set(flags)
    by_signature: dict[str, list] = {}
    for entry in entries:
        by_signature.setdefault(entry.signature_hash, []).append(entry)
    for group in by_signature.values():
        rows = _EntryRows(group)
        for name, why in duplicate_flags([e.name for e in group], near_duplicate_pairs(rows), rows, others).items():
            flags.setdefault(name, {})["duplicate"] = why
    return flags


class _EntryRows:
    """The unit rows of registry entries, read on demand (an index row as stored, else the vector normalised)."""

    def __init__(self, entries: list):
        self.entries = entries
        self.shape = (len(entries), int(self._row(entries[0]).numel()) if entries else 0)

    @staticmethod
    def _row(entry) -> torch.Tensor:
        stored = entry.stored_row
        if stored is not None:
            return stored[0].float()
        vector = (entry._embedding or entry._load()).vector.float()  # a lazy entry's vector is not kept
        return vector / vector.norm().clamp_min(1e-12)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self._row(self.entries[index])
        picked = self.entries[index] if isinstance(index, slice) else [self.entries[i] for i in index.tolist()]
        return torch.stack([self._row(e) for e in picked]) if picked else torch.zeros(0, self.shape[1])


def shown_flags(selector, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """The flags to show on the rows `names` of a ranking without `exclude_flagged`, without the duplicate search.

    The registry's flags when they were computed already (`registry_flags`, cached per selector); else, per
    row, the flags its index stored (near-duplicates included) or, when none were stored (`from_hub`, an older
    index), its per-entry flags (fewer rows, test split, barely learned). The near-duplicate search (~a
    minute at 100k entries) runs only when asked for: `selector.flags()` or `exclude_flagged`.

    Args:
        selector: an `AutoSourceSelector`. names: the ranking's sources.

    Returns:
        name -> {kind: reason}, flagged rows only.

    Example:
        >>> shown_flags(selector, ranking.names)
        {'few/rows': {'fewer_rows': "tuned on 200 rows, fewer than the 1,000 of the registry's recipe (...)"}}
    """
    if "flags" in selector._lookup:
        full = selector._lookup["flags"]
        return {n: full[n] for n in names if n in full}
    positions, out = selector._positions("name"), {}
    for name in names:
        for i in positions.get(name, [])[:1]:
            entry = selector.entries[i]
            found = _stored_flags(entry)
            if found is None:
                if "recipe_caps" not in selector._lookup:  # over the whole registry, once per selector
                    selector._lookup["recipe_caps"] = recipe_caps(e.info for e in selector.entries)
                found = entry_flags(entry.info, selector._lookup["recipe_caps"])
            if found:
                out[name] = found
    return out


def drop_flagged(ranking, flagged: set[str], top_k: int | None) -> None:
    """Leave the `flagged` sources out of `ranking`'s rows and skipped list, renumbered, best `top_k` kept.

    Only the output is filtered: the scores were computed over the same registry statistics (pcr mean and
    principal directions, fusion normalisation) as a ranking without `exclude_flagged`, so the sources left
    keep their scores. The ranking was asked for `top_k + len(flagged)` rows, so `top_k` unflagged remain.
    """
    rows = [r for r in ranking.rows if r["source"] not in flagged]
    ranking.rows = rows[:top_k] if top_k else rows
    for rank, row in enumerate(ranking.rows, start=1):
        row["rank"] = rank
    ranking.skipped = [(n, r) for n, r in ranking.skipped if n not in flagged]


def annotate(ranking, flags: dict[str, dict[str, str]]) -> None:
    """Give every row of `ranking` its `flags` (kind -> reason; empty when none)."""
    for row in ranking.rows:
        row["flags"] = dict(flags.get(row["source"], {}))


def flagged_note(flags: dict[str, dict[str, str]], names: Iterable[str]) -> str:
    """`; 3 flagged sources left out (2 near-duplicate, 1 fewer rows than the recipe)` for the `names` dropped."""
    names = list(names)
    if not names:
        return "; no source is flagged (exclude_flagged left none out)"
    kinds = Counter(k for n in names for k in flags.get(n, {}))
    parts = ", ".join(f"{c} {FLAG_LABELS.get(k, k)}" for k, c in kinds.most_common())
    return f"; {len(names)} flagged source{'s' if len(names) != 1 else ''} left out ({parts})"


def flags_text(flags: dict[str, str] | None) -> str:
    """One line for a table cell: `near-duplicate; fewer rows than the recipe`."""
    return "; ".join(FLAG_LABELS.get(k, k) for k in (flags or {}))


def parse_flags(text: Any) -> dict[str, str] | None:
    """An index row's `flags` cell (JSON object of kind -> reason) read back; None when absent or malformed."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return value
