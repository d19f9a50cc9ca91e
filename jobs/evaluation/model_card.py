"""The model card: what the model is for, what it learnt from, how it scored, and what it cannot be trusted
with. Every field is read from the training config, the dataset manifest and the evaluation; only the
intended use, which is the project's policy, is fixed text.
"""

from __future__ import annotations

from jobs.contracts.results import Evaluation, ModelCard, SetMetrics
from jobs.contracts.results.card import FORMAT
from jobs.evaluation import conclusions
from jobs.evaluation.source_report import summary_rows

INTENDED_USE = (
    "Research only: studying COVID-19 detection on chest X-rays and its shortcuts. Not a medical device; "
    "not for diagnosis, triage or any decision about a patient."
)


def headline(metrics: SetMetrics, positive_class: str) -> dict:
    """Macro F1, the positive class's ROC AUC and the rates at the operating threshold, with intervals."""
    at = metrics.at_threshold
    return {
        "images": metrics.images,
        "patients": metrics.patients,
        "macro_f1": metrics.macro_f1,
        "macro_f1_ci": metrics.bootstrap.ci("macro_f1"),
        "majority_class_macro_f1": metrics.majority_class_macro_f1,
        "roc_auc": metrics.roc_auc.get(positive_class),
        "sensitivity": at.sensitivity if at else None,
        "sensitivity_ci": at.bootstrap.ci("sensitivity") if at else None,
        "specificity": at.specificity if at else None,
        "specificity_ci": at.bootstrap.ci("specificity") if at else None,
    }


def final_epoch(epochs: list[dict]) -> dict:
    """The last epoch's training and validation figures (loss, accuracy, ...), without its position."""
    last = epochs[-1] if epochs else {}
    return {
        k: v
        for k, v in last.items()
        if k not in ("stage", "epoch") and isinstance(v, int | float) and not isinstance(v, bool)
    }


def _confounded(test: SetMetrics) -> list[str]:
    """A class whose every test image comes from one source: accuracy there can measure the source."""
    return [
        f"In the test split every {name} image comes from source '{sources[0]}': class and source "
        "are confounded, so accuracy there can measure the source instead of the disease."
        for name, sources in (test.sources_by_class or {}).items()
        if len(sources) == 1
    ]


def _source_in_features(result: Evaluation) -> list[str]:
    return [
        f"Within {name}, the model's features predict the image's source with balanced accuracy "
        f"{probe.balanced_accuracy:.2f} (chance {probe.chance:.2f}): they carry the source."
        for name, probe in result.source_probe.classes.items()
        if probe.balanced_accuracy is not None and probe.balanced_accuracy >= 0.75
    ]


def _subgroup_gaps(test: SetMetrics, manifest: dict | None) -> list[str]:
    """Attributes absent from the rows, and groups too small to score."""
    subgroups = test.subgroups
    if subgroups is None:
        return []
    notes = []
    if subgroups.missing:
        view = (manifest or {}).get("settings", {}).get("view")
        selected = f" The ETL kept view {view} only." if view and "view" in subgroups.missing else ""
        notes.append(
            f"Not checked by subgroup (absent from the dataset rows): {', '.join(subgroups.missing)}."
            + selected
        )
    small = [
        f"{attribute}={value}"
        for attribute, groups in subgroups.attributes.items()
        for value, g in groups.items()
        if g.too_small
    ]
    if small:
        notes.append(
            f"Subgroups too small to score (< {subgroups.min_patients} patients): {', '.join(small)}."
        )
    return notes


def limitations(result: Evaluation, manifest: dict | None) -> list[str]:
    """Known limitations, each stated from a measured fact of this model's data or evaluation."""
    notes = _confounded(result.test)
    notes += conclusions.limitations(summary_rows(result))
    notes += _source_in_features(result)
    notes += _subgroup_gaps(result.test, manifest)
    if result.operating_point.note:
        notes.append(f"Operating threshold: {result.operating_point.note}.")
    if not result.external:
        notes.append("No external test set was evaluated: the figures are from the training sources only.")
    if manifest and not manifest.get("settings", {}).get("adults_only"):
        notes.append("Pediatric images were not excluded (the ETL's adults_only was off).")
    return notes


def lineage(manifest: dict | None) -> dict | None:
    """Where the training data came from, as the ETL manifest says; None without a manifest."""
    if not manifest:
        return None
    settings = manifest.get("settings", {})
    return {
        "dataset_fingerprint": manifest.get("fingerprint"),
        "sources": [{"kind": kind, "uri": uri} for kind, uri in settings.get("source", [])],
        "metadata_sha256": manifest.get("metadata_sha256"),
        "selection": {
            k: settings.get(k)
            for k in (
                "view",
                "modality",
                "covid_finding",
                "pneumonia_finding",
                "normal_finding",
                "adults_only",
            )
        },
        "counts": manifest.get("counts"),
    }


def model_card(result: Evaluation, manifest: dict | None) -> ModelCard:
    """The card of one evaluated model (``model_card.json``)."""
    config = result.config
    epochs = result.epochs
    positive = result.operating_point.positive_class
    return ModelCard.model_validate(
        {
            "format": FORMAT,
            "model": config["model"],
            "task": config["task"],
            "classes": config["classes"],
            "intended_use": INTENDED_USE,
            "data_lineage": lineage(manifest),
            "training": {
                "image_shape": config.get("image_shape"),
                "weights": config.get("weights"),
                "normalisation": config.get("normalisation"),
                "hyperparameters": config.get("hyperparameters"),
                "epochs_trained": len(epochs),
                "final_epoch": final_epoch(epochs),
            },
            "operating_point": result.operating_point,
            "metrics": {
                "internal_test": headline(result.test, positive),
                **{f"external:{name}": headline(m, positive) for name, m in result.external.items()},
            },
            "known_limitations": limitations(result, manifest),
        }
    )
