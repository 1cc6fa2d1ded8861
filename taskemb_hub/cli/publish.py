"""`taskemb-hub publish`: push an adapter with its embedding and model card to the Hub."""

from __future__ import annotations

from ._args import _command, _print


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


def register(sub) -> None:
    """Add `publish` to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "publish", "push an adapter with its embedding and a tagged model card to the Hub", cmd_publish,
                 "examples:\n  taskemb-hub publish runs/rt-bitfit/step-100 --repo-id me/rotten-tomatoes-bitfit --dry-run\n"
                 "  taskemb-hub publish runs/rt-bitfit/step-100 --repo-id me/rotten-tomatoes-bitfit\n"
                 "  taskemb-hub publish runs/rt-bitfit/step-50 --repo-id me/rotten-tomatoes-bitfit --revision step-50")
    p.add_argument("path")
    p.add_argument("--repo-id", required=True)
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing), e.g. step-50")
    p.add_argument("--dry-run", action="store_true", help="print the card and the file list; upload nothing")
    p.add_argument("--base-model-id", default=None,
                   help="Hub id of the base model when it was loaded from a local folder (paths are never uploaded)")
    p.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT)")
