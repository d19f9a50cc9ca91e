"""Metrics agree with scikit-learn computed independently; intervals behave; constant predictors are sane."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from jobs.evaluation.metrics import bootstrap_intervals, evaluate_predictions

CLASSES = ("COVID-19", "Normal", "Pneumonia")


def _predictions(n: int, seed: int, skill: float = 0.6):
    """Probabilities that favour the true class with probability ``skill``; 1-3 images per patient."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += np.where(rng.random(n) < skill, 2.0, 0.0)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    patients = np.repeat(np.arange(n), rng.integers(1, 4, n))[:n].astype(str)
    return y, probs, patients


def _strict_json(metrics: dict) -> dict:
    def reject(token):
        raise AssertionError(f"non-finite number {token} in the JSON")

    return json.loads(json.dumps(metrics, allow_nan=False), parse_constant=reject)


def test_metrics_match_scikit_learn():
    """Every table entry, the confusion matrix and the AUCs equal scikit-learn's own computation."""
    y, probs, patients = _predictions(120, seed=1)
    m = _strict_json(evaluate_predictions(y, probs, patients, CLASSES, bootstrap_samples=50, seed=0))
    pred = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=[0, 1, 2], zero_division=0
    )
    for k, name in enumerate(CLASSES):
        row = m["report"][name]
        assert row["precision"] == pytest.approx(precision[k])
        assert row["recall"] == pytest.approx(recall[k])
        assert row["f1-score"] == pytest.approx(f1[k])
        assert row["support"] == support[k]
        assert m["roc_auc"][name] == pytest.approx(roc_auc_score(y == k, probs[:, k]))
        cm = confusion_matrix(y, pred)
        tn = cm.sum() - cm[k].sum() - cm[:, k].sum() + cm[k, k]
        assert m["rates"][name]["specificity"] == pytest.approx(tn / (cm.sum() - cm[k].sum()))
        assert m["rates"][name]["sensitivity"] == pytest.approx(recall[k])
        assert m["rates"][name]["ppv"] == pytest.approx(precision[k])
    assert m["report"]["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["report"]["macro avg"]["f1-score"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["report"]["weighted avg"]["f1-score"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert m["patients"] == len(set(patients))


def test_bootstrap_contains_estimate_and_narrows_with_more_patients():
    """Intervals hold the point estimate, and a 10x larger test set gives narrower ones."""
    widths = []
    for n in (60, 600):
        y, probs, patients = _predictions(n, seed=n)
        m = evaluate_predictions(y, probs, patients, CLASSES, bootstrap_samples=400, seed=3)
        ci = m["bootstrap"]
        for key, point in [
            ("accuracy", m["report"]["accuracy"]),
            ("macro_f1", m["report"]["macro avg"]["f1-score"]),
        ] + [(f"recall:{c}", m["report"][c]["recall"]) for c in CLASSES]:
            assert ci[key][0] <= point <= ci[key][1], (n, key, ci[key], point)
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
    assert widths[1] < widths[0] / 2


def test_bootstrap_resamples_patients_not_images():
    """A patient's images move together: one patient with many images widens the interval."""
    y = np.array([0] * 40 + [1] * 40)
    pred = np.array([0] * 40 + [0] * 40)
    by_image = bootstrap_intervals(y, pred, np.arange(80).astype(str), CLASSES[:2], samples=300, seed=0)
    by_two_patients = bootstrap_intervals(
        y, pred, np.array(["a"] * 40 + ["b"] * 40), CLASSES[:2], 300, seed=0
    )
    assert by_two_patients["patients"] == 2 and by_image["patients"] == 80
    width = lambda ci: ci["accuracy"][1] - ci["accuracy"][0]  # noqa: E731
    assert width(by_two_patients) > 2 * width(by_image)


def test_bootstrap_is_seeded():
    y, probs, patients = _predictions(80, seed=5)
    pred = probs.argmax(axis=1)
    assert bootstrap_intervals(y, pred, patients, CLASSES, 100, seed=7) == bootstrap_intervals(
        y, pred, patients, CLASSES, 100, seed=7
    )
    assert bootstrap_intervals(y, pred, patients, CLASSES, 100, seed=7) != bootstrap_intervals(
        y, pred, patients, CLASSES, 100, seed=8
    )


def test_constant_predictor_gets_what_it_deserves():
    """Always 'Normal': accuracy = Normal's share, zero precision/recall elsewhere, undefined AUC is null."""
    y = np.array([0] * 10 + [1] * 25 + [2] * 15)
    probs = np.tile([0.2, 0.5, 0.3], (50, 1))
    with np.errstate(all="raise"):
        m = _strict_json(
            evaluate_predictions(y, probs, np.arange(50), CLASSES, bootstrap_samples=100, seed=0)
        )
    assert m["report"]["accuracy"] == pytest.approx(0.5)
    assert m["report"]["COVID-19"]["precision"] == 0 and m["report"]["COVID-19"]["recall"] == 0
    assert m["report"]["Normal"]["recall"] == 1
    assert m["rates"]["COVID-19"]["ppv"] is None and m["rates"]["Normal"]["specificity"] == 0
    assert all(v == pytest.approx(0.5) for v in m["roc_auc"].values())


def test_absent_class_is_null_not_nan():
    """A test set without one class: its AUC, sensitivity and recall interval are null, never NaN."""
    y = np.array([1] * 20 + [2] * 20)
    probs = np.tile([0.1, 0.6, 0.3], (40, 1))
    m = _strict_json(evaluate_predictions(y, probs, np.arange(40), CLASSES, bootstrap_samples=50, seed=0))
    assert m["roc_auc"]["COVID-19"] is None
    assert m["rates"]["COVID-19"]["sensitivity"] is None
    assert m["bootstrap"]["recall:COVID-19"] is None
    assert m["report"]["COVID-19"]["support"] == 0
