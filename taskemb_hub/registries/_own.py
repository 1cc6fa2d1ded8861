"""The registry entries that are a ranking's target itself: an adapter published to the Hub and then ranked against
the Hub would otherwise rank first at 1.0000 (its own repo)."""

from __future__ import annotations


def own_entries(selector, target) -> tuple[set[str], str]:
    """Names of the entries of `selector` that are `target` itself, and a note for `Ranking.why` ('' when none).

    An entry is the target when the target was read from its Hub repo (`extra["hub_repo"]`, which the Hub
    reader records), or when the entry's recorded vector fingerprint (the Hub reader records the sha256 of the
    vector it read) is the target's: the same saved embedding, e.g. the local folder that was published. Only
    entries comparable with the target are fingerprinted (the others never rank). `extra["source"]` is not
    used: it names the target's data (a dataset id may share a model repo's name).

    Args:
        selector: an `AutoSourceSelector`.
        target: the target `TaskEmbedding`.

    Returns:
        (entry names, note).
    """
    names = selector._positions("name")
    extra = target.extra if isinstance(target.extra, dict) else {}
    repo = extra.get("hub_repo")
    by_repo = {repo} if isinstance(repo, str) and repo in names else set()
    by_vector = _fingerprints(selector, target.signature_hash).get(_fingerprint(target), set()) - by_repo
    if not by_repo and not by_vector:
        return set(), ""
    parts = ([f"{', '.join(sorted(by_repo))} (the target's own Hub repo)"] if by_repo else []) + \
        ([f"{', '.join(sorted(by_vector))} (the target's own embedding, identical vector)"] if by_vector else [])
    return by_repo | by_vector, f"; left out {' and '.join(parts)}: the target itself is no source"


def _fingerprint(target) -> str:
    from ._entry_files import vector_fingerprint

    return vector_fingerprint(target.vector)


def _fingerprints(selector, signature_hash: str) -> dict[str, set[str]]:
    """Recorded vector fingerprint -> entry names, for the entries of one signature, built once per selector."""
    key = f"fingerprints:{signature_hash}"
    if key not in selector._lookup:
        found: dict[str, set[str]] = {}
        for i in selector._positions("hash").get(signature_hash, []):
            entry = selector.entries[i]
            extra = getattr(entry.info, "extra", None)
            fingerprint = extra.get("vector_sha256") if isinstance(extra, dict) else None
            if isinstance(fingerprint, str):
                found.setdefault(fingerprint, set()).add(entry.name)
        selector._lookup[key] = found
    return selector._lookup[key]
