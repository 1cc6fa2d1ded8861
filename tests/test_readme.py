"""The README's Python examples import what they use, from the public top-level package."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_readme_import_resolves():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    imports = [line for block in blocks for line in block.splitlines() if line.startswith(("from taskemb_hub", "import taskemb_hub"))]
    assert imports, "the README shows how to import the package"
    for line in imports:
        exec(line, {})  # raises ImportError when the README promises a name the package does not export
