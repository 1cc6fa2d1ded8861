"""Hundreds of malformed inputs, generated (`tests/fuzz_inputs.py`), meet one-line errors only.

Each case is malformed by construction and goes where a visitor or a publisher would put it: a
data file or an adapter zip uploaded to the Space, an adapter folder added to a local registry,
a tagged repo on a (local) Hub, an index folder. Run in a fresh process so that the peak memory
measured is the cases' own.
"""

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the Space's handlers need the [space] extra")

MEMORY_LIMIT_MB = 2048
# An absolute path of the machine: /tmp/..., /home/..., /root/..., /work/... (message texts only).
LOCAL_PATH = re.compile(r"(?<![\w.:/])/(?:tmp|home|root|work|var|usr|etc|private)/[^\s'\")]*")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "report.json"
    script = Path(__file__).with_name("fuzz_inputs.py")
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def _cases(report, outcome=None):
    return [c for c in report["results"] if outcome is None or c["outcome"] == outcome]


def test_at_least_200_malformed_inputs_across_four_families(report):
    families = Counter(c["family"] for c in report["results"])
    assert sum(families.values()) >= 200, families
    assert set(families) == {"data upload", "adapter zip", "adapter folder", "hub repo", "index folder"}


def test_every_malformed_input_is_refused_never_accepted_and_never_a_traceback(report):
    wrong = [f"{c['family']} | {c['case']} | {c['outcome']}: {c['message'][:160]}"
             for c in report["results"] if c["outcome"] != "refused"]
    assert not wrong, "\n".join(wrong)


# What a visitor or another Hub user reads never names a path of the machine; a local user's own folder may
# be named in what they are told about it (an adapter folder they add, an index folder they open).
SHARED_FAMILIES = {"data upload", "adapter zip", "hub repo"}


def test_each_refusal_is_one_line_and_what_others_read_names_no_path_of_the_machine(report):
    bad = [f"{c['family']} | {c['case']}: {c['message'][:200]}" for c in _cases(report, "refused")
           if "\n" in c["message"] or "Traceback" in c["message"]
           or (c["family"] in SHARED_FAMILIES and LOCAL_PATH.search(c["message"]))]
    assert not bad, "\n".join(bad)


def test_no_input_takes_the_process_over_2_gb(report):
    peaks = sorted(report["results"], key=lambda c: -c["max_rss_mb"])[:3]
    assert report["max_rss_mb"] < MEMORY_LIMIT_MB, [(c["case"], round(c["max_rss_mb"])) for c in peaks]


def test_nothing_stored_before_is_lost_or_changed(report):
    assert report["stored_files"] > 0
    assert report["stored_unchanged"], "a bad input changed the stored registry or index"
    assert report["hub_good_repo_kept"], "the good Hub repo is no longer an entry, or its files changed"
