"""Registry backends behind one interface (`Registry.entries()` + `skipped`); `open_registry(spec)` opens the one
a `--registry` string names (the Hub and index backends are imported only when named)."""

from ._open import open_registry
from .base import Registry, RegistryEntry
from .local import LocalRegistry, PackagedRegistry

__all__ = ["Registry", "RegistryEntry", "LocalRegistry", "PackagedRegistry", "open_registry"]
