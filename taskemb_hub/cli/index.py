"""`taskemb-hub index build|push|serve-webhooks`: the registry index (one Hub dataset repo)."""

from __future__ import annotations

import argparse

from ._args import _add_hub_args, _command, _hub_filters, _hub_time_args, _int_arg, _print, _time_options


def cmd_index_build(args) -> int:
    from ..errors import RegistryError

    if not args.repo_id and not args.out:
        raise RegistryError("index build needs --repo-id (the index dataset repo) or --out (a folder), or both.")
    filters = _hub_filters(args)
    from ..registries.index import build_index

    report = build_index(args.repo_id, folder=args.out, tag=args.tag, endpoint=args.endpoint, push=not args.no_push,
                         private=args.private, progress=not args.json, **_time_options(args), **filters)
    text = (f"index {args.repo_id or args.out}: {report.entries} entries in {report.shards} signature shard(s) "
            f"({report.fetched} new or changed, {report.reused} unchanged), {len(report.failed)} failed, "
            f"{report.seconds:.1f} s; " + (f"pushed {report.url}" if report.committed else "no new commit"))
    text += "".join(f"\n  failed {repo}: {why}" for repo, why in report.failed)
    _print(args, report.to_dict(), text)
    return 0


def cmd_index_push(args) -> int:
    from ..registries.index import push_index

    url, committed = push_index(args.folder, args.repo_id, endpoint=args.endpoint, private=args.private)
    _print(args, {"url": url, "committed": committed},
           f"pushed {args.folder} to {args.repo_id}: {url}" if committed else f"{args.repo_id} is up to date: no new commit")
    return 0


def cmd_index_serve_webhooks(args) -> int:
    import os

    from ..errors import RegistryError
    from ..registries._webhooks import IndexUpdater, serve

    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # huggingface_hub's WebhooksServer runs on gradio's server
        raise RegistryError('index serve-webhooks needs gradio: pip install "taskemb-hub[space]".')
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        raise RegistryError(f"${args.secret_env} is empty: set it to the secret of the Hub webhook (settings -> "
                            "webhooks), or name another variable with --secret-env.")
    updater = IndexUpdater(args.index, endpoint=args.endpoint, debounce_s=args.debounce, **_time_options(args))
    entries = updater.prime()
    print(f"following the Hub for {args.index} ({entries} entries): POST http://{args.host}:{args.port}/webhooks/index")
    serve(updater, secret, host=args.host, port=args.port)
    return 0


def register(sub) -> None:
    """Add `index` and its verbs build, push, serve-webhooks to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "index", "build or push a registry index (one Hub dataset repo holding every entry)", None,
                 "examples:\n  taskemb-hub index build --repo-id me/taskemb-index\n"
                 "  taskemb-hub index build --out my-index --no-push\n"
                 "  taskemb-hub index push my-index --repo-id me/taskemb-index\n"
                 "  taskemb-hub rank --target runs/rt-bitfit/step-100 --registry index:me/taskemb-index")
    idx = p.add_subparsers(dest="verb", required=True)
    q = idx.add_parser("build", help="collect every tagged entry into an index, incrementally, and push it in one commit",
                       description="Build the registry index: only repos whose commit changed since the current "
                                   "index are downloaded; the result is pushed in one commit (none when unchanged).",
                       epilog="examples:\n  taskemb-hub index build --tag taskemb-hub --repo-id me/taskemb-index\n"
                              "  taskemb-hub index build --repo-id me/taskemb-index --base-model "
                              "sentence-transformers/all-MiniLM-L6-v2 --include-untagged\n"
                              "  taskemb-hub index build --out my-index --no-push",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--repo-id", default=None, help="the index dataset repo (start point and push target)")
    q.add_argument("--out", default=None, help="also write the index into this folder")
    q.add_argument("--no-push", action="store_true", help="build only")
    q.add_argument("--private", action="store_true", help="create the index repo private")
    _add_hub_args(q)
    q.set_defaults(func=cmd_index_build)
    q = idx.add_parser("push", help="push an index folder to a Hub dataset repo",
                       epilog="example:\n  taskemb-hub index push my-index --repo-id me/taskemb-index",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("folder")
    q.add_argument("--repo-id", required=True)
    q.add_argument("--private", action="store_true")
    q.add_argument("--endpoint", default=None)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_index_push)
    q = idx.add_parser("serve-webhooks", help="keep an index current: apply Hub webhook events, one commit per burst",
                       description="Serve POST /webhooks/index (huggingface_hub's WebhooksServer): a repo update of a "
                                   "tagged adapter re-reads that repo and updates the index in one commit; a deletion "
                                   "removes its entry. The secret is checked (X-Webhook-Secret).",
                       epilog="example:\n  WEBHOOK_SECRET=... taskemb-hub index serve-webhooks --index me/taskemb-index "
                              "--secret-env WEBHOOK_SECRET --host 0.0.0.0 --port 7860",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--index", required=True, help="the index dataset repo to keep current")
    q.add_argument("--secret-env", default="WEBHOOK_SECRET", help="environment variable holding the webhook secret")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=_int_arg("--port", 1, 7860), default=7860)
    q.add_argument("--debounce", type=float, default=2.0, help="seconds of quiet before a burst is applied")
    q.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT)")
    _hub_time_args(q)
    q.set_defaults(func=cmd_index_serve_webhooks)
