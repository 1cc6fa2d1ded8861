"""`taskemb-hub --help`, every subcommand's `--help` and argument errors import no heavy library.

Each case runs in a fresh interpreter (`python -m taskemb_hub.cli ...`) and reports which of torch,
transformers, peft, datasets and gradio ended up in `sys.modules`. No timing is asserted:
`benchmarks/cli_start.py` measures the time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "datasets", "gradio")

# Runs the CLI as `python -m taskemb_hub.cli` would, then prints the heavy modules it imported (at exit, so
# SystemExit from argparse's --help and usage errors is covered too).
PROBE = """
import atexit, json, runpy, sys
atexit.register(lambda: print("HEAVY=" + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr))
sys.argv = ["taskemb-hub"] + {argv!r}
runpy.run_module("taskemb_hub.cli", run_name="__main__")
"""


def _run(*argv: str) -> tuple[int, str, list[str]]:
    code = PROBE.format(heavy=HEAVY, argv=list(argv))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    heavy = [json.loads(line[len("HEAVY="):]) for line in lines if line.startswith("HEAVY=")]
    assert heavy, proc.stderr
    return proc.returncode, proc.stdout + "\n".join(l for l in lines if not l.startswith("HEAVY=")), heavy[-1]


def _subcommands() -> list[list[str]]:
    """Every command and sub-verb of the parser, read from it (so a new command is covered too)."""
    import argparse

    from taskemb_hub.cli import build_parser

    def walk(parser, prefix):
        out = [prefix]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out += walk(sub, prefix + [name])
        return out

    return walk(build_parser(), [])


@pytest.mark.parametrize("argv", _subcommands(), ids=lambda a: " ".join(a) or "top")
def test_help_imports_no_heavy_library(argv):
    rc, out, heavy = _run(*argv, "--help")
    assert rc == 0 and "usage: taskemb-hub" in out
    assert heavy == [], f"`taskemb-hub {' '.join(argv)} --help` imported {heavy}"


@pytest.mark.parametrize("argv", [
    ["tune"],                                                   # a required option missing (argparse)
    ["tune", "--task", "t", "--out", "o", "--method", "nope"],  # a bad choice (argparse)
    ["rank", "--top-k", "x"],                                   # a bad type (argparse)
    ["rank"],                                                   # neither --target nor --data
    ["registry", "sync", "--hub", "--timeout", "-1"],           # a bad value the command refuses
    ["index", "build"],                                         # neither --repo-id nor --out
    ["transfer-matrix", "--address", "ray://x"],                # a Ray flag without --executor ray
], ids=lambda a: " ".join(a))
def test_argument_errors_import_no_heavy_library(argv):
    rc, out, heavy = _run(*argv)
    assert rc == 2 and "error:" in out
    assert heavy == [], f"`taskemb-hub {' '.join(argv)}` imported {heavy}"


def test_importing_the_package_and_the_cli_is_light_and_names_still_resolve():
    code = ("import sys, taskemb_hub, taskemb_hub.cli; print(sorted(m for m in %r if m in sys.modules)); "
            "from taskemb_hub import TaskEmbedding, AutoSourceSelector, tune, RegistryError; "
            "print(TaskEmbedding.__module__, AutoSourceSelector.__module__, 'torch' in sys.modules)" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1] == "taskemb_hub.embedding taskemb_hub.ranking.selector True"  # lazy names load on first use


def test_the_builtin_method_choices_are_the_registered_methods():
    from taskemb_hub.cli import BUILTIN_METHODS
    from taskemb_hub.methods import list_methods

    assert sorted(BUILTIN_METHODS) == list_methods()


def test_every_public_name_resolves():
    import taskemb_hub

    for name in taskemb_hub.__all__:
        assert getattr(taskemb_hub, name) is not None
    assert set(taskemb_hub.__all__) <= set(dir(taskemb_hub))
    with pytest.raises(AttributeError):
        taskemb_hub.no_such_name  # noqa: B018


@pytest.mark.parametrize("given, policy, spin", [(None, "PASSIVE", "0"), ("ACTIVE", "ACTIVE", "30000000000")])
def test_the_cli_makes_openmp_threads_sleep_before_torch_loads_unless_told_otherwise(given, policy, spin):
    """Spinning OpenMP threads slow tuning several-fold on a machine that runs other jobs
    (benchmarks/omp_wait_policy.py); OpenMP reads the policy once, when torch loads it, so the CLI sets it first.
    libgomp prints the policy it runs with (OMP_DISPLAY_ENV): the spin count is 0 when threads sleep."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"OMP_DISPLAY_ENV": "verbose"}
    env |= {"OMP_WAIT_POLICY": given} if given else {}
    probe = "import taskemb_hub.cli, torch; torch.ones(8).sum()"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120,
                           check=True).stderr
    assert f"OMP_WAIT_POLICY = '{policy}'" in shown and f"GOMP_SPINCOUNT = '{spin}'" in shown


def test_the_hub_space_sets_the_policy_before_anything_that_could_load_torch():
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[1] / "spaces" / "app.py").read_text().splitlines()
    policy = next(i for i, line in enumerate(lines) if 'setdefault("OMP_WAIT_POLICY", "PASSIVE")' in line)
    imports = [line for line in lines[:policy] if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "import os"]
