"""Calibration: do the probabilities mean what they say? Pure functions of labels and probabilities.

Each class is scored one-vs-rest: the Brier score (mean squared error of the probability), the expected
calibration error over equal-width bins (|observed frequency - mean probability|, weighted by the bin's
share of images) and the reliability diagram's points. Intervals resample patients (``patient_resamples``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jobs.evaluation.metrics import patient_intervals

DEFAULT_BINS = 10


def _bin_index(probability: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins over [0, 1], each closed on the right (a score on an edge joins the lower bin), as in
    scikit-learn's ``calibration_curve``."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], probability)


def reliability_bins(positive: np.ndarray, probability: np.ndarray, n_bins: int = DEFAULT_BINS) -> list[dict]:
    """The non-empty bins: mean predicted probability, observed frequency of the class, image count."""
    positive = np.asarray(positive, dtype=float)
    probability = np.asarray(probability, dtype=float)
    index = _bin_index(probability, n_bins)
    return [
        {
            "bin": int(b),
            "mean_probability": float(probability[index == b].mean()),
            "observed_frequency": float(positive[index == b].mean()),
            "count": int((index == b).sum()),
        }
        for b in np.unique(index)
    ]


def expected_calibration_error(
    positive: np.ndarray, probability: np.ndarray, n_bins: int = DEFAULT_BINS
) -> float:
    """Sum over bins of (bin's share of images) x |observed frequency - mean probability|."""
    bins = reliability_bins(positive, probability, n_bins)
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] / total * abs(b["observed_frequency"] - b["mean_probability"]) for b in bins))


def brier_score(positive: np.ndarray, probability: np.ndarray) -> float:
    """Mean squared difference between the probability and the 0/1 outcome (0 is perfect)."""
    return float(np.mean((np.asarray(probability, dtype=float) - np.asarray(positive, dtype=float)) ** 2))


def calibration_report(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    patients: np.ndarray,
    classes: Sequence[str],
    bootstrap_samples: int = 1000,
    seed: int = 0,
    n_bins: int = DEFAULT_BINS,
) -> dict:
    """Per class: Brier score and ECE with patient-bootstrap intervals, and the reliability diagram's bins.

    Both are defined even when the class is absent (the ideal probability is then 0 everywhere).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=float)
    out: dict = {"bins": n_bins, "classes": {}}
    for k, name in enumerate(classes):
        positive = y_true == k

        def stats(rows: np.ndarray, k: int = k, positive: np.ndarray = positive) -> dict[str, float]:
            return {
                "brier": brier_score(positive[rows], probabilities[rows, k]),
                "ece": expected_calibration_error(positive[rows], probabilities[rows, k], n_bins),
            }

        everything = np.arange(len(y_true))
        out["classes"][name] = {
            **stats(everything),
            "reliability": reliability_bins(positive, probabilities[:, k], n_bins),
            "bootstrap": patient_intervals(stats, patients, bootstrap_samples, seed),
        }
    return out
