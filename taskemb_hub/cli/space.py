"""`taskemb-hub space`: serve the Space locally."""

from __future__ import annotations

from ._args import _time_options


def cmd_space(args) -> int:
    import importlib.util

    from ..errors import TaskEmbHubError

    if importlib.util.find_spec("gradio") is None:  # before loading the registry: one line, not a traceback
        raise TaskEmbHubError('space needs gradio, an optional extra: pip install "taskemb-hub[space]".')
    from ..base_model import canonical_model_id
    from ..space import SpaceConfig, UploadLimits, launch

    limits = UploadLimits(max_file_bytes=int(args.max_file_mb * 1024 * 1024), max_rows=args.max_rows)
    paths = {canonical_model_id(p): p for p in args.base_model_path or []}
    refresh = args.refresh_minutes * 60 if args.refresh_minutes else None
    from ..registries._fetch import set_defaults

    set_defaults(**_time_options(args))  # every Hub read of this server: registry (re)loads, visitors' repo ids
    launch(args.registry, host=args.host, port=args.port,
           config=SpaceConfig(limits=limits, base_model_paths=paths, refresh_every_s=refresh), mcp=args.mcp)
    return 0
