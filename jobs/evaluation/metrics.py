"""Metrics of a classifier's test predictions: pure functions of labels, predictions and probabilities.

The table follows the paper's Tables 1 and 2 (scikit-learn's ``classification_report``). Anything that is
undefined for a given test set (ROC AUC of a class absent from it, the specificity of a class that is
everything) is ``None``, never NaN, so ``metrics.json`` stays strict JSON. Confidence intervals resample
patients, not images: one patient's images are not independent evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score


def classification_table(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Per-class precision/recall/F1/support, accuracy, macro and weighted averages (paper's layout)."""
    return classification_report(
        y_true,
        y_pred,
        labels=list(range(len(classes))),
        target_names=list(classes),
        output_dict=True,
        zero_division=0,
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def per_class_rates(cm: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Sensitivity, specificity and PPV of each class against the rest; ``None`` where undefined."""
    total = cm.sum()
    rates = {}
    for k, name in enumerate(classes):
        tp = cm[k, k]
        fn = cm[k].sum() - tp
        fp = cm[:, k].sum() - tp
        tn = total - tp - fn - fp
        rates[name] = {
            "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp),
            "ppv": _ratio(tp, tp + fp),
        }
    return rates


def roc_auc_per_class(y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> dict:
    """One-vs-rest ROC AUC; ``None`` for a class that is absent from, or is all of, the test set."""
    out: dict[str, float | None] = {}
    for k, name in enumerate(classes):
        positives = y_true == k
        out[name] = (
            float(roc_auc_score(positives, probabilities[:, k]))
            if 0 < positives.sum() < len(y_true)
            else None
        )
    return out


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _summary(cm: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Accuracy, macro F1 (scikit-learn's, zero_division=0) and per-class recall (NaN if class absent)."""
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    return float(tp.sum() / cm.sum()), float(f1.mean()), recall


def patient_resamples(patients: np.ndarray, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of ``samples`` bootstrap resamples that draw whole patients with replacement."""
    _, patient_index = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    members = [np.flatnonzero(patient_index == p) for p in range(patient_index.max(initial=-1) + 1)]
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        picked = rng.integers(0, len(members), size=len(members))
        yield np.concatenate([members[p] for p in picked])


def percentile_interval(values: Sequence[float], confidence: float = 0.95) -> list[float] | None:
    """The central ``confidence`` percentile interval of the finite values; None when there are none."""
    column = np.asarray(values, dtype=float)
    column = column[np.isfinite(column)]
    if not len(column):
        return None
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(column, tail)), float(np.percentile(column, 100 - tail))]


def patient_intervals(
    statistics: Callable[[np.ndarray], dict[str, float | None]],
    patients: np.ndarray,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Percentile intervals of each statistic ``statistics(rows)`` returns, over patient resamples.

    A statistic that is undefined (None or NaN) in a resample is left out of that statistic's interval.
    """
    if samples <= 0:
        return {}
    draws: dict[str, list[float]] = {}
    for rows in patient_resamples(patients, samples, seed):
        for name, value in statistics(rows).items():
            draws.setdefault(name, []).append(np.nan if value is None else value)
    return {
        "method": "percentile bootstrap over patients",
        "confidence": confidence,
        "samples": samples,
        "seed": seed,
        "patients": len(np.unique(np.asarray(patients).astype(str))),
        **{name: percentile_interval(values, confidence) for name, values in draws.items()},
    }


def rank_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney statistic (ties count half): sklearn's value, fast enough to bootstrap.
    None when one side is empty."""
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    patients: np.ndarray,
    classes: Sequence[str],
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    probabilities: np.ndarray | None = None,
) -> dict:
    """Percentile intervals of accuracy, macro F1, each class's recall and (given the probabilities) each
    class's one-vs-rest ROC AUC, resampling whole patients. The AUC needs no threshold: it says whether
    the scores rank a class first even where the arg-max answers collapse.

    A resample that lacks a class says nothing about that class's recall or AUC and is left out of
    their intervals.
    """
    n = len(classes)

    def statistics(rows: np.ndarray) -> dict[str, float | None]:
        accuracy, macro_f1, recall = _summary(_confusion(y_true[rows], y_pred[rows], n))
        values: dict[str, float | None] = {"accuracy": accuracy, "macro_f1": macro_f1} | {
            f"recall:{c}": r for c, r in zip(classes, recall, strict=True)
        }
        if probabilities is not None:
            for k, c in enumerate(classes):
                values[f"roc_auc:{c}"] = rank_auc(y_true[rows] == k, probabilities[rows, k])
        return values

    return patient_intervals(statistics, patients, samples, seed, confidence)


def evaluate_predictions(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    patients: np.ndarray,
    classes: Sequence[str],
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> dict:
    """Everything ``metrics.json`` says about one test set; predictions are the arg-max class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_pred = probabilities.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    return json_safe(
        {
            "images": int(len(y_true)),
            "patients": int(len(np.unique(np.asarray(patients).astype(str)))),
            "report": classification_table(y_true, y_pred, classes),
            "confusion_matrix": cm.tolist(),
            "roc_auc": roc_auc_per_class(y_true, probabilities, classes),
            "rates": per_class_rates(cm, classes),
            "bootstrap": bootstrap_intervals(
                y_true, y_pred, patients, classes, bootstrap_samples, seed, probabilities=probabilities
            ),
        }
    )


def json_safe(value: object) -> object:
    """Numpy scalars to Python numbers and NaN/inf to ``None``: the result dumps with ``allow_nan=False``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
