"""The operating threshold: chosen on the validation split by the experiment's rule, then applied unchanged.

Rules (the experiment's ``evaluation.operating_rule``): ``youden`` (the threshold maximising sensitivity +
specificity - 1) or ``target_sensitivity:S`` (the highest threshold whose sensitivity is at least S, so the
best specificity that keeps S). No scikit-learn import at module level: the experiment schema checks rules.
"""

from __future__ import annotations

import numpy as np

from jobs.evaluation.metrics import patient_intervals

DEFAULT_RULE = "youden"
FALLBACK_THRESHOLD = 0.5


def parse_rule(rule: str) -> tuple[str, float | None]:
    """``youden`` -> ("youden", None); ``target_sensitivity:0.95`` -> ("target_sensitivity", 0.95)."""
    name, _, value = rule.partition(":")
    if name == "youden" and not value:
        return name, None
    if name == "target_sensitivity":
        try:
            target = float(value)
        except ValueError:
            target = -1.0
        if 0.0 < target <= 1.0:
            return name, target
    raise ValueError(
        f"operating rule {rule!r}: use 'youden' or 'target_sensitivity:S' with 0 < S <= 1 "
        "(e.g. 'target_sensitivity:0.95')"
    )


def choose_threshold(positive: np.ndarray, probability: np.ndarray, rule: str) -> tuple[float, str | None]:
    """(threshold, note): the rule's threshold on these labels, or 0.5 and why when both classes are not present.

    Images with ``probability >= threshold`` are called positive, as ``jobs.contracts.operating_point.decide`` does.
    """
    from sklearn.metrics import roc_curve

    name, target = parse_rule(rule)
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return FALLBACK_THRESHOLD, (
            f"the validation split has only {'positive' if positive.any() else 'negative'} images, so "
            f"rule {rule!r} is undefined; the threshold is {FALLBACK_THRESHOLD}"
        )
    fpr, tpr, thresholds = roc_curve(positive, probability, drop_intermediate=False)
    thresholds = np.minimum(thresholds, 1.0)  # roc_curve's first threshold is +inf: "nothing positive"
    # youden: the first maximum of J, the highest threshold among ties; a target: the first that reaches it
    best = np.argmax(tpr - fpr) if name == "youden" else np.flatnonzero(tpr >= target - 1e-12)[0]
    return float(thresholds[int(best)]), None


def rates_at_threshold(
    positive: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    patients: np.ndarray,
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> dict:
    """Sensitivity and specificity of ``probability >= threshold``, with patient-bootstrap intervals."""
    positive = np.asarray(positive, dtype=bool)
    called = np.asarray(probability, dtype=float) >= threshold

    def statistics(rows: np.ndarray) -> dict[str, float | None]:
        pos, call = positive[rows], called[rows]
        return {
            "sensitivity": float(call[pos].mean()) if pos.any() else None,
            "specificity": float((~call[~pos]).mean()) if (~pos).any() else None,
        }

    return {
        "threshold": threshold,
        **statistics(np.arange(len(positive))),
        "positives": int(positive.sum()),
        "negatives": int((~positive).sum()),
        "bootstrap": patient_intervals(statistics, patients, bootstrap_samples, seed),
    }
