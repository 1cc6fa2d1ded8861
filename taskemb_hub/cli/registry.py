"""`taskemb-hub registry add|list|build|sync`: local registries and the Hub registry."""

from __future__ import annotations

import argparse

from ._args import _add_hub_args, _command, _hub_filters, _hub_time_args, _print, _time_options
from ._executor import _add_executor_args, _ray_resources, _refuse_ray_flags_locally


def cmd_registry_add(args) -> int:
    if args.registry == "default":  # `list`/`rank` read the packaged registry under this name: never a folder
        from ..errors import RegistryError

        raise RegistryError("'default' is the packaged registry, which is read-only; name a folder, e.g. "
                            "--registry my-registry.")
    from ..registries.local import LocalRegistry

    path = LocalRegistry(args.registry, create=True).add(args.path, name=args.name, overwrite=args.overwrite)
    _print(args, {"entry": str(path)}, f"added {path}")
    return 0


def cmd_registry_list(args) -> int:
    from ..registries import open_registry
    from ..ranking.selector import AutoSourceSelector

    selector = AutoSourceSelector.from_registry(open_registry(args.registry, **_time_options(args)))
    rows = [{"name": e.name, "task": e.embedding.task, "method": e.embedding.method, "base_model": e.embedding.base_model,
             "step": e.embedding.step, "dim": e.embedding.dim, "signature": e.embedding.signature_hash}
            for e in selector.entries]
    text = "\n".join(f"{r['name']:<40} {r['method']:<7} step {r['step']}  dim {r['dim']}  {r['signature']}" for r in rows)
    _print(args, {"entries": rows, "skipped": selector.skipped}, text)
    return 0


def cmd_registry_sync(args) -> int:
    filters = _hub_filters(args)  # a bad --timeout is refused before torch is imported
    from ..registries.hub import HubRegistry

    registry = HubRegistry(args.tag, endpoint=args.endpoint, **_time_options(args), **filters)
    registry.progress = not args.json
    entries = registry.entries()
    report = registry.report
    lines = [f"{registry.describe()}: {len(entries)} entries ({report.fetched} read, {report.cached} unchanged since "
             f"the last sync, {report.reused} reused), "
             f"{len(report.failed)} failed, {report.seconds:.1f} s" + (f" [{report.note}]" if report.note else "")]
    lines += [f"  failed {repo}: {why}" for repo, why in report.failed]
    _print(args, {"entries": [e.name for e in entries], **report.to_dict()}, "\n".join(lines))
    return 0


def cmd_registry_build(args) -> int:
    from ..executors.registry_build import PublishOptions, build_registry, load_spec

    if args.executor != "ray":
        _refuse_ray_flags_locally(args)
    spec = load_spec(args.spec)
    resources = _ray_resources(args) if args.executor == "ray" else None
    publish = PublishOptions(owner=args.publish, private=args.private, endpoint=args.endpoint,
                             base_model_id=args.base_model_id) if args.publish else None
    report = build_registry(spec, args.registry, executor=args.executor, overwrite=args.overwrite, publish=publish,
                            address=args.address, resources=resources, log=(lambda _: None) if args.json else print)
    _print(args, report.to_dict(), f"{args.registry}: {len(report.added)} added, {len(report.skipped)} already there, "
                                   f"{len(report.failed)} failed, {len(report.published)} published ({report.seconds}s)")
    return 1 if report.failed else 0


