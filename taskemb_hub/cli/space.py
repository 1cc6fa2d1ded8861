"""`taskemb-hub space`: serve the Space locally."""

from __future__ import annotations

from ._args import _command, _hub_time_args, _time_options


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


def register(sub) -> None:
    """Add `space` to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "space", "serve the Space locally: rank sources for your data, your adapter or a registry task",
                 cmd_space,
                 "examples:\n  taskemb-hub space                       # packaged registry, http://127.0.0.1:7860\n"
                 "  taskemb-hub space --registry my-registry --port 8080\n"
                 "  taskemb-hub space --registry hub --host 0.0.0.0\n"
                 "  taskemb-hub space --mcp                 # also an MCP server: http://127.0.0.1:7860/gradio_api/mcp/")
    p.add_argument("--registry", default="default", help="registry folder, 'default' (packaged) or the Hub forms "
                   "'rank --registry' takes")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-file-mb", type=float, default=20.0, help="largest upload accepted (default: 20)")
    p.add_argument("--max-rows", type=int, default=100_000, help="most rows of a data file (default: 100000)")
    p.add_argument("--base-model-path", action="append", help="a local copy of the registry's base model (repeatable)")
    p.add_argument("--refresh-minutes", type=float, default=None,
                   help="rebuild the registry in the background this often (default: only from the status tab)")
    p.add_argument("--mcp", action="store_true", help="also serve the ranking tools over MCP at /gradio_api/mcp/ "
                   "(pip install \"taskemb-hub[space]\", which brings gradio[mcp])")
    _hub_time_args(p)  # every Hub read of the server: registry (re)loads, adapters named by repo id
