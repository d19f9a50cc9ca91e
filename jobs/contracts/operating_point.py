"""The decision rule a model is used with, shared by evaluation (which chooses it) and prediction.

A classifier's argmax is one arbitrary operating point; a threshold on the COVID-19 probability,
chosen on the validation split by a rule the experiment names, is the one that the test split,
external sets and ``cxr predict`` must all apply unchanged. It travels as ``operating_point.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import ConfigDict, model_validator

from jobs.contracts.results.base import Record, validate_document

OPERATING_POINT_FILE = "operating_point.json"
POSITIVE_CLASS = "COVID-19"
OPERATING_POINT_FORMAT = "cxr-operating-point"
OPERATING_POINT_VERSION = 1
FORMAT = f"{OPERATING_POINT_FORMAT}/{OPERATING_POINT_VERSION}"


class OperatingPoint(Record):
    """A threshold on ``positive_class``'s probability; below it, the most probable other class wins."""

    model_config = ConfigDict(frozen=True)

    format: str = FORMAT
    rule: str
    threshold: float
    class_names: tuple[str, ...]
    positive_class: str = POSITIVE_CLASS
    chosen_on: str = "validation"

    @model_validator(mode="after")
    def _check(self) -> OperatingPoint:
        if self.positive_class not in self.class_names:
            raise ValueError(f"positive class {self.positive_class!r} is not one of {list(self.class_names)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} is not a probability")
        return self


def save_operating_point(point: OperatingPoint, folder: Path) -> Path:
    """Writes every field, defaults included: prediction must not depend on this cxr's defaults."""
    path = Path(folder) / OPERATING_POINT_FILE
    path.write_text(json.dumps(point.model_dump(mode="json"), indent=2) + "\n")
    return path


def load_operating_point(folder_or_file: Path) -> OperatingPoint | None:
    """The operating point stored in a folder (or file), validated; None when there is none.

    A file without a ``format`` field predates the field and holds format 1's fields: it is read as such.
    """
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / OPERATING_POINT_FILE
    if not path.exists():
        return None
    fields = json.loads(path.read_text())
    if isinstance(fields, dict) and "format" not in fields:
        fields = {"format": FORMAT, **fields}
    fix = "re-run `cxr evaluate` for this model, or pass another --operating-point"
    return validate_document(
        OperatingPoint, fields, str(path), OPERATING_POINT_FORMAT, OPERATING_POINT_VERSION, fix
    )


def decide(
    probabilities: np.ndarray, class_names: tuple[str, ...], point: OperatingPoint | None
) -> np.ndarray:
    """Class indices for rows of probabilities: argmax without an operating point, else its threshold."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if point is None:
        return probabilities.argmax(axis=1)
    if tuple(class_names) != point.class_names:
        raise ValueError(
            f"operating point is for classes {list(point.class_names)}, model has {list(class_names)}"
        )
    positive = point.class_names.index(point.positive_class)
    others = probabilities.copy()
    others[:, positive] = -np.inf
    return np.where(probabilities[:, positive] >= point.threshold, positive, others.argmax(axis=1))
