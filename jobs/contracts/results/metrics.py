"""``metrics.json``: everything ``cxr evaluate`` measured about one trained model.

Field order is the order the evaluation writes; optional fields left unset stay out of the file, so a
file read and written again keeps its bytes. Blocks that are data rather than structure (the training
config, the history, the machine that ran it) stay plain mappings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from jobs.contracts.results.base import Interval, Number, OpenRecord, Record, read_document
from jobs.contracts.results.card import ModelCard, PointSummary

EVALUATION_FORMAT = "cxr-evaluation"
EVALUATION_VERSION = 1
FORMAT = f"{EVALUATION_FORMAT}/{EVALUATION_VERSION}"
REEVALUATE = "re-run `cxr evaluate` (or `cxr run ... --force`) for this model"


class ClassScores(Record):
    """One row of scikit-learn's classification report (a class, or the macro and weighted averages)."""

    precision: Number
    recall: Number
    f1_score: Number = Field(alias="f1-score")
    support: Number


# scikit-learn's layout: one row per class, "accuracy", then "macro avg" and "weighted avg".
ClassificationReport = dict[str, ClassScores | Number]


class Rates(Record):
    sensitivity: Number | None
    specificity: Number | None
    ppv: Number | None


class Bootstrap(OpenRecord):
    """Patient-bootstrap intervals; the statistics' keys (``accuracy``, ``recall:COVID-19``...) are data.
    Empty when the evaluation drew no resamples."""

    method: str | None = None
    confidence: Number | None = None
    samples: int | None = None
    seed: int | None = None
    patients: int | None = None

    def ci(self, key: str) -> Interval:
        """The interval of statistic ``key``; None when it was not drawn or is undefined."""
        return self.get(key)


class AtThreshold(Record):
    """Sensitivity and specificity at the stored operating threshold."""

    threshold: Number
    sensitivity: Number | None
    specificity: Number | None
    positives: int
    negatives: int
    bootstrap: Bootstrap


class ReliabilityBin(Record):
    bin: int
    mean_probability: Number
    observed_frequency: Number
    count: int


class ClassCalibration(Record):
    brier: Number
    ece: Number
    reliability: list[ReliabilityBin]
    bootstrap: Bootstrap


class Calibration(Record):
    bins: int
    classes: dict[str, ClassCalibration]


class Subgroup(Record):
    """One value of a patient attribute; a group too small to score has counts only."""

    images: int
    patients: int
    classes_present: list[str]
    too_small: bool
    accuracy: Number | None = None
    macro_f1: Number | None = None
    roc_auc: Number | None = None
    bootstrap: Bootstrap | None = None
    at_threshold: AtThreshold | None = None


class Subgroups(Record):
    min_patients: int
    missing: list[str]
    attributes: dict[str, dict[str, Subgroup]]


class Verdict(Record):
    level: str
    text: str


class DatasetRef(Record):
    """The ETL output a set came from (an external set's whole counts too)."""

    uri: str
    split: str
    fingerprint: str
    counts: dict[str, Any] | None = None


class SetMetrics(Record):
    """One evaluated set: the test split, an external set, or a shortcut audit's masked variant (which
    carries no dataset, subgroups or class sources)."""

    images: int
    patients: int
    report: ClassificationReport
    confusion_matrix: list[list[int]]
    roc_auc: dict[str, Number | None]
    rates: dict[str, Rates]
    bootstrap: Bootstrap
    dataset: DatasetRef | None = None
    kind: str | None = None
    audit: Audit | None = None
    at_threshold: AtThreshold | None = None
    calibration: Calibration | None = None
    subgroups: Subgroups | None = None
    majority_class_macro_f1: Number | None = None
    chance_accuracy: Number | None = None
    sources_by_class: dict[str, list[str]] | None = None
    files: dict[str, str] | None = None

    def scores(self, row: str) -> ClassScores:
        """A class's (or ``macro avg``'s, ``weighted avg``'s) row of the classification report."""
        value = self.report[row]
        if not isinstance(value, ClassScores):
            raise KeyError(row)
        return value

    @property
    def accuracy(self) -> Number:
        return self.report["accuracy"]  # type: ignore[return-value]

    @property
    def macro_f1(self) -> Number:
        return self.scores("macro avg").f1_score


class Audit(Record):
    """The shortcut audit: the lung region, the test split with the lungs hidden and with only them kept."""

    region: dict[str, Number]
    lungs_hidden: SetMetrics
    lungs_only: SetMetrics
    verdict: Verdict | None = None


class ProbeClass(Record):
    images: int
    patients_by_source: dict[str, int]
    skipped: str | None = None
    folds: int | None = None
    balanced_accuracy: Number | None = None
    chance: Number | None = None
    roc_auc: Number | None = None


class SourceProbe(Record):
    method: str
    classes: dict[str, ProbeClass]


class Gradcam(Record):
    layer: str
    file: str
    examples: int
    explained_class: str


class EvaluationSettings(Record):
    bootstrap_samples: int
    gradcam_examples: int
    seed: int
    operating_rule: str


class Provenance(Record):
    """The machines that trained and evaluated the model (CPU, instruction sets, libraries)."""

    training: dict[str, Any] | None
    evaluation: dict[str, Any] | None


class Evaluation(Record):
    """The whole of ``metrics.json``."""

    format: str
    model: str
    seed: int | None
    task: str
    classes: list[str]
    config: dict[str, Any]
    history: dict[str, Any]
    split: str
    test: SetMetrics
    external: dict[str, SetMetrics]
    operating_point: PointSummary
    source_probe: SourceProbe
    gradcam: Gradcam | None
    files: dict[str, str]
    settings: EvaluationSettings
    warnings: list[str]
    provenance: Provenance
    model_card: ModelCard | None = None

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """The epochs the model was trained for (none in a history that predates them)."""
        return self.history.get("epochs") or []

    @property
    def label(self) -> str:
        """How the report names the run: the model, and its seed when it has one."""
        return self.model if self.seed is None else f"{self.model} seed {self.seed}"


SetMetrics.model_rebuild()


def read_metrics(path: Path) -> Evaluation:
    """``metrics.json`` (a file, or the evaluation folder holding it), validated."""
    return read_document(Evaluation, path, "metrics.json", EVALUATION_FORMAT, EVALUATION_VERSION, REEVALUATE)
