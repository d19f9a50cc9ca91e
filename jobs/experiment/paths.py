"""Where the checkout's experiments and the bundled sample are, for the command line."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = ROOT.parent / "shared" / "data" / "cxr-sample"


def find_experiment(name: str) -> Path:
    """An experiment file given as a path, or by its name in experiments/."""
    path = Path(name)
    if path.suffix != ".json" and not path.exists():
        path = ROOT / "experiments" / f"{name}.json"
    return path
