"""One interface for every registry backend: a local folder, the packaged default, the Hub, a Hub index.

A backend yields `RegistryEntry` objects and records the entries it could not read in
`skipped` (name, reason) instead of raising, so one bad entry never hides the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

from ..embedding import TaskEmbedding


class RegistryEntry:
    """One source task of a registry.

    Args:
        name: the entry's name (a folder path inside a local registry, a repo id on the Hub).
        embedding: its task embedding, or None when `load` builds it on first access (index
            entries: the vectors stay in one memory-mapped matrix until a row is shown).
        location: where it lives: a folder, or `repo_id@sha` on the Hub.
        signature_hash: the embedding's signature hash, when known without loading it.
        load: a callable returning the `TaskEmbedding`, for lazy entries.
        info: a callable returning the embedding's metadata without its vector (an object with
            `task`, `base_model`, `method`, `signature`, `step`, `train_size`, `metrics`, `extra`),
            for lazy entries (an index writer reads it instead of loading the vector).
    """

    __slots__ = ("name", "location", "_embedding", "_load", "_signature_hash", "_info")

    def __init__(self, name: str, embedding: TaskEmbedding | None = None, location: str = "", *,
                 signature_hash: str | None = None, load: Callable[[], TaskEmbedding] | None = None,
                 info: Callable[[], object] | None = None):
        if embedding is None and load is None:
            raise ValueError("A RegistryEntry needs an embedding or a load() callable.")
        self.name, self.location = name, location
        self._embedding, self._load, self._signature_hash, self._info = embedding, load, signature_hash, info

    @property
    def info(self):
        """The embedding's metadata (task, base_model, method, step, ...), without loading its vector."""
        if self._embedding is None and self._info is not None:
            return self._info()
        return self.embedding

    @property
    def stored_row(self):
        """(unit row, norm) as an index stores them, for an index entry not loaded yet; else None."""
        return getattr(self._load, "stored_row", None) if self._embedding is None else None

    @property
    def embedding(self) -> TaskEmbedding:
        if self._embedding is None:
            self._embedding = self._load()
        return self._embedding

    @property
    def signature_hash(self) -> str:
        if self._signature_hash is None:
            self._signature_hash = self.embedding.signature_hash
        return self._signature_hash

    def __repr__(self) -> str:
        return f"RegistryEntry(name={self.name!r}, location={self.location!r})"


class Registry(ABC):
    """What every backend provides: `entries()` and the `skipped` list of the last read."""

    skipped: list[tuple[str, str]]

    @abstractmethod
    def entries(self) -> list[RegistryEntry]:
        """Every readable entry; unreadable ones go to `self.skipped` with their reason."""

    def describe(self) -> str:
        """A short, human-readable name of the backend (for messages and the Space's status)."""
        return type(self).__name__
