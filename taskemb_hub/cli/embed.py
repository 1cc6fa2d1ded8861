"""`taskemb-hub embed`: an adapter folder's tuned weights as a task embedding."""

from __future__ import annotations

from pathlib import Path

from ._args import _print


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
