"""`taskemb-hub tune`: tune a PEFT method on a task, keeping early checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..default_registry import DEFAULT_METHOD  # tiny module: keeps `--help` fast
from ._args import (_add_data_args, _add_precision_arg, _command, _int_arg, _load, _positive_float, _print,
                    _rows_arg, _save_steps)

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
    from ..tuning.training import TuningConfig, plan_runs, tune

    rows_cap = {} if args.max_train_examples is None else {  # default: the packaged recipe's (TuningConfig's)
        "max_train_examples": None if args.max_train_examples == "all" else args.max_train_examples}
    plans = plan_runs([int(s) for s in args.save_steps.split(",") if s], args.max_steps)
    configs = [TuningConfig(method=args.method, base_model=args.base_model, max_steps=steps, save_steps=keep,
                            batch_size=args.batch_size, learning_rate=args.learning_rate, max_length=args.max_length,
                            eval_examples=args.eval_examples, seed=args.seed, push_to_hub=args.push_to_hub,
                            hub_private=args.private, hub_base_model_id=args.base_model_id,
                            mixed_precision=args.mixed_precision, **rows_cap)
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


def register(sub) -> None:
    """Add `tune` to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "tune", "tune a PEFT method on a task, keeping early checkpoints with their embeddings", cmd_tune,
                 "example:\n  taskemb-hub tune --task ../shared/data/tasks/rotten_tomatoes --method bitfit "
                 "--save-steps 50,100 --out runs/rt-bitfit")
    p.add_argument("--task", required=True, help="task folder, data file, or Hub dataset id")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=_method_choices(),
                   help=f"default: {DEFAULT_METHOD}, the method of the packaged registry")
    p.add_argument("--out", required=True, help="output folder (gets step-N/ subfolders)")
    p.add_argument("--save-steps", type=_save_steps, default="", help="comma list of steps to keep, e.g. 50,100,200")
    p.add_argument("--max-steps", type=_int_arg("--max-steps", 1, 100), default=None,
                   help="default: the largest save step, else 100 (the packaged registry's recipe); with save "
                        "step 100 and later ones, steps past 100 come from a second run as long as the largest")
    p.add_argument("--batch-size", type=_int_arg("--batch-size", 1, 16), default=16)
    p.add_argument("--learning-rate", type=_positive_float("--learning-rate", "1e-3"), default=None,
                   help="default: the method's own")
    p.add_argument("--max-length", type=_int_arg("--max-length", 1, 128), default=128)
    p.add_argument("--max-train-examples", type=_rows_arg, default=None,
                   help="seeded subset of the training rows, or 'all' (default: 1000, the packaged registry's recipe)")
    p.add_argument("--eval-examples", type=_int_arg("--eval-examples", 0, 500), default=500)
    p.add_argument("--seed", type=_int_arg("--seed", 0, 0), default=0)
    p.add_argument("--restart", action="store_true",
                   help="start over instead of resuming an interrupted run of the same options in --out")
    p.add_argument("--base-model", default=None, help="local folder or Hub id (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--push-to-hub", default=None, metavar="OWNER/NAME",
                   help="push each kept checkpoint to this repo as it is saved (branch step-N; the last one on main)")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    p.add_argument("--base-model-id", default=None,
                   help="with --push-to-hub and a local --base-model folder: the Hub id to record instead of the path")
    _add_precision_arg(p, None, "tuning")
    _add_data_args(p)
