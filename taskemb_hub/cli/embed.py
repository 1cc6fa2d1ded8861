"""`taskemb-hub embed`: an adapter folder's tuned weights as a task embedding."""

from __future__ import annotations

from pathlib import Path

from ._args import _command, _print


def cmd_embed(args) -> int:
    from ..embedding import TaskEmbedding

    from ..methods import EmbeddingOptions

    options = EmbeddingOptions(pooling=args.pooling, relative_to_init=not args.raw_prompt)
    emb = TaskEmbedding.from_adapter(args.path, allow_pickle=args.allow_pickle, base_model=args.base_model,
                                     options=options)
    if not args.no_save:
        emb.save(args.path)
    meta = emb.metadata()
    _print(args, meta, f"{emb.task}: {emb.method} embedding, {emb.dim} values, signature {emb.signature_hash}"
                       + ("" if args.no_save else f"\nsaved {Path(args.path) / 'taskemb.safetensors'}"))
    return 0


def register(sub) -> None:
    """Add `embed` to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "embed", "turn an adapter folder's tuned weights into a task embedding (taskemb.safetensors)",
                 cmd_embed,
                 "examples:\n  taskemb-hub embed runs/rt-bitfit/step-100\n"
                 "  taskemb-hub embed runs/rt-prompt/step-100 --raw-prompt --no-save   # SPoT-style")
    p.add_argument("path")
    p.add_argument("--pooling", choices=["mean", "flatten"], default="mean",
                   help="prompt/prefix: mean over virtual tokens, or keep them all")
    p.add_argument("--raw-prompt", action="store_true",
                   help="prompt/prefix: embed the raw tuned tokens (SPoT-style), not their change from init")
    p.add_argument("--base-model", default=None, help="refuse adapters tuned on another base model")
    p.add_argument("--allow-pickle", action="store_true", help="read a pickle adapter_model.bin (trusted files only)")
    p.add_argument("--no-save", action="store_true", help="print only; do not write taskemb.safetensors")
