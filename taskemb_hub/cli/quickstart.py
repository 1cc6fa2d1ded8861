"""`taskemb-hub quickstart`: rank sources for a packaged task (offline)."""

from __future__ import annotations

from ._args import _command, _int_arg


def cmd_quickstart(args) -> int:
    from ..quickstart import run_quickstart

    return run_quickstart(task=args.task, as_json=args.json, top_k=args.top_k)


def register(sub) -> None:
    """Add `quickstart` to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "quickstart", "rank sources for a task of the packaged registry (offline, seconds)",
                 cmd_quickstart, epilog="examples:\n  taskemb-hub quickstart\n"
                 "  taskemb-hub quickstart --task fever --top-k 3 --json")
    p.add_argument("--task", default="rotten_tomatoes",
                   help="a task of the packaged registry, ranked against the others (`registry list --registry "
                        "default` names them; default: rotten_tomatoes)")
    p.add_argument("--top-k", type=_int_arg("--top-k", 1, 5), default=5, help="how many sources to show (default: 5)")
