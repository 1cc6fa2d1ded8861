"""Local `evaluate` metric modules, loadable by path: `evaluate.load(TRANSFER_RANKING)`."""

from pathlib import Path

TRANSFER_RANKING = str(Path(__file__).parent / "transfer_ranking" / "transfer_ranking.py")
