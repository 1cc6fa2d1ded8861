"""`taskemb-hub`: tune, embed, rank, publish and measure from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from .default_registry import DEFAULT_METHOD  # tiny module: keeps `--help` fast

# `--help` and argument errors import nothing heavy (torch, transformers, peft, datasets, gradio): every
# command imports what it needs inside its function. tests/test_cli_start.py checks it.
# The built-in PEFT methods, for `tune --method` without importing `taskemb_hub.methods` (torch);
# test_cli_start checks it against `list_methods()`.
BUILTIN_METHODS = ("bitfit", "ia3", "lora", "prefix", "prompt")

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

EPILOG = """examples:
  taskemb-hub quickstart
  taskemb-hub tune --task ../shared/data/tasks/rotten_tomatoes --method bitfit --save-steps 50,100,200 --out runs/rt-bitfit
  taskemb-hub embed runs/rt-bitfit/step-100
  taskemb-hub rank --target runs/rt-bitfit/step-100 --registry default --top-k 5
  taskemb-hub rank --data my.csv --text-column review --label-column stars --registry default --json
  taskemb-hub registry add runs/rt-bitfit/step-100 --registry my-registry
  taskemb-hub publish runs/rt-bitfit/step-100 --repo-id me/rotten-tomatoes-bitfit
  taskemb-hub space --registry default --port 7860
"""


def _int_arg(flag: str, minimum: int, example: int):
    """An argparse `type=`: an integer >= `minimum`, else one line naming the flag and a value to pass (a
    `TaskEmbHubError`, which argparse lets through to `main`: not its multi-line usage message)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            from .errors import TaskEmbHubError

            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise TaskEmbHubError(f"{flag} must be {wanted} (got {text!r}). Pass e.g. {flag} {example}.")
        return value

    return parse


