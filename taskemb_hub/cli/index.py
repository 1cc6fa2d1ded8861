"""`taskemb-hub index build|push|serve-webhooks`: the registry index (one Hub dataset repo)."""

from __future__ import annotations

from ._args import _hub_filters, _print, _time_options


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
