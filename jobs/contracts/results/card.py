"""``model_card.json``: what the model is for, what it learnt from, how it scored, what it cannot do;
and the operating-point summary that ``metrics.json`` and the card share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.contracts.results.base import Interval, Number, Record, read_document

MODEL_CARD_FILE = "model_card.json"
MODEL_CARD_FORMAT = "cxr-model-card"
MODEL_CARD_VERSION = 1
FORMAT = f"{MODEL_CARD_FORMAT}/{MODEL_CARD_VERSION}"


class ValidationCounts(Record):
    images: int
    positives: int


class PointSummary(Record):
    """The threshold the evaluation chose, the rule and the split that chose it."""

    rule: str
    threshold: Number
    positive_class: str
    chosen_on: str
    validation: ValidationCounts
    note: str | None


class Headline(Record):
    """One set's figures on the card, with their intervals."""

    images: int
    patients: int
    macro_f1: Number
    macro_f1_ci: Interval
    majority_class_macro_f1: Number | None
    roc_auc: Number | None
    sensitivity: Number | None
    sensitivity_ci: Interval
    specificity: Number | None
    specificity_ci: Interval


class SourceRef(Record):
    kind: str
    uri: str


class Lineage(Record):
    """The dataset the model learnt from, as its ETL manifest states it."""

    dataset_fingerprint: str | None
    sources: list[SourceRef]
    metadata_sha256: dict[str, str] | None
    selection: dict[str, Any]
    counts: dict[str, Any] | None


class CardTraining(Record):
    image_shape: list[int] | None
    weights: str | None
    normalisation: str | None
    hyperparameters: dict[str, Any] | None
    epochs_trained: int
    final_epoch: dict[str, Number]


class ModelCard(Record):
    format: str
    model: str
    task: str
    classes: list[str]
    intended_use: str
    data_lineage: Lineage | None
    training: CardTraining
    operating_point: PointSummary
    metrics: dict[str, Headline]
    known_limitations: list[str]


def read_model_card(path: Path) -> ModelCard:
    """``model_card.json`` (a file, or the evaluation folder holding it), validated."""
    return read_document(
        ModelCard,
        path,
        MODEL_CARD_FILE,
        MODEL_CARD_FORMAT,
        MODEL_CARD_VERSION,
        "re-run `cxr evaluate` for this model",
    )
