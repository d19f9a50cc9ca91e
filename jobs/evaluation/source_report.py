"""The report's answer to "how much of the accuracy is the disease?": internal vs external vs within-source
vs lungs-hidden results side by side, one generated sentence per model, and the calibration, subgroup,
source-probe and model-card sections. Reads only ``metrics.json`` content.
"""

from __future__ import annotations

import json
from pathlib import Path

from jobs.evaluation.html_parts import esc, num, table, with_ci

# What an extra test set is: from elsewhere (another hospital or collection), or classes that share one
# source, so the source cannot tell them apart. The experiment may say it (``ExternalTest.kind``).
SET_KINDS = ("external", "within-source")


def set_kind(metrics: dict) -> str:
    """The kind the experiment gave the set; else ``within-source`` when it has two or more classes that
    all come from one source, and ``external`` otherwise (a one-class set from another hospital)."""
    if metrics.get("kind") in SET_KINDS:
        return metrics["kind"]
    sources_by_class = metrics.get("sources_by_class") or {}
    sources = {s for names in sources_by_class.values() for s in names}
    return "within-source" if len(sources_by_class) >= 2 and len(sources) == 1 else "external"


def _row(name: str, kind: str, m: dict, positive: str, bar: float | None) -> dict:
    at = m.get("at_threshold") or {}
    calibration = ((m.get("calibration") or {}).get("classes") or {}).get(positive) or {}
    return {
        "set": name,
        "kind": kind,
        # sets only: the lungs-hidden metrics are the test split's images, and carry no class list
        "classes_present": len(m["sources_by_class"]) if "sources_by_class" in m else None,
        "images": m["images"],
        "patients": m["patients"],
        "macro_f1": m["report"]["macro avg"]["f1-score"],
        "macro_f1_ci": (m.get("bootstrap") or {}).get("macro_f1"),
        "majority_class_macro_f1": m.get("majority_class_macro_f1", bar),
        "roc_auc": (m.get("roc_auc") or {}).get(positive),
        "roc_auc_ci": (m.get("bootstrap") or {}).get(f"roc_auc:{positive}"),
        "sensitivity": at.get("sensitivity"),
        "sensitivity_ci": (at.get("bootstrap") or {}).get("sensitivity"),
        "specificity": at.get("specificity"),
        "specificity_ci": (at.get("bootstrap") or {}).get("specificity"),
        "ece": calibration.get("ece"),
        "ece_ci": (calibration.get("bootstrap") or {}).get("ece"),
    }


def summary_rows(ev: dict) -> list[dict]:
    """One row per evaluated set: the internal split, the same with the lungs hidden, each external set."""
    positive = (ev.get("operating_point") or {}).get("positive_class", "COVID-19")
    test = ev["test"]
    rows = [_row(f"{ev.get('split', 'test')} split", "internal", test, positive, None)]
    hidden = (test.get("audit") or {}).get("lungs_hidden")
    if hidden:
        rows.append(
            _row(
                "test split, lungs hidden",
                "lungs hidden",
                hidden,
                positive,
                test.get("majority_class_macro_f1"),
            )
        )
    rows += [_row(name, set_kind(m), m, positive, None) for name, m in (ev.get("external") or {}).items()]
    return rows


def summary_section(models: list[dict]) -> str:
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
            f"<b>{esc(m['label'])}</b>",
            esc(r["set"]),
            esc(r["kind"]),
            f"{r['images']} ({r['patients']})",
            with_ci(r["macro_f1"], r["macro_f1_ci"]),
            num(r["majority_class_macro_f1"]),
            num(r["roc_auc"]),
            with_ci(r["sensitivity"], r["sensitivity_ci"]),
            with_ci(r["specificity"], r["specificity_ci"]),
            with_ci(r["ece"], r["ece_ci"]),
        ]
        for m in models
        for r in m["disease_summary"]
    ]
    sentences = "".join(f"<li>{esc(sentence)}</li>" for m in models for sentence in m["findings"])
    return (
        "<p>Every row uses the same model and the same threshold (chosen on the validation split). "
        "A result counts only when its interval clears always answering the set's most common class. "
        "Lungs hidden scoring well means the model reads something other than the lungs.</p>"
        + table(head, rows, left=3)
        + f"<ul>{sentences}</ul>"
    )


