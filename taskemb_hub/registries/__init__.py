"""Registry backends behind one interface (`Registry.entries()` + `skipped`)."""

from .base import Registry, RegistryEntry
from .local import LocalRegistry

__all__ = ["Registry", "RegistryEntry", "LocalRegistry"]
