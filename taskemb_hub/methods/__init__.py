"""PEFT methods: a name maps to the module that configures and embeds it.

Add a method with `@register_method` on a `PeftMethod` subclass; `get_method` finds it by its
name (`lora`) or by the peft type written in `adapter_config.json` (`LORA`). The registry lives in
`_registry.py`; importing this package registers the built-in methods.
"""

from __future__ import annotations

from ._registry import METHODS, get_method, list_methods, register_method
from .base import EmbeddingOptions, PeftMethod

# Importing the modules registers them.
from . import bitfit, ia3, lora, prefix_tuning, prompt_tuning  # noqa: F401

__all__ = ["EmbeddingOptions", "PeftMethod", "METHODS", "register_method", "get_method", "list_methods"]
