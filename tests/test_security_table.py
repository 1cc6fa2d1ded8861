"""SECURITY.md's table names, for each input, the test that shows its check: every one must exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_CELL = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _table_tests() -> list[tuple[str, str, str]]:
    rows = [line for line in (ROOT / "SECURITY.md").read_text().splitlines() if line.startswith("| ")][1:]
    out = []
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        match = TEST_CELL.fullmatch(cells[-1])
        assert match, f"SECURITY.md line names no test: {line}"
        out.append((cells[0], match.group(1), match.group(2)))
    return out


def test_every_line_of_the_security_table_names_a_test_that_exists():
    rows = _table_tests()
    assert len(rows) >= 25
    missing = [(what, f"{path}::{name}") for what, path, name in rows
               if not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)]
    assert not missing, missing
