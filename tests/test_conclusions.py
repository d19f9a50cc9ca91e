"""The one rule from evidence to sentences: the cases where argmax accuracy and ranking disagree, seeds that
disagree, one-class and small sets. Rows are written by hand in the shape ``summary_rows`` gives."""

from __future__ import annotations

from jobs.evaluation import conclusions
from jobs.evaluation.conclusions import across_seeds, images_needed, limitations, shortcut_verdict


def _row(kind: str, f1_ci, auc=None, auc_ci=None, name=None, images=70, **extra) -> dict:
    return {
        "set": name or kind,
        "kind": kind,
        "images": images,
        "patients": images,
        "macro_f1": 0.6,
        "macro_f1_ci": f1_ci,
        "majority_class_macro_f1": 0.42,
        "roc_auc": auc,
        "roc_auc_ci": auc_ci,
        **extra,
    }


INTERNAL = _row("internal", [0.70, 0.91], 0.93, [0.87, 0.98], name="test split")
# The small_cnn case of the demo: at the threshold every image is "not COVID" (macro F1 at the bar), yet the
# scores still rank COVID-19 first.
HIDDEN_RANKS = _row("lungs hidden", [0.40, 0.55], 0.88, [0.80, 0.95])
HIDDEN_CHANCE = _row("lungs hidden", [0.35, 0.50], 0.55, [0.42, 0.68])


def test_high_auc_at_chance_accuracy_is_signal_outside_the_lungs_never_a_fall_to_chance():
    verdict = shortcut_verdict([INTERNAL, HIDDEN_RANKS])
    assert verdict["level"] == "shortcut"
    assert "outside the lungs" in verdict["text"] and "chance" not in verdict["text"]
    assert "0.88 [0.80, 0.95]" in verdict["text"]  # the figure the sentence rests on, as the table shows it


def test_a_lungs_hidden_interval_around_half_credits_the_lungs():
    verdict = shortcut_verdict([INTERNAL, HIDDEN_CHANCE])
    assert verdict["level"] == "lungs" and "falls to chance" in verdict["text"]


def test_a_macro_f1_above_the_bar_with_the_lungs_hidden_is_signal_outside_whatever_the_auc_says():
    hidden = _row("lungs hidden", [0.55, 0.80], 0.6, [0.45, 0.75])
    assert shortcut_verdict([INTERNAL, hidden])["level"] == "shortcut"


def test_a_model_that_does_not_beat_the_bar_internally_gets_no_verdict_on_what_it_reads():
    weak = _row("internal", [0.35, 0.60], 0.6, [0.45, 0.75], name="test split")
    verdict = shortcut_verdict([weak, HIDDEN_RANKS])
    assert verdict["level"] == "inconclusive" and "does not clearly beat" in verdict["text"]


def test_a_within_source_interval_that_contains_chance_cannot_tell_disease_from_source():
    within = _row("within-source", [0.34, 0.64], 0.72, [0.48, 0.90], name="cohen-pneumonia", images=400)
    sentences = " ".join(f.text for f in conclusions.read_run([INTERNAL, HIDDEN_CHANCE, within]))
    assert "cannot tell disease from source on cohen-pneumonia" in sentences
    assert "separates" not in sentences


def test_a_set_too_small_to_exclude_chance_says_how_many_images_it_needs_instead_of_a_verdict():
    # half-width 0.21 on 66 images; at AUC 0.75 it must shrink to 0.25 ... it already does: not too small
    assert images_needed(_row("within-source", None, 0.7, [0.49, 0.91], images=66)) == 47
    small = _row("within-source", None, 0.65, [0.30, 0.95], name="tiny", images=20)
    # half-width 0.325 -> (0.325 / 0.25)^2 x 20 = 33.8 -> 34 images
    assert images_needed(small) == 34
    finding = conclusions.read_run([small])[0]
    assert finding.claim == "tiny:too-small" and "about 34 images" in finding.text
    assert "cannot tell" not in finding.text


def test_a_one_class_set_is_read_by_its_sensitivity():
    one_class = _row("external", [0.45, 0.5], name="hannover", classes_present=1, sensitivity=0.885)
    finding = conclusions.read_run([one_class])[0]
    assert finding.claim == "hannover:one-class" and "finds 0.89 of the hannover images" in finding.text


def test_a_claim_all_seeds_support_is_stated_once():
    sentences = across_seeds("m", [[INTERNAL, HIDDEN_RANKS]] * 3, [1, 2, 3])
    assert len(sentences) == 2 and all("every seed" in s for s in sentences)


def test_seeds_that_disagree_are_said_to_disagree_and_no_claim_is_drawn():
    per_seed = [[INTERNAL, HIDDEN_RANKS], [INTERNAL, HIDDEN_CHANCE], [INTERNAL, HIDDEN_CHANCE]]
    sentences = across_seeds("m", per_seed, [1, 2, 3])
    outside = next(s for s in sentences if "outside the lungs" in s)
    chance = next(s for s in sentences if "falls to chance" in s)
    assert "the seeds disagree. With seed 1 (1 of 3) it still separates" in outside
    assert "the seeds disagree. With seeds 2 and 3 (2 of 3) it falls to chance" in chance  # 2/3 < 80%
    assert all("no conclusion" in s for s in (outside, chance))


def test_four_of_five_seeds_carry_a_claim():
    per_seed = [[INTERNAL, HIDDEN_RANKS]] * 4 + [[INTERNAL, HIDDEN_CHANCE]]
    sentences = across_seeds("m", per_seed, [1, 2, 3, 4, 5])
    assert any("4 of 5 seeds" in s and "outside the lungs" in s for s in sentences)


def test_the_model_card_lists_what_the_verdict_found():
    notes = limitations([INTERNAL, HIDDEN_RANKS])
    assert len(notes) == 1 and "outside the lungs" in notes[0]
    assert limitations([INTERNAL, HIDDEN_CHANCE]) == []


def test_a_sentence_across_seeds_quotes_the_median_seed_the_table_shows():
    def hidden(auc):
        return _row("lungs hidden", [0.40, 0.55], auc, [auc - 0.08, min(auc + 0.07, 1.0)])

    per_seed = [[INTERNAL, hidden(0.80)], [INTERNAL, hidden(0.95)], [INTERNAL, hidden(0.88)]]
    (_, outside) = across_seeds("m", per_seed, [1, 2, 3])
    assert "ROC AUC 0.88 [0.80, 0.95]" in outside and "figures of seed 3, the median" in outside
