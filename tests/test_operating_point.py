"""The operating point: argmax without one, the threshold with one, and the file round trip."""

import numpy as np
import pytest

from jobs.contracts.operating_point import OperatingPoint, decide, load_operating_point, save_operating_point

MULTICLASS = ("COVID-19", "Normal", "Pneumonia")


def test_without_point_is_argmax():
    probabilities = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    assert decide(probabilities, MULTICLASS, None).tolist() == [1, 0]


def test_threshold_below_argmax_calls_positive_and_otherwise_best_other_class():
    point = OperatingPoint(rule="youden", threshold=0.25, class_names=MULTICLASS)
    probabilities = np.array([[0.3, 0.4, 0.3], [0.2, 0.3, 0.5], [0.25, 0.5, 0.25]])
    assert decide(probabilities, MULTICLASS, point).tolist() == [0, 2, 0]


def test_round_trip_and_missing_file(tmp_path):
    assert load_operating_point(tmp_path) is None
    point = OperatingPoint(rule="sensitivity>=0.95", threshold=0.7, class_names=("COVID-19", "Non-COVID"))
    save_operating_point(point, tmp_path)
    assert load_operating_point(tmp_path) == point


def test_class_mismatch_and_bad_threshold_are_refused():
    with pytest.raises(ValueError, match="not a probability"):
        OperatingPoint(rule="x", threshold=1.5, class_names=MULTICLASS)
    point = OperatingPoint(rule="x", threshold=0.5, class_names=MULTICLASS)
    with pytest.raises(ValueError, match="operating point is for classes"):
        decide(np.zeros((1, 2)), ("COVID-19", "Non-COVID"), point)
