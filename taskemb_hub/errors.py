"""Errors that name the problem and the fix.

Every error raised on bad user input derives from `TaskEmbHubError`, so callers can catch
one class; the message always says what was wrong and what to do about it.
"""


class TaskEmbHubError(Exception):
    """Base class of all taskemb-hub errors raised on bad input."""


class AdapterError(TaskEmbHubError):
    """An adapter folder or state dict cannot be read or is not usable."""


class UnsafeWeightsError(AdapterError):
    """Refused to unpickle a `.bin` file without an explicit opt-in."""


class IncompatibleEmbeddingError(TaskEmbHubError):
    """Two embeddings live in different spaces (base model, method or shapes differ)."""


class UnknownMethodError(TaskEmbHubError, KeyError):
    """A PEFT method name or type that no registered method handles."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(TaskEmbHubError):
    """A task's data cannot be loaded as asked (missing file, column or label)."""


class RegistryError(TaskEmbHubError):
    """A registry is empty, unreadable, or an entry cannot be added."""
