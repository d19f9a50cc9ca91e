"""``report.json``: the experiment's runs side by side, their figures across seeds, the dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.contracts.results.base import Interval, Number, Record, read_document
from jobs.contracts.results.card import ModelCard, PointSummary
from jobs.contracts.results.metrics import (
    ClassificationReport,
    DatasetRef,
    EvaluationSettings,
    Provenance,
    Rates,
    SourceProbe,
    Subgroups,
    Verdict,
)

REPORT_FORMAT = "cxr-report"
REPORT_VERSION = 1
FORMAT = f"{REPORT_FORMAT}/{REPORT_VERSION}"


class SummaryRow(Record):
    """One evaluated set of one run in the disease summary (internal, lungs hidden, external...)."""

    set: str
    kind: str
    classes_present: int | None
    images: int
    patients: int
    macro_f1: Number
    macro_f1_ci: Interval
    majority_class_macro_f1: Number | None
    roc_auc: Number | None
    roc_auc_ci: Interval
    sensitivity: Number | None
    sensitivity_ci: Interval
    specificity: Number | None
    specificity_ci: Interval
    ece: Number | None
    ece_ci: Interval


class RunAudit(Record):
    verdict: Verdict | None
    region: dict[str, Number] | None


class ExternalSummary(Record):
    accuracy: Number
    macro_f1: Number
    accuracy_ci: Interval
    images: int
    uri: str | None


class RunSummary(Record):
    """One run (model and seed) with everything the report shows about it."""

    disease_summary: list[SummaryRow]
    findings: list[str]
    seed: int | None
    label: str
    provenance: Provenance | None
    operating_point: PointSummary | None
    subgroups: Subgroups | None
    source_probe: SourceProbe | None
    model_card: ModelCard | None
    model: str
    task: str
    folder: str
    classes: list[str]
    accuracy: Number
    accuracy_ci: Interval
    macro_f1_ci: Interval
    paper_accuracy: Number | None
    table: ClassificationReport
    roc_auc: dict[str, Number | None] | None
    rates: dict[str, Rates] | None
    recall_ci: dict[str, Interval]
    images: int
    patients: int
    audit: RunAudit
    external: dict[str, ExternalSummary]
    config: dict[str, Any]
    dataset: DatasetRef | None
    evaluation_settings: EvaluationSettings | None
    warnings: list[str]
    epochs_run: int


class Figure(Record):
    """One figure over seeds: median and range, each seed's value, the median interval."""

    median: Number | None
    min: Number | None
    max: Number | None
    per_seed: list[Number | None]
    ci_median: Interval


class SeedRow(Record):
    set: str
    kind: str
    images: int
    patients: int
    classes_present: int | None
    majority_class_macro_f1: Number | None
    figures: dict[str, Figure]


class SeedVerdict(Record):
    level: str | None
    per_seed: list[str | None]


class ModelAcrossSeeds(Record):
    model: str
    seeds: list[int | None]
    rows: list[SeedRow]
    sentences: list[str]
    audit: SeedVerdict


class Machine(Record):
    cpu: dict[str, Any] | None
    gpus: list[str] | None
    tensorflow: str | None
    keras: str | None
    settings: dict[str, Any] | None


class LeftOut(Record):
    model: str | None
    seed: int | None
    folder: str


class Report(Record):
    """The whole of ``report.json``."""

    format: str
    experiment: str
    paper_reference: str | None
    paper_headline: dict[str, Any] | None
    across_seeds: list[ModelAcrossSeeds]
    models: list[RunSummary]
    models_planned: list[str] | None
    seeds_planned: list[int] | None
    machines: list[Machine]
    left_out: list[LeftOut]
    dataset: dict[str, Any] | None
    experiment_settings: dict[str, Any] | None


def read_report(path: Path) -> Report:
    """``report.json`` (a file, or the report folder holding it), validated."""
    return read_document(
        Report, path, "report.json", REPORT_FORMAT, REPORT_VERSION, "re-run `cxr report` for this experiment"
    )
