"""Bytes a reader of an index re-downloads after one entry changed, against the whole index.

A reader (`AutoSourceSelector.from_index`) fetches a new snapshot through the HF cache, whose blobs are named by
their content (etag): a file whose bytes did not change is not downloaded again. So the bytes re-downloaded after
an update are the bytes of the files of the new `index.json` that the old one did not list (plus `index.json`).
This writes a synthetic index, changes one entry's vector and sha, updates the index in place
(`write_index` over the entries read back: unchanged chunks are linked, not rewritten) and counts both.

    python benchmarks/index_update.py                 # 100,000 entries of 384 values
    python benchmarks/index_update.py --entries 20000 # quicker

Writes benchmarks/results/index_update.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskemb_hub.embedding import TaskEmbedding  # noqa: E402
from taskemb_hub.registries import RegistryEntry  # noqa: E402
from taskemb_hub.registries.index import read_index, write_index  # noqa: E402

SIGNATURE = {"method": "bitfit", "synthetic": True}


def _entry(i: int, vector: torch.Tensor, sha: str) -> RegistryEntry:
    emb = TaskEmbedding(vector=vector, task=f"task-{i}", base_model="org/base", method="bitfit", signature=SIGNATURE,
                        step=100, train_size=1000, metrics={"accuracy": 0.5}, extra={"recipe": {"max_steps": 100}})
    return RegistryEntry(f"org/task-{i:06d}", emb, f"org/task-{i:06d}@{sha}")


def _files(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file of the index: path -> (content hash, size): what the HF cache keys blobs by."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            out[path.relative_to(folder).as_posix()] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "index_update.json"))
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TASKEMB_HUB_INDEX_CACHE", str(Path(tmp) / "assembled"))
        folder = Path(tmp) / "index"
        start = time.perf_counter()
        entries = [_entry(i, torch.randn(args.dim, generator=g) + 1, f"{i:040x}") for i in range(args.entries)]
        write_index(entries, folder)
        build_s = time.perf_counter() - start
        del entries
        before = _files(folder)
        start = time.perf_counter()
        contents = read_index(folder)
        changed = args.entries // 2
        name = f"org/task-{changed:06d}"
        updated = [e for e in contents.entries if e.name != name]
        updated.append(_entry(changed, torch.randn(args.dim, generator=g) + 1, "f" * 40))
        write_index(updated, folder)
        update_s = time.perf_counter() - start
        after = _files(folder)
    known = {digest for digest, _ in before.values()}
    fetched = {path: size for path, (digest, size) in after.items() if digest not in known}
    total = sum(size for _, size in after.values())
    again = sum(fetched.values())
    result = {"entries": args.entries, "dim": args.dim, "dtype": "float16", "files": len(after),
              "index_bytes": total, "redownloaded_bytes": again, "ratio": round(again / total, 5),
              "redownloaded_files": sorted(fetched), "build_s": round(build_s, 1), "update_s": round(update_s, 1),
              "load_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.entries} entries x {args.dim} values: index {total / 1e6:.1f} MB in {len(after)} files; after one "
          f"entry changed a reader re-downloads {again / 1e6:.2f} MB ({len(fetched)} files), ratio {again / total:.4f} "
          f"(build {build_s:.0f} s, update {update_s:.0f} s, load {result['load_1min']})")


if __name__ == "__main__":
    main()
