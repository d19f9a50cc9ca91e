"""The one rule that turns evidence into sentences: the report's reading of each model, the shortcut
audit's verdict and the model card's limitations all come from here, so none can contradict another or a
number the report shows.

Evidence is a set's row (``source_report.summary_rows``): threshold-free (ROC AUC of the positive class
with its patient-bootstrap interval) and thresholded (macro F1 against always answering the majority
class). Scores that still rank the positive class first with the lungs hidden mean signal outside the
lungs, whatever the arg-max accuracy. An interval that contains chance means the set cannot tell; a set
too small for its interval to exclude chance at a moderate effect says so, with how many images it would
take, instead of a verdict. Across seeds a claim is stated only when at least ``AGREEMENT`` of the seeds
support it; otherwise the sentence says the seeds disagree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from jobs.evaluation.html_parts import num

CHANCE_AUC = 0.5
# The smallest effect worth detecting: a set whose interval could not exclude chance at this AUC is "too
# small" rather than evidence of no signal.
PLAUSIBLE_AUC = 0.75
AGREEMENT = 0.8  # the share of seeds that must support a claim before the report states it


@dataclass(frozen=True)
class Finding:
    """One claim about one model and seed: ``claim`` names it (the same across seeds), ``text`` says it
    with the figures it rests on."""

    claim: str
    text: str


def _interval(row: dict, key: str) -> list[float] | None:
    ci = row.get(f"{key}_ci")
    return ci if ci and None not in ci else None


def auc_state(row: dict) -> str | None:
    """``above``/``below`` chance when the AUC interval excludes 0.5, ``chance`` when it contains it."""
    ci = _interval(row, "roc_auc")
    if ci is None:
        return None
    return "above" if ci[0] > CHANCE_AUC else "below" if ci[1] < CHANCE_AUC else "chance"


def beats_bar(row: dict) -> bool | None:
    """The macro F1 interval lies above always answering the majority class; None without an interval or
    for a one-class set, whose macro F1 can never exceed that bar."""
    ci, bar = _interval(row, "macro_f1"), row.get("majority_class_macro_f1")
    if ci is None or bar is None or row.get("classes_present") == 1:
        return None
    return ci[0] > bar


def images_needed(row: dict, effect: float = PLAUSIBLE_AUC) -> int | None:
    """Images for the AUC interval to exclude chance at ``effect``, scaling this set's interval width as
    1/sqrt(n); None without an interval."""
    ci = _interval(row, "roc_auc")
    if ci is None:
        return None
    half_width = (ci[1] - ci[0]) / 2
    return math.ceil(row["images"] * (half_width / (effect - CHANCE_AUC)) ** 2)


def _auc_text(row: dict) -> str:
    ci = _interval(row, "roc_auc")
    return f"ROC AUC {num(row.get('roc_auc'))}" + (f" [{num(ci[0])}, {num(ci[1])}]" if ci else "")


def _f1_text(row: dict) -> str:
    ci = _interval(row, "macro_f1")
    interval = f" [{num(ci[0])}, {num(ci[1])}]" if ci else ""
    return f"macro F1 {num(row['macro_f1'])}{interval} against {num(row.get('majority_class_macro_f1'))}"


def read_run(rows: Sequence[dict]) -> list[Finding]:
    """What one model's evaluation (one seed) supports, set by set."""
    findings: list[Finding] = []
    for row in rows:
        findings += _read_set(row)
    return findings


def _read_set(row: dict) -> list[Finding]:
    kind, name, auc, bar = row["kind"], row["set"], auc_state(row), beats_bar(row)
    if kind == "internal":
        if bar:
            return [
                Finding("internal:beats", f"beats the majority-class bar on its {name} ({_f1_text(row)})")
            ]
        return [Finding("internal:not", f"does not clearly beat the bar on its {name} ({_f1_text(row)})")]
    if kind == "lungs hidden":
        if auc == "above" or bar:
            return [
                Finding(
                    "lungs:signal-outside",
                    "still separates the classes with the lungs hidden "
                    f"({_auc_text(row)}; {_f1_text(row)}): part of what it learnt lies outside the lungs",
                )
            ]
        if auc in ("chance", "below"):
            return [
                Finding(
                    "lungs:chance",
                    f"falls to chance with the lungs hidden ({_auc_text(row)}; {_f1_text(row)}): its "
                    "decisions depend on the lung region",
                )
            ]
        return []
    if row.get("classes_present") == 1:
        return [
            Finding(
                f"{name}:one-class",
                f"finds {num(row.get('sensitivity'))} of the {name} images at the stored threshold "
                f"(one class: read by its sensitivity)",
            )
        ]
    where = "within the source" if kind == "within-source" else "outside the training sources"
    if auc == "above":
        return [Finding(f"{name}:separates", f"separates the classes {where} on {name} ({_auc_text(row)})")]
    if auc == "below":
        return [
            Finding(f"{name}:reversed", f"ranks the classes the wrong way round on {name} ({_auc_text(row)})")
        ]
    if auc == "chance":
        needed = images_needed(row)
        if needed is not None and needed > row["images"]:
            return [
                Finding(
                    f"{name}:too-small",
                    f"{name} is too small to tell ({_auc_text(row)} on {row['images']} images): to exclude "
                    f"chance at ROC AUC {num(PLAUSIBLE_AUC)} it would take about {needed} images",
                )
            ]
        what = "disease from source" if kind == "within-source" else "the classes there"
        return [Finding(f"{name}:chance", f"cannot tell {what} on {name} ({_auc_text(row)})")]
    return []


