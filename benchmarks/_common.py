"""Helpers shared by the benchmark scripts."""

import json
import os
import resource
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks"
RESULTS = Path(__file__).resolve().parent / "results"
BITFIT_DIM = 18_432  # the default embedding's width: MiniLM BitFit without the attention key biases


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def require_data() -> None:
    if not (DATA_DIR / "manifest.json").is_file():
        sys.exit(f"benchmark needs the offline task suite at {DATA_DIR}")


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def machine() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