def register(sub) -> None:
    """Add `registry` and its verbs add, list, build, sync to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "registry", "manage a local registry", None,
                 "examples:\n  taskemb-hub registry add runs/rt-bitfit/step-100 --registry my-registry\n"
                 "  taskemb-hub registry list --registry my-registry\n"
                 "  taskemb-hub registry list                        # the packaged registry\n"
                 "  taskemb-hub registry build tasks.yaml --registry my-registry\n"
                 "  taskemb-hub registry sync --hub --base-model sentence-transformers/all-MiniLM-L6-v2")
    reg = p.add_subparsers(dest="verb", required=True)
    q = reg.add_parser("add", help="add an adapter folder as an entry", description="Add an adapter folder (with "
                       "its embedding, computed if missing) as an entry of a local registry folder.",
                       epilog="examples:\n  taskemb-hub registry add runs/rt-bitfit/step-100 --registry my-registry\n"
                              "  taskemb-hub registry add runs/rt-bitfit/step-50 --registry my-registry --name rt50\n"
                              "  taskemb-hub registry add runs/rt-bitfit/step-100 --registry my-registry --overwrite",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("path", help="the adapter folder (what peft's save_pretrained or `taskemb-hub tune` wrote)")
    q.add_argument("--registry", required=True, help="the registry folder (created if missing); 'default', the "
                   "packaged registry, is read-only")
    q.add_argument("--name", default=None, help="the entry's name (default: <task>-<method>-step<N>)")
    q.add_argument("--overwrite", action="store_true", help="replace an entry of that name (default: refuse)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_registry_add)
    q = reg.add_parser("list", help="list the entries", description="List a registry's entries.",
                       epilog="examples:\n  taskemb-hub registry list                        # the packaged registry\n"
                              "  taskemb-hub registry list --registry my-registry --json\n"
                              "  taskemb-hub registry list --registry index:me/taskemb-index",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--registry", default="default", help="registry folder, 'default' (the packaged registry; the "
                   "default), 'hub' / 'hub:<tag>', or 'index:<repo id or folder>'")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    _hub_time_args(q)  # with --registry hub / index:<repo>
    q.set_defaults(func=cmd_registry_list)
    q = reg.add_parser("build", help="tune one embedding per task of a YAML/JSON spec into a registry folder",
                       description="Tune every task of SPEC (task folders, data files or Hub datasets) with one recipe "
                                   "into an entry of --registry; entries already there are skipped, so a stopped build "
                                   "resumes. With --executor ray every task is a Ray task (pip install "
                                   "\"taskemb-hub[ray]\").",
                       epilog="examples:\n  taskemb-hub registry build tasks.yaml --registry my-registry\n"
                              "  taskemb-hub registry build tasks.yaml --registry my-registry --executor ray "
                              "--gpus-per-run 1/4\n"
                              "  taskemb-hub registry build tasks.yaml --registry my-registry --publish me\n\n"
                              "tasks.yaml:\n  tuning: {method: bitfit, max_steps: 100}   # optional; default: the "
                              "packaged registry's recipe\n  tasks:\n    - path: ../shared/data/tasks/rotten_tomatoes\n"
                              "    - {dataset: glue, config: sst2, text_column: sentence, name: sst2}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("spec", help="YAML or JSON: a list of tasks, or {tuning: {...}, tasks: [...]}")
    q.add_argument("--registry", required=True, help="the registry folder (created if missing)")
    q.add_argument("--overwrite", action="store_true", help="rebuild entries already in the registry")
    q.add_argument("--publish", default=None, metavar="OWNER", help="also push each new entry to OWNER/<name>-<method>")
    q.add_argument("--private", action="store_true", help="with --publish: create the repos private")
    q.add_argument("--base-model-id", default=None, help="with --publish and a local base model: its Hub id")
    q.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT)")
    _add_executor_args(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_registry_build)
    q = reg.add_parser("sync", help="read a Hub registry into the local HF cache and report every entry that fails",
                       description="Sync the Hub registry into the huggingface_hub cache (an unchanged re-sync "
                                   "downloads nothing) and report each repo that cannot be read, with the reason.",
                       epilog="examples:\n  taskemb-hub registry sync --hub --base-model sentence-transformers/all-MiniLM-L6-v2\n"
                              "  taskemb-hub registry sync --hub --method bitfit --include-untagged --base-model "
                              "sentence-transformers/all-MiniLM-L6-v2 --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--hub", action="store_true", required=True, help="sync from the Hub (the only source to sync)")
    _add_hub_args(q)
    q.set_defaults(func=cmd_registry_sync)