def shortcut_verdict(rows: Sequence[dict]) -> dict:
    """The shortcut audit's level and sentence for one evaluation, from the same findings as the report."""
    claims = {f.claim: f for f in read_run(rows)}
    internal = next(f for f in claims.values() if f.claim.startswith("internal:"))
    if internal.claim == "internal:not":
        level, finding = "inconclusive", internal
    elif "lungs:signal-outside" in claims:
        level, finding = "shortcut", claims["lungs:signal-outside"]
    elif "lungs:chance" in claims:
        level, finding = "lungs", claims["lungs:chance"]
    else:
        level, finding = "inconclusive", internal
    explanation = {
        "shortcut": "Do not read its whole-image figures as a measure of finding disease.",
        "lungs": "This does not rule out other confounders inside the lungs.",
        "inconclusive": "Hiding parts of the image says little about what it reads.",
    }[level]
    return {"level": level, "text": f"The model {finding.text}. {explanation}"}


def limitations(rows: Sequence[dict]) -> list[str]:
    """The model card's limitations that the evaluation's evidence supports."""
    notes = []
    for finding in read_run(rows):
        set_level = not finding.claim.startswith(("internal:", "lungs:"))
        if finding.claim == "lungs:signal-outside" or (
            set_level and finding.claim.endswith((":chance", ":reversed"))
        ):
            notes.append(f"The model {finding.text}.")
        elif finding.claim.endswith(":too-small"):
            notes.append(f"{finding.text[0].upper()}{finding.text[1:]}.")
    return notes


def key_figure(claim: str, rows: Sequence[dict]) -> float | None:
    """The figure a claim turns on, in one seed's rows: macro F1 for the internal split, sensitivity for a
    one-class set, ROC AUC otherwise (the lungs-hidden row for the ``lungs:`` claims)."""
    where, _, what = claim.partition(":")
    by_kind = {row["kind"]: row for row in rows}
    by_set = {row["set"]: row for row in rows}
    if where == "internal":
        return by_kind["internal"].get("macro_f1")
    if where == "lungs":
        return by_kind["lungs hidden"].get("roc_auc")
    return by_set[where].get("sensitivity" if what == "one-class" else "roc_auc")


def across_seeds(model: str, per_seed: Sequence[Sequence[dict]], seeds: Sequence[int]) -> list[str]:
    """The report's sentences for one model: each claim that enough seeds support, said once with the
    spread of its figures; a claim some but too few seeds support is said to divide them."""
    readings = [read_run(rows) for rows in per_seed]
    order: list[str] = []
    for findings in readings:
        order += [f.claim for f in findings if f.claim not in order]
    sentences = []
    total = len(readings)
    for claim in order:
        holding = [
            (key_figure(claim, rows), seed, f)
            for seed, rows, findings in zip(seeds, per_seed, readings, strict=True)
            for f in findings
            if f.claim == claim
        ]
        holding.sort(key=lambda item: (item[0] is None, item[0] or 0.0))
        share = len(holding) / total
        _, seed, finding = holding[(len(holding) - 1) // 2]  # the median seed (lower middle of an even count)
        if share >= AGREEMENT:
            if total == 1:
                note = f"one seed only ({seed}): no spread to judge it by"
            elif len(holding) == total:
                note = f"every seed; figures of seed {seed}, the median"
            else:
                note = f"{len(holding)} of {total} seeds; figures of seed {seed}, the median of those"
            sentences.append(f"{model} {finding.text} ({note}).")
        else:
            which = " and ".join(str(seed) for seed in sorted(seed for _, seed, _ in holding))
            sentences.append(
                f"{model}: the seeds disagree. With seed{'s' if len(holding) > 1 else ''} {which} "
                f"({len(holding)} of {total}) it {finding.text}; no conclusion is drawn from that."
            )
    return sentences


def spread(values: Sequence[float | None]) -> dict:
    """Median and range of one figure over seeds (None where a seed has no value)."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "per_seed": list(values)}
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "per_seed": list(values),
    }
