"""The report's summary: set kinds from the data (the sentences: tests/test_conclusions.py)."""

from __future__ import annotations

from jobs.evaluation.source_report import set_kind


def test_a_set_is_within_source_when_two_classes_share_its_one_source_and_the_experiment_may_say_so():
    two_classes_one_source = {"COVID-19": ["cohen"], "Non-COVID": ["cohen"]}
    assert set_kind(None, two_classes_one_source) == "within-source"
    # a one-class set from another hospital is external, though it comes from one source
    assert set_kind(None, {"COVID-19": ["cohen"]}) == "external"
    assert set_kind(None, {"COVID-19": ["cohen"], "Non-COVID": ["cohen", "nih"]}) == "external"
    # what the experiment declares wins over the inference
    assert set_kind("external", two_classes_one_source) == "external"
    assert set_kind("within-source", {"COVID-19": ["padchest"]}) == "within-source"
