"""The report's answer to "how much of the accuracy is the disease?": internal vs external vs within-source
vs lungs-hidden results side by side, one generated sentence per model, and the calibration, subgroup,
source-probe and model-card sections. Reads only ``metrics.json`` content.
"""

from __future__ import annotations

import json
from pathlib import Path

from jobs.contracts.results import Evaluation, SetMetrics
from jobs.contracts.results.metrics import Subgroup
from jobs.contracts.results.report import RunSummary
from jobs.evaluation.html_parts import esc, num, table, with_ci

# What an extra test set is: from elsewhere (another hospital or collection), or classes that share one
# source, so the source cannot tell them apart. The experiment may say it (``ExternalTest.kind``).
SET_KINDS = ("external", "within-source")


def set_kind(kind: str | None, sources_by_class: dict[str, list[str]] | None) -> str:
    """The kind the experiment gave the set; else ``within-source`` when it has two or more classes that
    all come from one source, and ``external`` otherwise (a one-class set from another hospital)."""
    if kind in SET_KINDS:
        return kind
    sources_by_class = sources_by_class or {}
    sources = {s for names in sources_by_class.values() for s in names}
    return "within-source" if len(sources_by_class) >= 2 and len(sources) == 1 else "external"


def _row(name: str, kind: str, m: SetMetrics, positive: str, bar: float | None) -> dict:
    at = m.at_threshold
    calibration = m.calibration.classes.get(positive) if m.calibration else None
    return {
        "set": name,
        "kind": kind,
        # sets only: the lungs-hidden metrics are the test split's images, and carry no class list
        "classes_present": None if m.sources_by_class is None else len(m.sources_by_class),
        "images": m.images,
        "patients": m.patients,
        "macro_f1": m.macro_f1,
        "macro_f1_ci": m.bootstrap.ci("macro_f1"),
        "majority_class_macro_f1": bar if m.majority_class_macro_f1 is None else m.majority_class_macro_f1,
        "roc_auc": m.roc_auc.get(positive),
        "roc_auc_ci": m.bootstrap.ci(f"roc_auc:{positive}"),
        "sensitivity": at.sensitivity if at else None,
        "sensitivity_ci": at.bootstrap.ci("sensitivity") if at else None,
        "specificity": at.specificity if at else None,
        "specificity_ci": at.bootstrap.ci("specificity") if at else None,
        "ece": calibration.ece if calibration else None,
        "ece_ci": calibration.bootstrap.ci("ece") if calibration else None,
    }


def summary_rows(ev: Evaluation) -> list[dict]:
    """One row per evaluated set: the internal split, the same with the lungs hidden, each external set."""
    positive = ev.operating_point.positive_class
    test = ev.test
    rows = [_row(f"{ev.split} split", "internal", test, positive, None)]
    if test.audit:
        hidden = test.audit.lungs_hidden
        rows.append(
            _row("test split, lungs hidden", "lungs hidden", hidden, positive, test.majority_class_macro_f1)
        )
    rows += [
        _row(name, set_kind(m.kind, m.sources_by_class), m, positive, None) for name, m in ev.external.items()
    ]
    return rows


def summary_section(models: list[RunSummary]) -> str:
    head = [
        "model",
        "set",
        "kind",
        "images (patients)",
        "macro F1 [95% CI]",
        "majority-class macro F1",
        "COVID-19 ROC AUC",
        "sensitivity at threshold [CI]",
        "specificity at threshold [CI]",
        "COVID-19 ECE [CI]",
    ]
    rows = [
        [
            f"<b>{esc(m.label)}</b>",
            esc(r.set),
            esc(r.kind),
            f"{r.images} ({r.patients})",
            with_ci(r.macro_f1, r.macro_f1_ci),
            num(r.majority_class_macro_f1),
            num(r.roc_auc),
            with_ci(r.sensitivity, r.sensitivity_ci),
            with_ci(r.specificity, r.specificity_ci),
            with_ci(r.ece, r.ece_ci),
        ]
        for m in models
        for r in m.disease_summary
    ]
    sentences = "".join(f"<li>{esc(sentence)}</li>" for m in models for sentence in m.findings)
    return (
        "<p>Every row uses the same model and the same threshold (chosen on the validation split). "
        "A result counts only when its interval clears always answering the set's most common class. "
        "Lungs hidden scoring well means the model reads something other than the lungs.</p>"
        + table(head, rows, left=3)
        + f"<ul>{sentences}</ul>"
    )


