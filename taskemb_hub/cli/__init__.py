"""`taskemb-hub`: tune, embed, rank, publish and measure from the shell."""

from __future__ import annotations

import argparse
import os
import sys

from ..default_registry import DEFAULT_METHOD  # tiny module: keeps `--help` fast
from ._args import (_add_data_args, _hub_time_args, _int_arg, _Parser, _positive_float, _rows_arg, _save_steps,
                    _seeds_arg)
from ._executor import _add_executor_args
from .embed import cmd_embed
from .index import cmd_index_build, cmd_index_push, cmd_index_serve_webhooks
from .publish import cmd_publish
from .quickstart import cmd_quickstart
from .rank import cmd_rank
from .registry import cmd_registry_add, cmd_registry_build, cmd_registry_list, cmd_registry_sync
from .space import cmd_space
from .transfer_matrix import cmd_transfer_matrix
from .tune import BUILTIN_METHODS, _method_choices, cmd_tune  # noqa: F401 (BUILTIN_METHODS: public)

# `--help` and argument errors import nothing heavy (torch, transformers, peft, datasets, gradio): every
# command imports what it needs inside its function. tests/test_cli_start.py checks it.
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
    from ..errors import TaskEmbHubError

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