def calibration_section(models: list[dict], evaluations: dict[Path, dict], image) -> str:
    """Per model: the threshold and its rule, then per set and class Brier and ECE with intervals."""
    parts = []
    for m, (folder, ev) in zip(models, evaluations.items(), strict=True):
        point = ev.get("operating_point") or {}
        note = f" <span class='warn'>{esc(point['note'])}</span>" if point.get("note") else ""
        rows = []
        for name, metrics in [("test split", ev["test"]), *(ev.get("external") or {}).items()]:
            for cls, c in ((metrics.get("calibration") or {}).get("classes") or {}).items():
                boot = c.get("bootstrap") or {}
                rows.append(
                    [
                        esc(name),
                        esc(cls),
                        with_ci(c["brier"], boot.get("brier")),
                        with_ci(c["ece"], boot.get("ece")),
                    ]
                )
        parts.append(
            f"<h3>{esc(m['label'])}</h3><p>Operating threshold on P({esc(point.get('positive_class'))}): "
            f"<b>{num(point.get('threshold'), 3)}</b>, rule <code>{esc(point.get('rule'))}</code> on the "
            f"{esc(point.get('chosen_on'))} split ({(point.get('validation') or {}).get('images')} images), "
            f"stored in <code>operating_point.json</code>.{note}</p>"
            + table(["set", "class", "Brier score [95% CI]", "ECE [95% CI]"], rows, left=2)
            + image(folder, (ev.get("files") or {}).get("reliability"), f"{m['label']} reliability diagram")
        )
    return "".join(parts)


def subgroups_section(models: list[dict]) -> str:
    parts = []
    for m in models:
        sub = m.get("subgroups") or {}
        rows = []
        for attribute, groups in (sub.get("attributes") or {}).items():
            for value, g in groups.items():
                counts = f"{g['images']} ({g['patients']})"
                classes = ", ".join(g["classes_present"])
                if g["too_small"]:
                    rows.append([esc(attribute), esc(value), counts, esc(classes), "too small", "", "", ""])
                    continue
                at = g["at_threshold"]
                rows.append(
                    [
                        esc(attribute),
                        esc(value),
                        counts,
                        esc(classes),
                        with_ci(g["macro_f1"], (g.get("bootstrap") or {}).get("macro_f1")),
                        num(g["roc_auc"]),
                        with_ci(at["sensitivity"], (at.get("bootstrap") or {}).get("sensitivity")),
                        with_ci(at["specificity"], (at.get("bootstrap") or {}).get("specificity")),
                    ]
                )
        missing = sub.get("missing") or []
        parts.append(
            f"<h3>{esc(m['label'])} (test split)</h3>"
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
            + f"<p class='muted'>Groups under {sub.get('min_patients')} patients are listed as too small. "
            + (f"Not in the dataset rows, so not checked: {esc(', '.join(missing))}." if missing else "")
            + "</p>"
        )
    return "".join(parts)


def probe_section(models: list[dict]) -> str:
    rows = []
    for m in models:
        for cls, p in ((m.get("source_probe") or {}).get("classes") or {}).items():
            patients = ", ".join(f"{s}: {n}" for s, n in p["patients_by_source"].items())
            if "skipped" in p:
                rows.append(
                    [esc(m["label"]), esc(cls), esc(patients), f"not run: {esc(p['skipped'])}", "", ""]
                )
            else:
                rows.append(
                    [
                        esc(m["label"]),
                        esc(cls),
                        esc(patients),
                        num(p["balanced_accuracy"]),
                        num(p["chance"]),
                        num(p["roc_auc"]),
                    ]
                )
    return (
        "<p>Within one class the disease is fixed; a linear model on the network's penultimate features that "
        "still tells the sources apart (cross-validated by patient) shows the features carry the source.</p>"
        + table(
            ["model", "class", "patients by source", "balanced accuracy", "chance", "ROC AUC"], rows, left=3
        )
    )


def model_cards_section(models: list[dict]) -> str:
    return "".join(
        f"<h3>{esc(m['label'])}</h3><p>{esc((m.get('model_card') or {}).get('intended_use'))}</p><ul>"
        + "".join(
            f"<li>{esc(note)}</li>" for note in (m.get("model_card") or {}).get("known_limitations", [])
        )
        + f"</ul><pre>{esc(json.dumps(m.get('model_card'), indent=1))}</pre>"
        for m in models
    )
