"""`taskemb-hub quickstart`: rank sources for one task of the packaged registry, offline, in seconds."""

from __future__ import annotations

import json

from .default_registry import DEFAULT_METHOD
from .ranking.selector import AutoSourceSelector

NEXT_STEPS = f"""
Rank sources for your own data (tunes a quick early checkpoint of it first):
  taskemb-hub rank --data my.csv --text-column text --label-column label --registry default
From Python, with a checkpoint of `taskemb-hub tune --method {DEFAULT_METHOD} ...`:
  from taskemb_hub import AutoSourceSelector
  AutoSourceSelector.from_default().rank("runs/my-task-{DEFAULT_METHOD}/step-100", top_k=5).to_pandas()
"""


def run_quickstart(task: str = "rotten_tomatoes", *, as_json: bool = False, top_k: int = 5) -> int:
    selector = AutoSourceSelector.from_default()
    ranking = selector.rank(task, top_k=top_k)  # an entry name: that entry is left out (leave-one-out)
    if as_json:
        print(json.dumps(ranking.to_dict(), indent=2, default=str))
        return 0
    print(f"Packaged registry: {len(selector.entries)} tasks tuned with {ranking.target.method} on "
          f"{ranking.target.base_model}.")
    print(f"Pretend {task!r} is your new target; the other tasks are candidate sources.\n")
    print(ranking)
    print(NEXT_STEPS)
    return 0