def _positive_float(flag: str, example: str):
    """An argparse `type=`: a positive finite number, else one line (see `_int_arg`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):
            from .errors import TaskEmbHubError

            raise TaskEmbHubError(f"{flag} must be a positive number (got {text!r}). Pass e.g. {flag} {example}.")
        return value

    return parse


def _hub_time_args(p: argparse.ArgumentParser) -> None:
    """`--timeout` / `--deadline` for a command that reads the Hub (defaults: registries/_fetch.py, 10 s and 120 s;
    not imported here, so that `--help` loads no torch)."""
    p.add_argument("--timeout", type=_positive_float("--timeout", "10"), default=None, metavar="SECONDS",
                   help="seconds per Hub request before it counts as failed (default: 10)")
    p.add_argument("--deadline", type=_positive_float("--deadline", "300"), default=None, metavar="SECONDS",
                   help="seconds for the whole Hub read; repos not read by then are reported as failed (default: 120)")


def _time_options(args) -> dict:
    """The Hub read's `timeout` / `deadline` the user passed (the library's defaults otherwise)."""
    return {k: getattr(args, k, None) for k in ("timeout", "deadline") if getattr(args, k, None) is not None}


def _save_steps(text: str) -> str:
    """`--save-steps`: a comma list of positive integers (kept as text: `main` and `cmd_tune` split it)."""
    steps = [s.strip() for s in text.split(",") if s.strip()]
    if not all(s.isdigit() and int(s) > 0 for s in steps):
        from .errors import TaskEmbHubError

        raise TaskEmbHubError(f"--save-steps must be a comma list of positive step numbers (got {text!r}). Pass e.g. "
                              "--save-steps 50,100,200.")
    return ",".join(str(int(s)) for s in steps)


def _seeds_arg(text: str) -> list[int]:
    """`transfer-matrix --seeds`: a comma list of integers >= 0."""
    seeds = [s.strip() for s in text.split(",") if s.strip()]
    if not seeds or not all(s.isdigit() for s in seeds):
        from .errors import TaskEmbHubError

        raise TaskEmbHubError(f"--seeds must be a comma list of integers >= 0 (got {text!r}). Pass e.g. --seeds 0,1,2.")
    return [int(s) for s in seeds]


def _rows_arg(text: str):
    """`tune --max-train-examples`: a positive integer or `all`."""
    return "all" if text.strip().lower() == "all" else _int_arg("--max-train-examples", 1, 1000)(text)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-column", default="text", help="text column of a data file (default: text)")
    p.add_argument("--text-pair-column", default=None, help="second text column, for pair tasks")
    p.add_argument("--label-column", default="label", help="label column (default: label)")
    p.add_argument("--task-type", choices=["text-classification", "regression", "extractive-qa"], default=None,
                   help="force the task type (default: inferred)")
    p.add_argument("--task-name", default=None, help="name recorded in the embedding")


def _load(args, source):
    from .data import load_task

    return load_task(source, name=args.task_name, text_column=args.text_column, text_pair_column=args.text_pair_column,
                     label_column=args.label_column, task_type=args.task_type)


def _print(args, payload, text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def _check_base_model(name: str | None) -> None:
    """`--base-model`: an existing folder holding config.json, or something that can be a Hub id (a missing path
    would otherwise end in a transformers traceback about repo ids)."""
    from .base_model import _PACKAGED_ALIASES

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
        from .errors import TaskEmbHubError

        raise TaskEmbHubError(f"{name} is neither a local model folder nor a Hub model id; pass a folder holding "
                              "config.json or a Hub id.")


def cmd_tune(args) -> int:
    _check_base_model(args.base_model)  # before the data loads and the model tunes
    from .training import TuningConfig, plan_runs, tune

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


def cmd_embed(args) -> int:
    from .embedding import TaskEmbedding

    from .methods import EmbeddingOptions

    options = EmbeddingOptions(pooling=args.pooling, relative_to_init=not args.raw_prompt)
    emb = TaskEmbedding.from_adapter(args.path, allow_pickle=args.allow_pickle, base_model=args.base_model,
                                     options=options)
    if not args.no_save:
        emb.save(args.path)
    meta = emb.metadata()
    _print(args, meta, f"{emb.task}: {emb.method} embedding, {emb.dim} values, signature {emb.signature_hash}"
                       + ("" if args.no_save else f"\nsaved {Path(args.path) / 'taskemb.safetensors'}"))
    return 0


def _selector(registry: str, similarity: str | None, *, timeout: float | None = None, deadline: float | None = None,
              **hub_filters):
    """A selector for a registry string: `default`, a folder, `hub`, `hub:<tag>` or `index:<repo or folder>`;
    `timeout` / `deadline` bound a Hub read (None: the library's defaults)."""
    from .selector import AutoSourceSelector

    kwargs = {"similarity": similarity} if similarity else {}
    times = {k: v for k, v in (("timeout", timeout), ("deadline", deadline)) if v is not None}
    if registry == "default":
        return AutoSourceSelector.from_default(**kwargs)
    if registry == "hub" or registry.startswith("hub:"):
        tag = registry.partition(":")[2] or None
        filters = {k: v for k, v in hub_filters.items() if v not in (None, False)}
        return AutoSourceSelector.from_hub(**({"tag": tag} if tag else {}), **filters, **times, **kwargs)
    if registry.startswith("index:"):
        _check_index_source(registry.partition(":")[2])
        return AutoSourceSelector.from_index(registry.partition(":")[2], **times, **kwargs)
    if Path(registry).expanduser().is_file():
        from .errors import RegistryError

        raise RegistryError(f"{registry} is a file, not a registry folder. Pass the folder that `taskemb-hub registry "
                            "add` wrote, 'default', 'hub' or 'index:<repo id or folder>'.")
    return AutoSourceSelector.from_local(registry, **kwargs)


def _check_index_source(source: str) -> None:
    """`index:<source>`: a missing local folder or a malformed repo id is the user's typo, not a Hub outage (whose
    message says to retry later): name it at once."""
    from .errors import RegistryError

    if Path(source).expanduser().exists():
        return
    if source.startswith((".", "/", "~")) or ".." in source or "\\" in source:
        raise RegistryError(f"Index folder {source} does not exist. Check the path, or pass a Hub dataset repo id "
                            "(owner/name).")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:
        raise RegistryError(f"{source!r} is neither an index folder nor a valid Hub repo id. Pass an existing folder "
                            "or a dataset repo id like owner/taskemb-index.") from None


def cmd_rank(args) -> int:
    from .errors import TaskEmbHubError

    if not args.data and not args.target:
        raise TaskEmbHubError("rank needs --target (an adapter folder or a registry entry name) or --data (a data "
                              "file or task folder).")
    if args.data and args.target:
        raise TaskEmbHubError("rank takes --target or --data, not both: --data tunes a new target from the data, "
                              "--target names one that exists. Drop one of them.")
    if args.target and Path(args.target).expanduser().is_file():
        raise TaskEmbHubError(f"{args.target} is not a folder (for a data file, use --data). Pass the adapter folder "
                              "that peft's save_pretrained wrote, or a registry entry name.")
    from .targets import target_from_data
    from .rankers import check_ranker, wants_texts

    check_ranker(args.ranker)
    selector = _selector(args.registry, args.similarity, **_rank_hub_filters(args), **_time_options(args))
    text_target = None
    if args.data:  # always tuned with the registry's own recipe, so target and sources are comparable
        texts = wants_texts(args.ranker, selector)  # a ranker this registry cannot serve is refused before tuning
        task = _load(args, args.data)
        target = None if args.ranker == "textemb" else target_from_data(  # TextEmb alone tunes nothing
            task, selector, progress=not args.json, base_model=args.base_model)
        if texts:  # TextEmb: one forward pass, no tuning
            from .baselines import text_embedding

            text_target = text_embedding(task, base_model=args.base_model)
    else:
        target = args.target
    from .recipe import RecipeMismatchError

    try:
        ranking = selector.rank(target, top_k=args.top_k, exclude=args.exclude or (), strict=args.strict,
                                ranker=args.ranker, text_target=text_target, exclude_flagged=args.exclude_flagged)
    except RecipeMismatchError as err:  # --strict is set already: its advice to pass --strict is dropped
        raise RecipeMismatchError(str(err).replace(", or pass --strict / strict=True to refuse such rankings", "")
                                  ) from None
    if args.similarity and ranking.ranker == "textemb":
        ranking.warnings.append(f"--similarity {args.similarity} applies to the PEFT embedding; ranker 'textemb' uses "
                                "the centred cosine of TextEmb vectors")
    if args.json:  # the text table carries the warnings itself
        for warning in ranking.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    _print(args, ranking.to_dict(), str(ranking))
    return 0


def _rank_hub_filters(args) -> dict:
    """Server-side filters for `rank --registry hub`: only entries the target can be compared with.

    A target folder's embedding names its base model and method; `--base-model`, `--method` and
    `--author` narrow (or set) them. Without any, the sync would read every tagged repo of every
    base model, most of which the ranking then skips as incompatible.
    """
    if not (args.registry == "hub" or args.registry.startswith("hub:")):
        return {}
    from .base_model import canonical_model_id

    base_model = canonical_model_id(args.base_model) if args.base_model else None  # a local path -> its id
    from .methods import get_method

    method = get_method(args.method).name if args.method else None  # 'LORA' -> 'lora'; unknown -> names listed
    filters = {"base_model": base_model, "method": method, "author": args.author}
    folder = Path(args.target) if args.target else None
    if folder is not None and folder.is_dir():
        from .embedding import load_embedding

        target = load_embedding(folder)
        filters["base_model"] = filters["base_model"] or target.base_model
        filters["method"] = filters["method"] or target.method
    return filters


def cmd_registry_add(args) -> int:
    if args.registry == "default":  # `list`/`rank` read the packaged registry under this name: never a folder
        from .errors import RegistryError

        raise RegistryError("'default' is the packaged registry, which is read-only; name a folder, e.g. "
                            "--registry my-registry.")
    from .registries.local import LocalRegistry

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


def cmd_publish(args) -> int:
    from .publishing import publish

    result = publish(args.path, args.repo_id, private=args.private, endpoint=args.endpoint, revision=args.revision,
                     dry_run=args.dry_run, base_model_id=args.base_model_id)
    if args.dry_run:
        text = f"dry run: would upload to {args.repo_id} ({result.revision}):\n" + "\n".join(
            f"  {f}" for f in result.files) + f"\n\n{result.card}" + (f"\n\nnote: {result.note}" if result.note else "")
    elif result.committed:
        text = f"published {args.path} to {args.repo_id}: {result.url}"
    else:
        text = f"{args.repo_id} already holds this content: no new commit ({result.url})"
    payload = result.to_dict() if args.json else {}
    _print(args, payload, text)
    return 0


def _hub_filters(args) -> dict:  # --timeout / --deadline are checked by their argparse type
    return {"base_model": args.base_model, "method": args.method, "author": args.author,
            "include_untagged": args.include_untagged}


def cmd_registry_sync(args) -> int:
    filters = _hub_filters(args)  # a bad --timeout is refused before torch is imported
    from .registries.hub import HubRegistry

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


def cmd_index_build(args) -> int:
    from .errors import RegistryError

    if not args.repo_id and not args.out:
        raise RegistryError("index build needs --repo-id (the index dataset repo) or --out (a folder), or both.")
    filters = _hub_filters(args)
    from .registries.index import build_index

    report = build_index(args.repo_id, folder=args.out, tag=args.tag, endpoint=args.endpoint, push=not args.no_push,
                         private=args.private, progress=not args.json, **_time_options(args), **filters)
    text = (f"index {args.repo_id or args.out}: {report.entries} entries in {report.shards} signature shard(s) "
            f"({report.fetched} new or changed, {report.reused} unchanged), {len(report.failed)} failed, "
            f"{report.seconds:.1f} s; " + (f"pushed {report.url}" if report.committed else "no new commit"))
    text += "".join(f"\n  failed {repo}: {why}" for repo, why in report.failed)
    _print(args, report.to_dict(), text)
    return 0


def cmd_index_push(args) -> int:
    from .registries.index import push_index

    url, committed = push_index(args.folder, args.repo_id, endpoint=args.endpoint, private=args.private)
    _print(args, {"url": url, "committed": committed},
           f"pushed {args.folder} to {args.repo_id}: {url}" if committed else f"{args.repo_id} is up to date: no new commit")
    return 0


def cmd_index_serve_webhooks(args) -> int:
    import os

    from .errors import RegistryError
    from .registries._webhooks import IndexUpdater, serve

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


def cmd_quickstart(args) -> int:
    from .quickstart import run_quickstart

    return run_quickstart(task=args.task, as_json=args.json, top_k=args.top_k)


def cmd_transfer_matrix(args) -> int:
    if args.executor != "ray":
        _refuse_ray_flags_locally(args)  # before torch is imported: a wrong flag is answered at once
    from .transfer import TASK_SETS, TransferConfig, run_local_workers, run_transfer_matrix

    tasks = TASK_SETS.get(args.tasks) or args.tasks.split(",")
    cfg = TransferConfig(tasks=tasks, data_dir=args.data_dir, seeds=args.seeds,
                         targets=args.targets.split(",") if args.targets else None, base_model=args.base_model,
                         target_train_examples=args.target_train_examples)
    if args.results is None:  # one file per regime: the report reads each file as one ground truth
        args.results = "benchmarks/results/" + ("transfer_small.jsonl" if args.target_train_examples
                                                else "transfer_limited.jsonl")
    if args.executor == "ray":
        return _transfer_matrix_on_ray(args, cfg)
    if args.workers > 1 or args.deadline:
        from .transfer import WorkerError

        try:
            run_local_workers(cfg, args.results, args.work_dir, workers=args.workers, deadline_s=args.deadline)
        except WorkerError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    else:
        run_transfer_matrix(cfg, args.results, args.work_dir, progress=not args.json)
    return 0


def _ray_resources(args):
    """`--gpus-per-run` / `--cpus-per-run` as the Ray executor's per-run resources (Ray imported here only)."""
    from .executors import ExecutorError, parse_gpu_share, require_ray

    require_ray()  # one line naming the install command when the extra is missing
    from .executors.ray import RayResources

    cpus = 1.0 if args.cpus_per_run is None else args.cpus_per_run
    if cpus <= 0:
        raise ExecutorError(f"--cpus-per-run must be positive (got {cpus:g}). Pass e.g. 1.")
    return RayResources(num_gpus=parse_gpu_share(args.gpus_per_run), num_cpus=cpus)


def _refuse_ray_flags_locally(args) -> None:
    """--address / --gpus-per-run / --cpus-per-run mean nothing without Ray: say so rather than ignore them."""
    from .executors import ExecutorError

    given = [flag for flag, value in (("--address", args.address), ("--gpus-per-run", args.gpus_per_run),
                                      ("--cpus-per-run", args.cpus_per_run)) if value is not None]
    if given:
        raise ExecutorError(f"{', '.join(given)} only apply to --executor ray. Add --executor ray, or drop them.")


def _transfer_matrix_on_ray(args, cfg) -> int:
    from .executors import ExecutorError

    if args.workers > 1:
        raise ExecutorError("--workers is for --executor local; with --executor ray, Ray runs as many cells at once "
                            "as --cpus-per-run / --gpus-per-run let fit. Drop --workers.")
    resources = _ray_resources(args)
    from .executors.ray import run_ray_grid

    report = run_ray_grid(cfg, args.results, args.work_dir, address=args.address, resources=resources,
                          deadline_s=args.deadline, log=(lambda _: None) if args.json else print)
    _print(args, report.to_dict(), f"{report.finished} cell(s) finished, {report.skipped} already in {args.results}, "
                                   f"{len(report.failed)} failed, {report.cancelled} cancelled ({report.seconds}s)")
    return 1 if report.failed else 0


def cmd_registry_build(args) -> int:
    from .executors.registry_build import PublishOptions, build_registry, load_spec

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


def cmd_space(args) -> int:
    import importlib.util

    from .errors import TaskEmbHubError

    if importlib.util.find_spec("gradio") is None:  # before loading the registry: one line, not a traceback
        raise TaskEmbHubError('space needs gradio, an optional extra: pip install "taskemb-hub[space]".')
    from .base_model import canonical_model_id
    from .space import SpaceConfig, UploadLimits, launch

    limits = UploadLimits(max_file_bytes=int(args.max_file_mb * 1024 * 1024), max_rows=args.max_rows)
    paths = {canonical_model_id(p): p for p in args.base_model_path or []}
    refresh = args.refresh_minutes * 60 if args.refresh_minutes else None
    from .registries._fetch import set_defaults

    set_defaults(**_time_options(args))  # every Hub read of this server: registry (re)loads, visitors' repo ids
    launch(args.registry, host=args.host, port=args.port,
           config=SpaceConfig(limits=limits, base_model_paths=paths, refresh_every_s=refresh), mcp=args.mcp)
    return 0


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: this machine; ray: Ray tasks on a local Ray or a cluster (pip install \"taskemb-hub[ray]\")")
    p.add_argument("--address", default=None, help="with --executor ray: the cluster to join (default: start a local Ray)")
    p.add_argument("--gpus-per-run", default=None, metavar="SHARE",
                   help="with --executor ray: GPU share per run, 1/k or a decimal (default: 1 with GPUs, else 0)")
    p.add_argument("--cpus-per-run", type=float, default=None, help="with --executor ray: cores per run (default 1)")


def _method_choices() -> list[str]:
    """`tune --method` choices: the registered methods when `taskemb_hub.methods` is loaded already (a plugin
    registered one), else the built-in ones (importing it would import torch)."""
    methods = sys.modules.get("taskemb_hub.methods")
    return methods.list_methods() if methods is not None else list(BUILTIN_METHODS)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error style: one line naming the problem and where the fix is, exit code 2
    (argparse's own prints the whole usage block first). Subcommand parsers inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="taskemb-hub", description="Pick source tasks for intermediate-task "
                                     "transfer from the similarity of tuned PEFT weights.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help, func, epilog=None):
        p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        return p

    p = command("tune", "tune a PEFT method on a task, keeping early checkpoints with their embeddings", cmd_tune,
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
    _add_data_args(p)

    p = command("embed", "turn an adapter folder's tuned weights into a task embedding (taskemb.safetensors)", cmd_embed,
                "examples:\n  taskemb-hub embed runs/rt-bitfit/step-100\n"
                "  taskemb-hub embed runs/rt-prompt/step-100 --raw-prompt --no-save   # SPoT-style")
    p.add_argument("path")
    p.add_argument("--pooling", choices=["mean", "flatten"], default="mean",
                   help="prompt/prefix: mean over virtual tokens, or keep them all")
    p.add_argument("--raw-prompt", action="store_true",
                   help="prompt/prefix: embed the raw tuned tokens (SPoT-style), not their change from init")
    p.add_argument("--base-model", default=None, help="refuse adapters tuned on another base model")
    p.add_argument("--allow-pickle", action="store_true", help="read a pickle adapter_model.bin (trusted files only)")
    p.add_argument("--no-save", action="store_true", help="print only; do not write taskemb.safetensors")

    p = command("rank", "rank a registry's source tasks for a target, best first", cmd_rank,
                "examples:\n  taskemb-hub rank --target runs/rt-bitfit/step-100 --registry default\n"
                "  taskemb-hub rank --target rotten_tomatoes --registry default   # leave-one-out\n"
                "  taskemb-hub rank --data reviews.csv --text-column review --label-column stars --registry default")
    p.add_argument("--target", help="adapter/embedding folder, or the name of a registry entry")
    p.add_argument("--data", help="a data file or task folder: tunes a quick target checkpoint first")
    p.add_argument("--registry", default="default",
                   help="registry folder, 'default' (packaged), 'hub' / 'hub:<tag>' (tagged Hub repos), "
                        "or 'index:<repo id or folder>' (a registry index)")
    p.add_argument("--top-k", type=_int_arg("--top-k", 1, 5), default=None, help="show the best k sources (default: all)")
    p.add_argument("--similarity", choices=["pcr-1", "pcr-2", "pcr-3", "centered", "cosine"], default=None,
                   help="the PEFT embedding's similarity (default pcr-1: cosine after removing the registry's mean and "
                        "top principal direction; plain cosine ranks nearly one order for every target)")
    p.add_argument("--ranker", choices=["auto", "peft", "textemb", "fusion"], default="auto",
                   help="auto (default): fusion when the target's texts are known (--data, or a registry entry) and the "
                        "registry has TextEmb vectors (the packaged one does), else peft; peft: the PEFT embedding "
                        "alone; textemb: the texts alone (Vu et al. 2020); fusion: both (README: when each helps)")
    p.add_argument("--exclude", action="append", help="entry name to leave out (repeatable)")
    p.add_argument("--exclude-flagged", action="store_true",
                   help="leave out flagged sources (near-duplicates, fewer rows than the recipe, a test split, barely "
                        "learned; the table lists the flags of those it shows)")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) when the target was tuned with another recipe than the sources' "
                        "(steps, rows, head...); without it the ranking carries a warning")
    p.add_argument("--base-model", default=None,
                   help="base model of --data's target; with --registry hub, only Hub entries of it")
    p.add_argument("--method", default=None, help="with --registry hub: only entries of this PEFT method "
                                                   "(default: the target folder's)")
    p.add_argument("--author", default=None, help="with --registry hub: only this user's or organisation's repos")
    _hub_time_args(p)  # with --registry hub / index:<repo>
    _add_data_args(p)

    p = command("registry", "manage a local registry", None,
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

    p = command("publish", "push an adapter with its embedding and a tagged model card to the Hub", cmd_publish,
                "examples:\n  taskemb-hub publish runs/rt-bitfit/step-100 --repo-id me/rotten-tomatoes-bitfit --dry-run\n"
                "  taskemb-hub publish runs/rt-bitfit/step-100 --repo-id me/rotten-tomatoes-bitfit\n"
                "  taskemb-hub publish runs/rt-bitfit/step-50 --repo-id me/rotten-tomatoes-bitfit --revision step-50")
    p.add_argument("path")
    p.add_argument("--repo-id", required=True)
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing), e.g. step-50")
    p.add_argument("--dry-run", action="store_true", help="print the card and the file list; upload nothing")
    p.add_argument("--base-model-id", default=None,
                   help="Hub id of the base model when it was loaded from a local folder (paths are never uploaded)")
    p.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT)")

    def hub_args(q, with_tag=True):
        if with_tag:
            q.add_argument("--tag", default="taskemb-hub", help="the registry tag (default: taskemb-hub)")
        q.add_argument("--base-model", default=None, help="only entries of this base model")
        q.add_argument("--method", default=None, help="only entries of this PEFT method")
        q.add_argument("--author", default=None, help="only this user's or organisation's repos")
        q.add_argument("--include-untagged", action="store_true",
                       help="also embed plain PEFT adapters of --base-model (Hub tag base_model:adapter:<id>)")
        _hub_time_args(q)
        q.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT)")
        q.add_argument("--json", action="store_true", help="machine-readable output")

    q = reg.add_parser("sync", help="read a Hub registry into the local HF cache and report every entry that fails",
                       description="Sync the Hub registry into the huggingface_hub cache (an unchanged re-sync "
                                   "downloads nothing) and report each repo that cannot be read, with the reason.",
                       epilog="examples:\n  taskemb-hub registry sync --hub --base-model sentence-transformers/all-MiniLM-L6-v2\n"
                              "  taskemb-hub registry sync --hub --method bitfit --include-untagged --base-model "
                              "sentence-transformers/all-MiniLM-L6-v2 --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--hub", action="store_true", required=True, help="sync from the Hub (the only source to sync)")
    hub_args(q)
    q.set_defaults(func=cmd_registry_sync)

    p = command("index", "build or push a registry index (one Hub dataset repo holding every entry)", None,
                "examples:\n  taskemb-hub index build --repo-id me/taskemb-index\n"
                "  taskemb-hub index build --out my-index --no-push\n"
                "  taskemb-hub index push my-index --repo-id me/taskemb-index\n"
                "  taskemb-hub rank --target runs/rt-bitfit/step-100 --registry index:me/taskemb-index")
    idx = p.add_subparsers(dest="verb", required=True)
    q = idx.add_parser("build", help="collect every tagged entry into an index, incrementally, and push it in one commit",
                       description="Build the registry index: only repos whose commit changed since the current "
                                   "index are downloaded; the result is pushed in one commit (none when unchanged).",
                       epilog="examples:\n  taskemb-hub index build --tag taskemb-hub --repo-id me/taskemb-index\n"
                              "  taskemb-hub index build --repo-id me/taskemb-index --base-model "
                              "sentence-transformers/all-MiniLM-L6-v2 --include-untagged\n"
                              "  taskemb-hub index build --out my-index --no-push",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--repo-id", default=None, help="the index dataset repo (start point and push target)")
    q.add_argument("--out", default=None, help="also write the index into this folder")
    q.add_argument("--no-push", action="store_true", help="build only")
    q.add_argument("--private", action="store_true", help="create the index repo private")
    hub_args(q)
    q.set_defaults(func=cmd_index_build)
    q = idx.add_parser("push", help="push an index folder to a Hub dataset repo",
                       epilog="example:\n  taskemb-hub index push my-index --repo-id me/taskemb-index",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("folder")
    q.add_argument("--repo-id", required=True)
    q.add_argument("--private", action="store_true")
    q.add_argument("--endpoint", default=None)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_index_push)
    q = idx.add_parser("serve-webhooks", help="keep an index current: apply Hub webhook events, one commit per burst",
                       description="Serve POST /webhooks/index (huggingface_hub's WebhooksServer): a repo update of a "
                                   "tagged adapter re-reads that repo and updates the index in one commit; a deletion "
                                   "removes its entry. The secret is checked (X-Webhook-Secret).",
                       epilog="example:\n  WEBHOOK_SECRET=... taskemb-hub index serve-webhooks --index me/taskemb-index "
                              "--secret-env WEBHOOK_SECRET --host 0.0.0.0 --port 7860",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--index", required=True, help="the index dataset repo to keep current")
    q.add_argument("--secret-env", default="WEBHOOK_SECRET", help="environment variable holding the webhook secret")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=_int_arg("--port", 1, 7860), default=7860)
    q.add_argument("--debounce", type=float, default=2.0, help="seconds of quiet before a burst is applied")
    q.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT)")
    _hub_time_args(q)
    q.set_defaults(func=cmd_index_serve_webhooks)

    p = command("quickstart", "rank sources for a task of the packaged registry (offline, seconds)", cmd_quickstart)
    p.add_argument("--task", default="rotten_tomatoes")
    p.add_argument("--top-k", type=_int_arg("--top-k", 1, 5), default=5)

    p = command("transfer-matrix", "measure ground-truth transfer by full fine-tuning (resumable)", cmd_transfer_matrix,
                "examples:\n  taskemb-hub transfer-matrix --tasks classification16 --seeds 0,1,2\n"
                "  taskemb-hub transfer-matrix --tasks classification16 --executor local --workers 10 --deadline 480\n"
                "  taskemb-hub transfer-matrix --tasks classification16 --executor ray --gpus-per-run 1/8   # 8 per GPU\n"
                "  taskemb-hub transfer-matrix --tasks classification16 --executor ray --address ray://head:10001")
    p.add_argument("--tasks", default="core10", help="comma list, or core10 / classification16")
    p.add_argument("--targets", default=None)
    p.add_argument("--seeds", type=_seeds_arg, default=[0], help="comma list of seeds, e.g. 0,1,2 (default: 0)")
    p.add_argument("--data-dir", default="../shared/data/tasks")
    p.add_argument("--results", default=None, help="JSON-lines results file (default: benchmarks/results/"
                   "transfer_limited.jsonl, or transfer_small.jsonl with --target-train-examples)")
    p.add_argument("--work-dir", default="benchmarks/work")
    p.add_argument("--base-model", default=None)
    p.add_argument("--target-train-examples", type=int, default=None,
                   help="train rows per target (the 'small' regime: 200); sources keep 1,000")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing this machine (and its GPU)")
    p.add_argument("--deadline", type=float, default=None, help="stop every worker after this many seconds")
    _add_executor_args(p)

    p = command("space", "serve the Space locally: rank sources for your data, your adapter or a registry task", cmd_space,
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
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import TaskEmbHubError

    try:
        args = build_parser().parse_args(argv)
    except TaskEmbHubError as err:  # an argument's `type=` check: one line, as every other bad input
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except TaskEmbHubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C: one line (tune's says how to resume), the shell's exit code
        print(f"interrupted: {err}" if str(err) else "interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
