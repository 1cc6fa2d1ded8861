"""Wall time of `taskemb-hub --help` now, beside the baseline measured in the same run.

The baseline is the same `--help` with the imports the CLI used to make before printing it
(`taskemb_hub` imported torch through `taskemb_hub.embedding`, and transformers through the PEFT
method modules): `import torch, transformers.modeling_outputs` first, then the same `--help`.
Each is a fresh interpreter; runs alternate so a change of machine load hits both alike.

    python benchmarks/cli_start.py [--runs 5]

Writes benchmarks/results/cli_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import machine, save  # noqa: E402

HELP = "from taskemb_hub.cli import main; import sys; sys.exit(main(['--help']))"
COMMANDS = {
    "help_now": [sys.executable, "-c", HELP],
    "help_baseline_with_torch_transformers": [
        sys.executable, "-c", "import torch, transformers.modeling_outputs; " + HELP],
}
HEAVY = ("torch", "transformers", "peft", "datasets", "gradio")


def _seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def _heavy_imported() -> list[str]:
    code = ("import json, sys\ntry:\n    from taskemb_hub.cli import main; main(['--help'])\nexcept SystemExit:\n"
            f"    pass\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    commands = dict(COMMANDS)
    script = shutil.which("taskemb-hub", path=str(Path(sys.executable).parent))
    if script:  # the installed console script, as a user types it
        commands["console_script_now"] = [script, "--help"]
    load_start = os.getloadavg()[0]
    for cmd in commands.values():  # warm the file cache once, untimed
        _seconds(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(_seconds(cmd))
    figures = {name: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
                      "max_s": round(max(t), 3), "runs": [round(x, 3) for x in t]} for name, t in times.items()}
    now, base = figures["help_now"]["median_s"], figures["help_baseline_with_torch_transformers"]["median_s"]
    result = {"machine": machine(), "load_avg_1min_at_start": round(load_start, 2),
              "load_avg_1min_at_end": round(os.getloadavg()[0], 2), "runs": args.runs, "python": sys.version.split()[0],
              "heavy_modules_imported_by_help": _heavy_imported(), "figures": figures,
              "speedup_vs_baseline": round(base / now, 1)}
    for name, fig in figures.items():
        print(f"{name:<40} median {fig['median_s']:.3f} s  (min {fig['min_s']:.3f}, max {fig['max_s']:.3f})")
    print(f"--help now {now:.3f} s vs baseline {base:.3f} s ({result['speedup_vs_baseline']}x); heavy modules "
          f"imported by --help: {result['heavy_modules_imported_by_help']}; load {load_start:.2f} -> "
          f"{result['load_avg_1min_at_end']:.2f}")
    print(f"saved {save('cli_start', result)}")


if __name__ == "__main__":
    main()
