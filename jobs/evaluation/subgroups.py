"""Subgroups: the same metrics by source, sex, age band and view, where the dataset's rows carry them.

A group with fewer than ``min_patients`` patients is listed with its counts and ``too_small``, not hidden
and not scored: an interval over a handful of patients says nothing. An attribute the rows lack is named
in ``missing``, so the report says what could not be checked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jobs.evaluation.metrics import bootstrap_intervals, classification_table, roc_auc_per_class
from jobs.evaluation.thresholds import rates_at_threshold

ATTRIBUTES = ("source", "sex", "age_band", "view")
MIN_PATIENTS = 10
AGE_BANDS = ((0, 18, "0-17"), (18, 40, "18-39"), (40, 60, "40-59"), (60, 80, "60-79"), (80, 200, "80+"))
UNKNOWN = "unknown"


def age_bands(ages: np.ndarray) -> np.ndarray:
    """Ages in years -> band names; missing (NaN, None) or out-of-range ages -> ``unknown``."""
    ages = np.asarray([np.nan if a is None else a for a in ages], dtype=float)
    out = np.full(len(ages), UNKNOWN, dtype=object)
    for low, high, name in AGE_BANDS:
        out[(ages >= low) & (ages < high)] = name
    return out


def group_columns(data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """({attribute: value per row}, [attributes the rows lack]) from a loaded set's columns."""
    columns: dict[str, np.ndarray] = {}
    for name in ("source", "sex", "view"):
        if name in data:
            columns[name] = np.asarray(
                [UNKNOWN if v in (None, "") else str(v) for v in data[name]], dtype=object
            )
    if "age" in data:
        columns["age_band"] = age_bands(data["age"])
    return {a: columns[a] for a in ATTRIBUTES if a in columns}, [a for a in ATTRIBUTES if a not in columns]


def group_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    patients: np.ndarray,
    classes: Sequence[str],
    positive_class: str,
    threshold: float,
    bootstrap_samples: int,
    seed: int,
) -> dict:
    """Macro F1 and accuracy (arg-max), ROC AUC, and sensitivity/specificity at the threshold, with CIs."""
    y_pred = probabilities.argmax(axis=1)
    k = list(classes).index(positive_class)
    table = classification_table(y_true, y_pred, classes)
    return {
        "accuracy": table["accuracy"],
        "macro_f1": table["macro avg"]["f1-score"],
        "roc_auc": roc_auc_per_class(y_true, probabilities, classes)[positive_class],
        "bootstrap": bootstrap_intervals(y_true, y_pred, patients, classes, bootstrap_samples, seed),
        "at_threshold": rates_at_threshold(
            y_true == k, probabilities[:, k], threshold, patients, bootstrap_samples, seed
        ),
    }


def subgroup_report(
    data: dict[str, np.ndarray],
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    positive_class: str,
    threshold: float,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    min_patients: int = MIN_PATIENTS,
) -> dict:
    """Per attribute and value: counts, classes present and, for groups large enough, the metrics."""
    columns, missing = group_columns(data)
    patients = np.asarray(data["patient_id"]).astype(str)
    out: dict = {"min_patients": min_patients, "missing": missing, "attributes": {}}
    for attribute, values in columns.items():
        groups = {}
        for value in sorted(set(values)):
            rows = np.flatnonzero(values == value)
            n_patients = len(np.unique(patients[rows]))
            group: dict = {
                "images": int(len(rows)),
                "patients": n_patients,
                "classes_present": [classes[c] for c in np.unique(y_true[rows])],
                "too_small": n_patients < min_patients,
            }
            if not group["too_small"]:
                group.update(
                    group_metrics(
                        y_true[rows],
                        probabilities[rows],
                        patients[rows],
                        classes,
                        positive_class,
                        threshold,
                        bootstrap_samples,
                        seed,
                    )
                )
            groups[value] = group
        out["attributes"][attribute] = groups
    return out
