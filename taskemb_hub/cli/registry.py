"""`taskemb-hub registry add|list|build|sync`: local registries and the Hub registry."""

from __future__ import annotations

from ._args import _hub_filters, _print, _selector, _time_options
from ._executor import _ray_resources, _refuse_ray_flags_locally


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
    selector = _selector(args.registry, None, **_time_options(args))
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
