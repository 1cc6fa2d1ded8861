"""Drop the attention key-bias blocks from stored BitFit task embeddings, in place.

    python benchmarks/convert_bitfit_key_bias.py [FOLDER ...] [--check]

BitFit's attention key biases get no gradient (softmax ignores the constant `q·b_k` they add to a
row of logits), so their blocks were float noise scaled to unit norm: 6 of the 36 blocks of a
MiniLM embedding. Today's embedding leaves them out (`taskemb_hub/methods/bitfit.py`). This
rewrites every `taskemb.safetensors`/`taskemb.json` under the folders (default: the benchmark's
`bitfit*` folders: `bitfit+mean`, `bitfit+mean@500`, ...) with those blocks cut out by the layout the signature records
(sorted module names and shapes): 20,736 -> 18,432 values on MiniLM, bit-for-bit what embedding
the adapters again would give. Idempotent: converted entries are left as they are. `--check`
changes nothing and exits 1 if any entry still needs converting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_FOLDERS = sorted((HERE / "results" / "embeddings").glob("bitfit*"))  # bitfit+mean, bitfit+mean@500, ...


def _metadata_only(embedding):
    """An entry whose vector was rewritten but not yet its metadata (a run stopped between the two files):
    the vector already has the converted length, so only the signature needs the key modules taken out."""
    import dataclasses
    import math

    from taskemb_hub.methods.bitfit import is_attention_key

    modules = embedding.signature.get("modules") or {}
    kept = {n: s for n, s in modules.items() if not is_attention_key(n)}
    if len(kept) == len(modules) or embedding.dim != sum(math.prod(s) for s in kept.values()):
        return None
    return dataclasses.replace(embedding, signature=dict(embedding.signature, modules=kept))


def convert_folder(root: Path, *, dry_run: bool = False) -> dict[str, int]:
    """Convert every BitFit embedding under `root`. Returns counts: converted, already (nothing to drop), other."""
    from taskemb_hub.embedding import EMBEDDING_NAME, TaskEmbedding
    from taskemb_hub.methods.bitfit import drop_gradient_free_blocks

    counts = {"converted": 0, "already": 0, "other": 0}
    for vector_file in sorted(root.rglob(EMBEDDING_NAME)):
        embedding = TaskEmbedding.load(vector_file.parent, check_tied=False)  # it finishes pairs cut mid-write
        if embedding.method != "bitfit":
            counts["other"] += 1
            continue
        converted = _metadata_only(embedding) or drop_gradient_free_blocks(embedding)
        if converted is embedding:
            counts["already"] += 1
            continue
        counts["converted"] += 1
        if not dry_run:
            converted.save(vector_file.parent)  # atomic per file: vector and metadata are rewritten whole
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, default=DEFAULT_FOLDERS)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything needs converting")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        print(f"No such folder: {', '.join(missing)}. Pass folders that hold taskemb.safetensors files.", file=sys.stderr)
        return 2
    pending = 0
    for folder in args.folders:
        counts = convert_folder(folder, dry_run=args.check)
        pending += counts["converted"]
        verb = "need converting" if args.check else "converted"
        print(f"{folder}: {counts['converted']} {verb}, {counts['already']} already without key biases"
              + (f", {counts['other']} not bitfit (left alone)" if counts["other"] else ""))
    return 1 if args.check and pending else 0


if __name__ == "__main__":
    sys.exit(main())
