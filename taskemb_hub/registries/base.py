"""One interface for every registry backend: a local folder, the packaged default, the Hub, a Hub index.

A backend yields `RegistryEntry` objects and records the entries it could not read in
`skipped` (name, reason) instead of raising, so one bad entry never hides the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..embedding import TaskEmbedding


@dataclass
class RegistryEntry:
    """One source task of a registry.

    Args:
        name: the entry's name (a folder path inside a local registry, a repo id on the Hub).
        embedding: its task embedding.
        location: where it lives: a folder, or `repo_id@sha` on the Hub.
    """

    name: str
    embedding: TaskEmbedding
    location: str


class Registry(ABC):
    """What every backend provides: `entries()` and the `skipped` list of the last read."""

    skipped: list[tuple[str, str]]

    @abstractmethod
    def entries(self) -> list[RegistryEntry]:
        """Every readable entry; unreadable ones go to `self.skipped` with their reason."""

    def describe(self) -> str:
        """A short, human-readable name of the backend (for messages and the Space's status)."""
        return type(self).__name__
