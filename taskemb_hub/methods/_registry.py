"""Registry of PEFT methods: a name maps to the module that configures and embeds it.

Add a method with `@register_method` on a `PeftMethod` subclass; `get_method` finds it by its
name (`lora`) or by the peft type written in `adapter_config.json` (`LORA`).

A leaf module, as peft keeps `register_peft_method` in `peft.utils`: the method modules import
`register_method` from here, and the package's `__init__` imports them to register them.
"""

from __future__ import annotations

from ..errors import UnknownMethodError
from .base import PeftMethod

METHODS: dict[str, PeftMethod] = {}


def register_method(cls):
    """Class decorator: make a `PeftMethod` available under its `name` and `peft_type`."""
    instance = cls()
    METHODS[cls.name] = instance
    return cls


def list_methods() -> list[str]:
    return sorted(METHODS)


def get_method(name_or_peft_type: str) -> PeftMethod:
    """The method for a name (`lora`, `bitfit`...) or a peft type (`LORA`, `BEFT`...).

    Raises:
        UnknownMethodError: listing the names that are available.
    """
    key = str(name_or_peft_type)
    if key in METHODS:
        return METHODS[key]
    for method in METHODS.values():
        if method.peft_type == key.upper() or method.peft_type == key.split(".")[-1].upper():
            return method
    raise UnknownMethodError(
        f"Unknown PEFT method {name_or_peft_type!r}. Available: {', '.join(list_methods())} "
        f"(peft types: {', '.join(sorted(m.peft_type for m in METHODS.values()))})."
    )