def calibration_section(models: list[RunSummary], evaluations: dict[Path, Evaluation], image) -> str:
    """Per model: the threshold and its rule, then per set and class Brier and ECE with intervals."""
    parts = []
    for m, (folder, ev) in zip(models, evaluations.items(), strict=True):
        point = ev.operating_point
        note = f" <span class='warn'>{esc(point.note)}</span>" if point.note else ""
        rows = [
            [
                esc(name),
                esc(cls),
                with_ci(c.brier, c.bootstrap.ci("brier")),
                with_ci(c.ece, c.bootstrap.ci("ece")),
            ]
            for name, metrics in [("test split", ev.test), *ev.external.items()]
            for cls, c in (metrics.calibration.classes if metrics.calibration else {}).items()
        ]
        parts.append(
            f"<h3>{esc(m.label)}</h3><p>Operating threshold on P({esc(point.positive_class)}): "
            f"<b>{num(point.threshold, 3)}</b>, rule <code>{esc(point.rule)}</code> on the "
            f"{esc(point.chosen_on)} split ({point.validation.images} images), "
            f"stored in <code>operating_point.json</code>.{note}</p>"
            + table(["set", "class", "Brier score [95% CI]", "ECE [95% CI]"], rows, left=2)
            + image(folder, ev.files.get("reliability"), f"{m.label} reliability diagram")
        )
    return "".join(parts)


def _subgroup_row(attribute: str, value: str, g: Subgroup) -> list[str]:
    counts = f"{g.images} ({g.patients})"
    head = [esc(attribute), esc(value), counts, esc(", ".join(g.classes_present))]
    if g.too_small or g.at_threshold is None or g.bootstrap is None:
        return [*head, "too small", "", "", ""]
    at = g.at_threshold
    return [
        *head,
        with_ci(g.macro_f1, g.bootstrap.ci("macro_f1")),
        num(g.roc_auc),
        with_ci(at.sensitivity, at.bootstrap.ci("sensitivity")),
        with_ci(at.specificity, at.bootstrap.ci("specificity")),
    ]


def subgroups_section(models: list[RunSummary]) -> str:
    parts = []
    for m in models:
        sub = m.subgroups
        rows = [
            _subgroup_row(attribute, value, g)
            for attribute, groups in (sub.attributes if sub else {}).items()
            for value, g in groups.items()
        ]
        missing = sub.missing if sub else []
        parts.append(
            f"<h3>{esc(m.label)} (test split)</h3>"
            + table(
                [
                    "attribute",
                    "group",
                    "images (patients)",
                    "classes present",
                    "macro F1 [CI]",
                    "COVID-19 ROC AUC",
                    "sensitivity [CI]",
                    "specificity [CI]",
                ],
                rows,
                left=4,
            )
            + f"<p class='muted'>Groups under {sub.min_patients if sub else None} patients are listed as too small. "
            + (f"Not in the dataset rows, so not checked: {esc(', '.join(missing))}." if missing else "")
            + "</p>"
        )
    return "".join(parts)


def probe_section(models: list[RunSummary]) -> str:
    rows = []
    for m in models:
        for cls, p in (m.source_probe.classes if m.source_probe else {}).items():
            patients = ", ".join(f"{s}: {n}" for s, n in p.patients_by_source.items())
            if p.skipped is not None:
                rows.append([esc(m.label), esc(cls), esc(patients), f"not run: {esc(p.skipped)}", "", ""])
            else:
                rows.append(
                    [
                        esc(m.label),
                        esc(cls),
                        esc(patients),
                        num(p.balanced_accuracy),
                        num(p.chance),
                        num(p.roc_auc),
                    ]
                )
    return (
        "<p>Within one class the disease is fixed; a linear model on the network's penultimate features that "
        "still tells the sources apart (cross-validated by patient) shows the features carry the source.</p>"
        + table(
            ["model", "class", "patients by source", "balanced accuracy", "chance", "ROC AUC"], rows, left=3
        )
    )


def model_cards_section(models: list[RunSummary]) -> str:
    parts = []
    for m in models:
        card = m.model_card
        notes = "".join(f"<li>{esc(note)}</li>" for note in (card.known_limitations if card else []))
        parts.append(
            f"<h3>{esc(m.label)}</h3><p>{esc(card.intended_use if card else None)}</p><ul>{notes}</ul>"
            f"<pre>{esc(json.dumps(card.dump() if card else None, indent=1))}</pre>"
        )
    return "".join(parts)
