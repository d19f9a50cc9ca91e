"""Calibration, operating threshold, subgroups and source probe: checked against scikit-learn, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, confusion_matrix, f1_score, roc_curve

from jobs.evaluation.calibration import (
    brier_score,
    calibration_report,
    expected_calibration_error,
    reliability_bins,
)
from jobs.evaluation.evaluate import majority_class_macro_f1
from jobs.evaluation.metrics import bootstrap_intervals, patient_intervals
from jobs.evaluation.probe import probe_class
from jobs.evaluation.subgroups import age_bands, group_columns, subgroup_report
from jobs.evaluation.thresholds import choose_threshold, parse_rule, rates_at_threshold

CLASSES = ("COVID-19", "Non-COVID")


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    """200 noisy scores: positives tend higher, classes overlap (no perfect threshold)."""
    rng = np.random.default_rng(7)
    positive = rng.random(200) < 0.35
    probability = np.clip(rng.normal(np.where(positive, 0.65, 0.35), 0.2), 0, 1).round(3)
    return positive, probability


def test_brier_score_equals_scikit_learn(scored):
    positive, probability = scored
    assert brier_score(positive, probability) == pytest.approx(brier_score_loss(positive, probability))


def test_reliability_bins_equal_calibration_curve(scored):
    positive, probability = scored
    observed, predicted = calibration_curve(positive, probability, n_bins=10, strategy="uniform")
    bins = reliability_bins(positive, probability, 10)
    assert [b["observed_frequency"] for b in bins] == pytest.approx(observed)
    assert [b["mean_probability"] for b in bins] == pytest.approx(predicted)
    assert sum(b["count"] for b in bins) == len(positive)


def test_ece_is_the_count_weighted_gap_of_calibration_curve(scored):
    positive, probability = scored
    observed, predicted = calibration_curve(positive, probability, n_bins=10, strategy="uniform")
    # bin counts by calibration_curve's own rule (np.histogram would put edge scores in the upper bin)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], probability), minlength=10)
    expected = np.sum(counts[counts > 0] / len(positive) * np.abs(observed - predicted))
    assert expected_calibration_error(positive, probability, 10) == pytest.approx(expected)


def test_calibration_report_has_intervals_around_each_class_estimate(scored):
    positive, probability = scored
    y_true = np.where(positive, 0, 1)
    probabilities = np.column_stack([probability, 1 - probability])
    report = calibration_report(y_true, probabilities, np.arange(len(y_true)), CLASSES, 200, 0)
    for name in CLASSES:
        c = report["classes"][name]
        low, high = c["bootstrap"]["brier"]
        assert low <= c["brier"] <= high
        assert c["bootstrap"]["ece"][0] <= c["bootstrap"]["ece"][1]
    # one-vs-rest on complementary probabilities: both classes have the same Brier score
    assert report["classes"]["COVID-19"]["brier"] == pytest.approx(report["classes"]["Non-COVID"]["brier"])


def test_youden_threshold_maximises_j_of_roc_curve(scored):
    positive, probability = scored
    threshold, note = choose_threshold(positive, probability, "youden")
    fpr, tpr, thresholds = roc_curve(positive, probability)
    assert note is None
    assert threshold == pytest.approx(thresholds[np.argmax(tpr - fpr)])
    rates = rates_at_threshold(positive, probability, threshold, np.arange(len(positive)), 0)
    assert rates["sensitivity"] + rates["specificity"] - 1 == pytest.approx(np.max(tpr - fpr))


def test_target_sensitivity_is_met_with_the_highest_threshold(scored):
    positive, probability = scored
    threshold, _ = choose_threshold(positive, probability, "target_sensitivity:0.9")
    assert np.mean(probability[positive] >= threshold) >= 0.9
    higher = np.unique(probability[probability > threshold])
    assert not len(higher) or np.mean(probability[positive] >= higher[0]) < 0.9


def test_rates_at_threshold_equal_the_confusion_matrix(scored):
    positive, probability = scored
    rates = rates_at_threshold(positive, probability, 0.5, np.arange(len(positive)), 100, 0)
    tn, fp, fn, tp = confusion_matrix(positive, probability >= 0.5).ravel()
    assert rates["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert rates["specificity"] == pytest.approx(tn / (tn + fp))
    assert (
        rates["bootstrap"]["sensitivity"][0] <= rates["sensitivity"] <= rates["bootstrap"]["sensitivity"][1]
    )


def test_perfect_separation_gives_a_threshold_between_the_classes():
    positive = np.array([True] * 5 + [False] * 7)
    probability = np.where(positive, 0.9, 0.2)
    for rule in ("youden", "target_sensitivity:1"):
        threshold, _ = choose_threshold(positive, probability, rule)
        rates = rates_at_threshold(positive, probability, threshold, np.arange(12), 50, 0)
        assert (rates["sensitivity"], rates["specificity"]) == (1.0, 1.0)
    assert brier_score(positive, probability) == pytest.approx(brier_score_loss(positive, probability))


def test_one_class_present_falls_back_and_says_why():
    probability = np.array([0.2, 0.7, 0.9])
    threshold, note = choose_threshold(np.ones(3, bool), probability, "youden")
    assert threshold == 0.5 and "only positive" in note
    rates = rates_at_threshold(np.ones(3, bool), probability, 0.5, np.arange(3), 50, 0)
    assert rates["specificity"] is None and rates["bootstrap"]["specificity"] is None
    assert rates["sensitivity"] == pytest.approx(2 / 3)
    # every bin under-predicts an all-positive set, so the gaps add up to the mean shortfall
    assert expected_calibration_error(np.ones(3), probability) == pytest.approx(np.mean(1 - probability))


@pytest.mark.parametrize("rule", ["youden:1", "target_sensitivity", "target_sensitivity:0", "sens:0.9"])
def test_bad_rules_are_rejected_with_the_fix(rule):
    with pytest.raises(ValueError, match="target_sensitivity:S"):
        parse_rule(rule)


def test_majority_class_macro_f1_equals_scikit_learn():
    y_true = np.array([0] * 3 + [1] * 7 + [2] * 2)
    expected = f1_score(y_true, np.ones_like(y_true), average="macro", labels=[0, 1, 2], zero_division=0)
    assert majority_class_macro_f1(y_true, 3) == pytest.approx(expected)


def test_patient_intervals_reproduce_bootstrap_intervals():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 2, 60), rng.integers(0, 2, 60)
    patients = rng.integers(0, 25, 60).astype(str)
    ours = patient_intervals(
        lambda rows: {"accuracy": float(np.mean(y_true[rows] == y_pred[rows]))}, patients, 100, 3
    )
    assert ours["accuracy"] == bootstrap_intervals(y_true, y_pred, patients, CLASSES, 100, 3)["accuracy"]


def test_age_bands_and_missing_attributes():
    bands = age_bands(np.array([5.0, 18.0, 39.9, 64.0, 85.0, np.nan]))
    assert bands.tolist() == ["0-17", "18-39", "18-39", "60-79", "80+", "unknown"]
    columns, missing = group_columns({"source": np.array(["a"]), "age": np.array([30.0])})
    assert list(columns) == ["source", "age_band"] and missing == ["sex", "view"]


def test_tiny_subgroups_are_listed_as_too_small_and_large_ones_scored(scored):
    positive, probability = scored
    n = len(positive)
    data = {
        "patient_id": np.arange(n).astype(str),
        "source": np.where(np.arange(n) < 4, "tiny", "big"),
    }
    report = subgroup_report(
        data,
        np.where(positive, 0, 1),
        np.column_stack([probability, 1 - probability]),
        CLASSES,
        "COVID-19",
        0.5,
        50,
    )
    tiny, big = report["attributes"]["source"]["tiny"], report["attributes"]["source"]["big"]
    assert tiny["too_small"] and tiny["images"] == 4 and "macro_f1" not in tiny
    assert not big["too_small"] and big["bootstrap"]["macro_f1"] is not None
    assert report["missing"] == ["sex", "age_band", "view"]


def test_probe_finds_a_source_the_features_carry_and_not_one_they_lack():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(40), 2).astype(str)
    sources = np.where(np.repeat(np.arange(40), 2) < 20, "cohen", "nih")
    carrying = rng.normal(size=(80, 4)) + (sources == "nih")[:, None] * 3.0
    blind = rng.normal(size=(80, 4))
    assert probe_class(carrying, sources, patients)["balanced_accuracy"] > 0.9
    assert probe_class(blind, sources, patients)["balanced_accuracy"] < 0.75
    assert "one source" in probe_class(blind, np.full(80, "nih"), patients)["skipped"]
