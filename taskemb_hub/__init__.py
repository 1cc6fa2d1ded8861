"""taskemb-hub: efficiently tuned parameters as task embeddings, on the Hugging Face Hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from .errors import (AdapterError, DataError, IncompatibleEmbeddingError, RegistryError, TaskEmbHubError,
                     UnknownMethodError, UnsafeWeightsError)

# The public names below live in modules that import torch / transformers (about 1.5 s). They are
# imported on first use (PEP 562), so `import taskemb_hub.cli` and `taskemb-hub --help` stay fast.
_LAZY = {
    "DEFAULT_BASE_MODEL": ".base_model",
    "TaskData": ".data", "load_task": ".data",
    "TaskEmbedding": ".embedding", "load_embedding": ".embedding",
    "EmbeddingOptions": ".methods", "get_method": ".methods", "list_methods": ".methods",
    "register_method": ".methods",
    "LocalRegistry": ".registries.local",
    "AutoSourceSelector": ".ranking.selector", "Ranking": ".ranking.selector",
    "TuningConfig": ".tuning.training", "tune": ".tuning.training",
}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time `__getattr__` imports them
    from .base_model import DEFAULT_BASE_MODEL
    from .data import TaskData, load_task
    from .embedding import TaskEmbedding, load_embedding
    from .methods import EmbeddingOptions, get_method, list_methods, register_method
    from .registries.local import LocalRegistry
    from .ranking.selector import AutoSourceSelector, Ranking
    from .tuning.training import TuningConfig, tune


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["DEFAULT_BASE_MODEL", "TaskData", "load_task", "TaskEmbedding", "load_embedding", "EmbeddingOptions",
           "get_method", "list_methods", "register_method", "TuningConfig", "tune", "AutoSourceSelector", "Ranking",
           "LocalRegistry", "TaskEmbHubError", "AdapterError",
           "DataError", "IncompatibleEmbeddingError", "RegistryError", "UnknownMethodError", "UnsafeWeightsError"]
