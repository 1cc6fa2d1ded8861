"""`taskemb-hub quickstart`: rank sources for a packaged task (offline)."""

from __future__ import annotations


def cmd_quickstart(args) -> int:
    from ..quickstart import run_quickstart

    return run_quickstart(task=args.task, as_json=args.json, top_k=args.top_k)
