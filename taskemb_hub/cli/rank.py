"""`taskemb-hub rank`: rank a registry's source tasks for a target."""

from __future__ import annotations

import sys
from pathlib import Path

from ._args import (_add_data_args, _add_precision_arg, _command, _hub_time_args, _int_arg, _load, _print,
                    _time_options)


def cmd_rank(args) -> int:
    from ..errors import TaskEmbHubError

    if not args.data and not args.target:
        raise TaskEmbHubError("rank needs --target (an adapter folder or a registry entry name) or --data (a data "
                              "file or task folder).")
    if args.data and args.target:
        raise TaskEmbHubError("rank takes --target or --data, not both: --data tunes a new target from the data, "
                              "--target names one that exists. Drop one of them.")
    if args.target and Path(args.target).expanduser().is_file():
        raise TaskEmbHubError(f"{args.target} is not a folder (for a data file, use --data). Pass the adapter folder "
                              "that peft's save_pretrained wrote, or a registry entry name.")
    from ..tuning.targets import target_from_data
    from ..ranking.rankers import check_ranker, wants_texts

    check_ranker(args.ranker)
    from ..registries import open_registry
    from ..ranking.selector import AutoSourceSelector

    registry = open_registry(args.registry, **_rank_hub_filters(args), **_time_options(args))
    selector = AutoSourceSelector.from_registry(registry, similarity=args.similarity)
    text_target = None
    if args.data:  # always tuned with the registry's own recipe, so target and sources are comparable
        texts = wants_texts(args.ranker, selector)  # a ranker this registry cannot serve is refused before tuning
        task = _load(args, args.data)
        target = None if args.ranker == "textemb" else target_from_data(  # TextEmb alone tunes nothing
            task, selector, progress=not args.json, base_model=args.base_model, mixed_precision=args.mixed_precision)
        if texts:  # TextEmb: one forward pass, no tuning
            from ..baselines import text_embedding

            text_target = text_embedding(task, base_model=args.base_model)
    else:
        target = args.target
    from ..tuning.recipe import RecipeMismatchError

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
    from ..base_model import canonical_model_id

    base_model = canonical_model_id(args.base_model) if args.base_model else None  # a local path -> its id
    from ..methods import get_method

    method = get_method(args.method).name if args.method else None  # 'LORA' -> 'lora'; unknown -> names listed
    filters = {"base_model": base_model, "method": method, "author": args.author}
    folder = Path(args.target) if args.target else None
    if folder is not None and folder.is_dir():
        from ..embedding import load_embedding

        target = load_embedding(folder)
        filters["base_model"] = filters["base_model"] or target.base_model
        filters["method"] = filters["method"] or target.method
    return filters


def register(sub) -> None:
    """Add `rank` to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "rank", "rank a registry's source tasks for a target, best first", cmd_rank,
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
    _add_precision_arg(p, "auto", "--data's target tuning")
    _add_data_args(p)
