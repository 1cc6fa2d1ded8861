"""taskemb-hub: efficiently tuned parameters as task embeddings, on the Hugging Face Hub."""

__version__ = "0.1.0"

from .base_model import DEFAULT_BASE_MODEL
from .data import TaskData, load_task
from .embedding import TaskEmbedding, load_embedding
from .errors import (AdapterError, DataError, IncompatibleEmbeddingError, RegistryError, TaskEmbHubError,
                     UnknownMethodError, UnsafeWeightsError)
from .methods import EmbeddingOptions, get_method, list_methods, register_method
from .registries.local import LocalRegistry
from .selector import AutoSourceSelector, Ranking
from .training import TuningConfig, tune

__all__ = ["DEFAULT_BASE_MODEL", "TaskData", "load_task", "TaskEmbedding", "load_embedding", "EmbeddingOptions",
           "get_method", "list_methods", "register_method", "TuningConfig", "tune", "AutoSourceSelector", "Ranking",
           "LocalRegistry", "TaskEmbHubError", "AdapterError",
           "DataError", "IncompatibleEmbeddingError", "RegistryError", "UnknownMethodError", "UnsafeWeightsError"]
