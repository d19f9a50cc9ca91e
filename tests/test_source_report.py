"""The report's summary: set kinds from the data, and the sentence on what survives."""

from __future__ import annotations

from jobs.evaluation.source_report import beats_majority, set_kind, survival_sentence


def _row(kind: str, ci: list[float] | None, auc: float = 0.5) -> dict:
    return {
        "set": kind,
        "kind": kind,
        "macro_f1": 0.7,
        "macro_f1_ci": ci,
        "majority_class_macro_f1": 0.4,
        "roc_auc": auc,
    }


def test_a_set_is_within_source_when_two_classes_share_its_one_source_and_the_experiment_may_say_so():
    two_classes_one_source = {"sources_by_class": {"COVID-19": ["cohen"], "Non-COVID": ["cohen"]}}
    assert set_kind(two_classes_one_source) == "within-source"
    # a one-class set from another hospital is external, though it comes from one source
    assert set_kind({"sources_by_class": {"COVID-19": ["cohen"]}}) == "external"
    assert (
        set_kind({"sources_by_class": {"COVID-19": ["cohen"], "Non-COVID": ["cohen", "nih"]}}) == "external"
    )
    # what the experiment declares wins over the inference
    assert set_kind({**two_classes_one_source, "kind": "external"}) == "external"
    assert (
        set_kind({"sources_by_class": {"COVID-19": ["padchest"]}, "kind": "within-source"}) == "within-source"
    )


def test_the_sentence_follows_the_intervals():
    internal, hidden = _row("internal", [0.6, 0.8]), _row("lungs hidden", [0.3, 0.5])
    assert "does not clearly beat" in survival_sentence("m", [_row("internal", [0.35, 0.8]), hidden])
    assert "readable outside the lungs" in survival_sentence(
        "m", [internal, _row("lungs hidden", [0.5, 0.7])]
    )
    assert "still rank" in survival_sentence("m", [internal, _row("lungs hidden", [0.3, 0.5], auc=0.9)])
    assert "survives outside" in survival_sentence("m", [internal, hidden, _row("external", [0.5, 0.9])])
    assert "does not survive" in survival_sentence("m", [internal, hidden, _row("within-source", [0.2, 0.6])])
    assert "unconfirmed" in survival_sentence("m", [internal, hidden])


def test_a_one_class_set_is_judged_by_its_sensitivity_not_against_the_bar():
    """Its macro F1 cannot pass the bar (the absent class scores 0), so it neither passes nor fails."""
    internal, hidden = _row("internal", [0.6, 0.8]), _row("lungs hidden", [0.3, 0.5])
    one_class = {**_row("external", [0.45, 0.5]), "classes_present": 1, "sensitivity": 0.9}
    one_class["sensitivity_ci"] = [0.8, 1.0]
    assert beats_majority(one_class) is None
    sentence = survival_sentence("m", [internal, hidden, one_class])
    assert (
        "has one class only, so no bar applies (sensitivity at the threshold 0.90 [0.80, 1.00])" in sentence
    )
    assert "unconfirmed" in sentence
    within = {**_row("within-source", [0.5, 0.9]), "classes_present": 2}
    assert "survives outside" in survival_sentence("m", [internal, hidden, one_class, within])
