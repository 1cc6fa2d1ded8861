"""A Hub repo as the listing states it (`RepoRef`: commit, files, their sizes and blob ids) and what one sync did
(`SyncReport`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..adapters import WEIGHTS_NAME
from ..cards import base_model_tag
from ..embedding import EMBEDDING_NAME, METADATA_NAME, TaskEmbedding
from ._hub_errors import EntryFailure
from .base import RegistryEntry

@dataclass
class RepoRef:
    """A repo as listed: its id, the commit it is at, its files, and whether it carries the registry tag.

    `meta` maps a file to `(size, etag)` where the listing (or a paths-info call) stated them; the etag is
    the LFS sha256, else the git blob id: what the Hub's HEAD answers and the HF cache names blobs by.
    """

    repo_id: str
    sha: str
    files: list[str]
    tagged: bool = True
    license: str | None = None
    meta: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)
    tagged_bases: list[str] = field(default_factory=list)  # the base models its card's `taskemb-base:` tags name


def _file_meta(file) -> tuple[int, str] | None:
    """`(size, etag)` of a `RepoSibling` / `RepoFile`, or None when it does not say both."""
    lfs = getattr(file, "lfs", None)
    size, etag = (lfs.size, lfs.sha256) if lfs is not None else (file.size, getattr(file, "blob_id", None))
    return (int(size), etag) if size is not None and etag else None


def _ref(model, *, tagged: bool) -> RepoRef:
    card = getattr(model, "card_data", None) or getattr(model, "cardData", None)
    license_ = card.get("license") if hasattr(card, "get") else getattr(card, "license", None)
    siblings = model.siblings or []
    meta = {s.rfilename: m for s in siblings if (m := _file_meta(s)) is not None}
    prefix = base_model_tag("")
    bases = [t[len(prefix):] for t in (model.tags or []) if isinstance(t, str) and t.startswith(prefix)]
    return RepoRef(model.id, model.sha, [s.rfilename for s in siblings], tagged=tagged,
                   license=license_ if isinstance(license_, str) else None, meta=meta, tagged_bases=bases)


@dataclass
class SyncReport:
    """What one sync did.

    Args:
        listed: repos the listing returned (after filters).
        reused: entries taken as they were (unchanged commit in a given index).
        cached: entries taken from the last sync's parsed copy (unchanged commit; no file read).
        fetched: entries read from the Hub or the HF cache.
        failed: repos that could not be read, with the reason (also in `HubRegistry.skipped`).
        seconds: wall time of the sync.
        source: `hub`, or `cache` when the listing came from the last sync.
        note: why the cache was used, when it was.
    """

    listed: int = 0
    reused: int = 0
    cached: int = 0
    fetched: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    source: str = "hub"
    note: str = ""
    synced_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "reused": self.reused, "cached": self.cached, "fetched": self.fetched, "seconds": round(self.seconds, 3),
                "source": self.source, "note": self.note, "synced_at": self.synced_at,
                "failed": [{"repo": r, "reason": why} for r, why in self.failed]}


def _has_embedding_files(ref: RepoRef) -> bool:
    """Whether `fetch` reads `ref`'s saved embedding (else it embeds the adapter's weights here)."""
    return ref.tagged and {EMBEDDING_NAME, METADATA_NAME} <= set(ref.files)


def _check_tied_to_weights(embedding: TaskEmbedding, ref: RepoRef) -> None:
    """A saved vector must come from the adapter weights the repo holds now: the listing (or paths-info) states
    their LFS sha256, the vector's files record the sha256 of the weights it was computed from."""
    recorded = getattr(embedding, "adapter_sha256", None)
    size_and_etag = ref.meta.get(WEIGHTS_NAME)
    if not recorded or size_and_etag is None or not re.fullmatch(r"[0-9a-f]{64}", str(size_and_etag[1])):
        return  # an older embedding without a hash, or weights not stored through LFS: nothing to compare
    if size_and_etag[1] != recorded:
        raise EntryFailure(f"its {EMBEDDING_NAME} was computed from other adapter weights than its "
                           f"{WEIGHTS_NAME} (re-pushed since): embed and publish it again with `taskemb-hub publish`")


def parse_key_of(entry: RegistryEntry) -> str | None:
    """The `HubRegistry.parse_key` an entry was parsed under (None for an entry of an older version)."""
    extra = getattr(entry.info, "extra", None)
    return extra.get("hub_parse_key") if isinstance(extra, dict) else None

