"""`taskemb-hub tune`: tune a PEFT method on a task, keeping early checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ._args import _load, _print

# The built-in PEFT methods, for `tune --method` without importing `taskemb_hub.methods` (torch);
# test_cli_start checks it against `list_methods()`.
BUILTIN_METHODS = ("bitfit", "ia3", "lora", "prefix", "prompt")


def _check_base_model(name: str | None) -> None:
    """`--base-model`: an existing folder holding config.json, or something that can be a Hub id (a missing path
    would otherwise end in a transformers traceback about repo ids)."""
    from ..base_model import _PACKAGED_ALIASES

    if name is None or name in _PACKAGED_ALIASES or name.startswith("local:"):  # resolve_base_model answers these
        return
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        valid_id = not path.exists() and not name.startswith((".", "/", "~")) and validate_repo_id(name) is None
    except HFValidationError:
        valid_id = False
    if not valid_id:
        from ..errors import TaskEmbHubError

        raise TaskEmbHubError(f"{name} is neither a local model folder nor a Hub model id; pass a folder holding "
                              "config.json or a Hub id.")


def cmd_tune(args) -> int:
    _check_base_model(args.base_model)  # before the data loads and the model tunes
    from ..training import TuningConfig, plan_runs, tune

    rows_cap = {} if args.max_train_examples is None else {  # default: the packaged recipe's (TuningConfig's)
        "max_train_examples": None if args.max_train_examples == "all" else args.max_train_examples}
    plans = plan_runs([int(s) for s in args.save_steps.split(",") if s], args.max_steps)
    configs = [TuningConfig(method=args.method, base_model=args.base_model, max_steps=steps, save_steps=keep,
                            batch_size=args.batch_size, learning_rate=args.learning_rate, max_length=args.max_length,
                            eval_examples=args.eval_examples, seed=args.seed, push_to_hub=args.push_to_hub,
                            hub_private=args.private, hub_base_model_id=args.base_model_id, **rows_cap)
               for steps, keep in plans]  # all checked before the first run starts
    task = _load(args, args.task)
    if len(configs) > 1 and not args.json:
        print(f"note: steps up to {configs[0].max_steps} come from a {configs[0].max_steps}-step run (the packaged "
              f"registry's recipe), later ones from a {configs[1].max_steps}-step run: a checkpoint is comparable only "
              "with runs of its length. Pass --max-steps for a single run.", file=sys.stderr)
    checkpoints = []
    for i, cfg in enumerate(configs):
        checkpoints += tune(task, cfg, args.out, progress=not args.json, resume=not args.restart,
                            run_file="run.json" if i == 0 else f"run-{cfg.max_steps}-steps.json")
    rows = [{"step": c.step, "path": str(c.path), "metrics": c.metrics, "dim": c.embedding.dim} for c in checkpoints]
    _print(args, rows, "\n".join(f"step {r['step']:>5}  {r['path']}  {json.dumps(r['metrics'])}" for r in rows))
    return 0


def _method_choices() -> list[str]:
    """`tune --method` choices: the registered methods when `taskemb_hub.methods` is loaded already (a plugin
    registered one), else the built-in ones (importing it would import torch)."""
    methods = sys.modules.get("taskemb_hub.methods")
    return methods.list_methods() if methods is not None else list(BUILTIN_METHODS)
