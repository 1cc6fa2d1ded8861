"""Small formatting helpers shared by RESULTS.md and the README blocks."""


def fmt(x, spec=".3f"):
    return "–" if x != x else format(x, spec)


def table_section(title: str, intro: list[str], columns: list[str], rows: list[str]) -> list[str]:
    """A markdown section holding one table; nothing when the table has no row."""
    if not rows:
        return []
    return [title, ""] + intro + ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + rows + [""]


def _pm(p: dict) -> str:
    return f"{p['delta']:+.3f} ± {p['se']:.3f}"


def _span(values, spec=".1f", unit="") -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,{spec}}{unit}" if lo == hi else f"{lo:,{spec}}–{hi:,{spec}}{unit}"
