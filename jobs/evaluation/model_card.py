"""The model card: what the model is for, what it learnt from, how it scored, and what it cannot be trusted
with. Every field is read from the training config, the dataset manifest and the evaluation; only the
intended use, which is the project's policy, is fixed text.
"""

from __future__ import annotations

from jobs.evaluation import conclusions
from jobs.evaluation.source_report import summary_rows

MODEL_CARD_FILE = "model_card.json"
FORMAT = "cxr-model-card/1"
INTENDED_USE = (
    "Research only: studying COVID-19 detection on chest X-rays and its shortcuts. Not a medical device; "
    "not for diagnosis, triage or any decision about a patient."
)


def headline(metrics: dict, positive_class: str) -> dict:
    """Macro F1, the positive class's ROC AUC and the rates at the operating threshold, with intervals."""
    boot = metrics.get("bootstrap") or {}
    at = metrics.get("at_threshold") or {}
    at_boot = at.get("bootstrap") or {}
    return {
        "images": metrics["images"],
        "patients": metrics["patients"],
        "macro_f1": metrics["report"]["macro avg"]["f1-score"],
        "macro_f1_ci": boot.get("macro_f1"),
        "majority_class_macro_f1": metrics.get("majority_class_macro_f1"),
        "roc_auc": metrics["roc_auc"].get(positive_class),
        "sensitivity": at.get("sensitivity"),
        "sensitivity_ci": at_boot.get("sensitivity"),
        "specificity": at.get("specificity"),
        "specificity_ci": at_boot.get("specificity"),
    }


def final_epoch(epochs: list[dict]) -> dict:
    """The last epoch's training and validation figures (loss, accuracy, ...), without its position."""
    last = epochs[-1] if epochs else {}
    return {
        k: v
        for k, v in last.items()
        if k not in ("stage", "epoch") and isinstance(v, int | float) and not isinstance(v, bool)
    }


def limitations(result: dict, manifest: dict | None) -> list[str]:
    """Known limitations, each stated from a measured fact of this model's data or evaluation."""
    notes = []
    test = result["test"]
    for name, sources in (test.get("sources_by_class") or {}).items():
        if len(sources) == 1:
            notes.append(
                f"In the test split every {name} image comes from source '{sources[0]}': class and source "
                "are confounded, so accuracy there can measure the source instead of the disease."
            )
    notes += conclusions.limitations(summary_rows(result))
    for name, probe in ((result.get("source_probe") or {}).get("classes") or {}).items():
        if "balanced_accuracy" in probe and probe["balanced_accuracy"] >= 0.75:
            notes.append(
                f"Within {name}, the model's features predict the image's source with balanced accuracy "
                f"{probe['balanced_accuracy']:.2f} (chance {probe['chance']:.2f}): they carry the source."
            )
    subgroups = test.get("subgroups") or {}
    if subgroups.get("missing"):
        view = (manifest or {}).get("settings", {}).get("view")
        selected = f" The ETL kept view {view} only." if view and "view" in subgroups["missing"] else ""
        notes.append(
            f"Not checked by subgroup (absent from the dataset rows): {', '.join(subgroups['missing'])}."
            + selected
        )
    small = [
        f"{attribute}={value}"
        for attribute, groups in (subgroups.get("attributes") or {}).items()
        for value, g in groups.items()
        if g["too_small"]
    ]
    if small:
        notes.append(
            f"Subgroups too small to score (< {subgroups['min_patients']} patients): {', '.join(small)}."
        )
    note = (result.get("operating_point") or {}).get("note")
    if note:
        notes.append(f"Operating threshold: {note}.")
    if not result.get("external"):
        notes.append("No external test set was evaluated: the figures are from the training sources only.")
    if manifest and not manifest.get("settings", {}).get("adults_only"):
        notes.append("Pediatric images were not excluded (the ETL's adults_only was off).")
    return notes


def model_card(result: dict, manifest: dict | None) -> dict:
    """The card of one evaluated model (``model_card.json``)."""
    config = result["config"]
    epochs = (result.get("history") or {}).get("epochs") or []
    point = result.get("operating_point") or {}
    positive = point.get("positive_class", "COVID-19")
    lineage = None
    if manifest:
        lineage = {
            "dataset_fingerprint": manifest.get("fingerprint"),
            "sources": [
                {"kind": kind, "uri": uri} for kind, uri in manifest.get("settings", {}).get("source", [])
            ],
            "metadata_sha256": manifest.get("metadata_sha256"),
            "selection": {
                k: manifest.get("settings", {}).get(k)
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
    return {
        "format": FORMAT,
        "model": config["model"],
        "task": config["task"],
        "classes": config["classes"],
        "intended_use": INTENDED_USE,
        "data_lineage": lineage,
        "training": {
            "image_shape": config.get("image_shape"),
            "weights": config.get("weights"),
            "normalisation": config.get("normalisation"),
            "hyperparameters": config.get("hyperparameters"),
            "epochs_trained": len(epochs),
            "final_epoch": final_epoch(epochs),
        },
        "operating_point": point,
        "metrics": {
            "internal_test": headline(result["test"], positive),
            **{f"external:{name}": headline(m, positive) for name, m in result.get("external", {}).items()},
        },
        "known_limitations": limitations(result, manifest),
    }
