"""`--executor local|ray` and the Ray flags of `registry build` and `transfer-matrix`."""

from __future__ import annotations

import argparse


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: this machine; ray: Ray tasks on a local Ray or a cluster (pip install \"taskemb-hub[ray]\")")
    p.add_argument("--address", default=None, help="with --executor ray: the cluster to join (default: start a local Ray)")
    p.add_argument("--gpus-per-run", default=None, metavar="SHARE",
                   help="with --executor ray: GPU share per run, 1/k or a decimal (default: 1 with GPUs, else 0)")
    p.add_argument("--cpus-per-run", type=float, default=None, help="with --executor ray: cores per run (default 1)")


def _ray_resources(args):
    """`--gpus-per-run` / `--cpus-per-run` as the Ray executor's per-run resources (Ray imported here only)."""
    from ..executors import ExecutorError, parse_gpu_share, require_ray

    require_ray()  # one line naming the install command when the extra is missing
    from ..executors.ray import RayResources

    cpus = 1.0 if args.cpus_per_run is None else args.cpus_per_run
    if cpus <= 0:
        raise ExecutorError(f"--cpus-per-run must be positive (got {cpus:g}). Pass e.g. 1.")
    return RayResources(num_gpus=parse_gpu_share(args.gpus_per_run), num_cpus=cpus)


def _refuse_ray_flags_locally(args) -> None:
    """--address / --gpus-per-run / --cpus-per-run mean nothing without Ray: say so rather than ignore them."""
    from ..executors import ExecutorError

    given = [flag for flag, value in (("--address", args.address), ("--gpus-per-run", args.gpus_per_run),
                                      ("--cpus-per-run", args.cpus_per_run)) if value is not None]
    if given:
        raise ExecutorError(f"{', '.join(given)} only apply to --executor ray. Add --executor ray, or drop them.")
