"""`taskemb-hub publish`: push an adapter with its embedding and model card to the Hub."""

from __future__ import annotations

from ._args import _print


def cmd_publish(args) -> int:
    from ..publishing import publish

    result = publish(args.path, args.repo_id, private=args.private, endpoint=args.endpoint, revision=args.revision,
                     dry_run=args.dry_run, base_model_id=args.base_model_id)
    if args.dry_run:
        text = f"dry run: would upload to {args.repo_id} ({result.revision}):\n" + "\n".join(
            f"  {f}" for f in result.files) + f"\n\n{result.card}" + (f"\n\nnote: {result.note}" if result.note else "")
    elif result.committed:
        text = f"published {args.path} to {args.repo_id}: {result.url}"
    else:
        text = f"{args.repo_id} already holds this content: no new commit ({result.url})"
    payload = result.to_dict() if args.json else {}
    _print(args, payload, text)
    return 0
