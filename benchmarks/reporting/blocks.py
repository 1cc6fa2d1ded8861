"""The README's generated blocks: markers, reading and replacing a block, writing the snippets and the figures file."""

import json

from _common import RESULTS

from .data import HERE

# ---- the README's figures: generated blocks, so every figure it quotes comes from benchmarks/results -----------
README = HERE.parent / "README.md"
FIGURES_FILE = RESULTS / "readme_figures.json"
SNIPPETS = {"benchmarks": RESULTS / "readme_benchmarks.md", "evidence": RESULTS / "readme_evidence.md",
            "compare": RESULTS / "readme_compare.md",
            "dependence": RESULTS / "readme_dependence.md"}  # written by target_dependence.py
BEGIN = "<!-- BEGIN GENERATED {name}: written by benchmarks/report.py from benchmarks/results; do not edit -->"
END = "<!-- END GENERATED {name} -->"


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the generated block `name` replaced by `body` (markers kept); unchanged without markers."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if begin not in text or end not in text:
        return text
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + body.rstrip("\n") + "\n" + end + rest.split(end, 1)[1]


def read_block(text: str, name: str) -> str | None:
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def write_readme(snippets: dict[str, str], figures: dict) -> None:
    """Write the snippets and the figures file, and refresh the README's generated blocks."""
    for name, text in snippets.items():
        SNIPPETS[name].write_text(text)
    FIGURES_FILE.write_text(json.dumps(figures, indent=1, sort_keys=True, default=float) + "\n")
    text = README.read_text()
    updated = text
    for name, body in snippets.items():
        updated = replace_block(updated, name, body)
    if updated != text:
        README.write_text(updated)
