"""The registry shipped in the package: embeddings and metadata (no data, no weights) of the
16 classification tasks of the offline suite, built by `benchmarks/build_default_registry.py`."""

from pathlib import Path

# The PEFT method of the packaged registry's entries; `taskemb-hub tune` defaults to it so that a
# target tuned without options is comparable with the packaged sources.
DEFAULT_METHOD = "bitfit"


def default_registry_path() -> Path:
    return Path(__file__).parent / "entries"


def default_textemb_path() -> Path:
    """TextEmb vectors (Vu et al. 2020) of the same 16 tasks: the packaged registry's `fusion` ranker reads them."""
    return Path(__file__).parent / "textemb"
