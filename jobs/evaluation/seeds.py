"""The report across seeds: each model's figures as the median and range over its seeds, beside the
median patient-bootstrap interval, and the sentences the seeds support (``jobs.evaluation.conclusions``).

One training run cannot carry a conclusion: the same seed on another CPU trains other weights
(``jobs.experiment.provenance``), so the spread over seeds is the scale against which a difference means something.
"""

from __future__ import annotations

import statistics
from collections import Counter

from jobs.contracts.results.report import Figure, ModelAcrossSeeds, RunSummary, SeedRow
from jobs.evaluation import conclusions
from jobs.evaluation.html_parts import esc, num, table

FIGURES = ("macro_f1", "roc_auc", "sensitivity", "specificity", "ece")
_SET_FIELDS = ("set", "kind", "images", "patients", "classes_present", "majority_class_macro_f1")


def _median_interval(intervals: list[list[float] | None]) -> list[float] | None:
    present = [ci for ci in intervals if ci and None not in ci]
    if not present:
        return None
    return [statistics.median(ci[0] for ci in present), statistics.median(ci[1] for ci in present)]


def _set_row(rows: list[dict]) -> dict:
    """One set's row over seeds (``rows``: that set's row of each seed)."""
    figures = {
        name: conclusions.spread([r.get(name) for r in rows])
        | {"ci_median": _median_interval([r.get(f"{name}_ci") for r in rows])}
        for name in FIGURES
    }
    return {field: rows[0].get(field) for field in _SET_FIELDS} | {"figures": figures}


def _verdict(levels: list[str | None]) -> dict:
    """The shortcut audit's level that enough seeds share, else ``seeds disagree``."""
    counts = Counter(level for level in levels if level)
    level, count = counts.most_common(1)[0] if counts else (None, 0)
    agreed = bool(levels) and count / len(levels) >= conclusions.AGREEMENT
    return {"level": level if agreed else "seeds disagree", "per_seed": levels}


def across_seeds_summary(runs: list[RunSummary]) -> list[dict]:
    """Per model, in the runs' order: its seeds, each set's figures over them, the sentences and the
    audit's level. ``runs``: the report's per-run summaries (``report.model_summary``)."""
    models: dict[str, list[RunSummary]] = {}
    for run in runs:
        models.setdefault(run.model, []).append(run)
    summary = []
    for model, mine in models.items():
        seeds = [run.seed for run in mine]
        per_seed = [[row.dump() for row in run.disease_summary] for run in mine]
        names = [row["set"] for row in per_seed[0]]
        rows = [_set_row([next(r for r in rows if r["set"] == name) for rows in per_seed]) for name in names]
        summary.append(
            {
                "model": model,
                "seeds": seeds,
                "rows": rows,
                "sentences": conclusions.across_seeds(model, per_seed, seeds),
                "audit": _verdict([run.audit.verdict.level if run.audit.verdict else None for run in mine]),
            }
        )
    return summary


def figure_text(figure: Figure) -> str:
    """``median (min–max) [median CI]`` of one figure over seeds; the range only when seeds differ."""
    if figure.median is None:
        return "–"
    text = num(figure.median)
    if figure.min != figure.max:
        text += f" ({num(figure.min)}–{num(figure.max)})"
    ci = figure.ci_median
    return text + (f" [{num(ci[0])}, {num(ci[1])}]" if ci else "")


def spread_text(row: SeedRow) -> str:
    """The seeds' spread (max − min) of macro F1 and ROC AUC on one set."""
    parts = []
    for name, label in (("macro_f1", "F1"), ("roc_auc", "AUC")):
        figure = row.figures[name]
        if figure.median is not None:
            parts.append(f"{label} {num(figure.max - figure.min)}")
    return ", ".join(parts) or "–"


HEAD = (
    "model (seeds)",
    "set",
    "kind",
    "images (patients)",
    "macro F1 median (range) [median CI]",
    "majority-class macro F1",
    "COVID-19 ROC AUC",
    "sensitivity at threshold",
    "specificity at threshold",
    "COVID-19 ECE",
    "seed spread (max − min)",
)


def table_rows(summary: list[ModelAcrossSeeds]) -> list[list[str]]:
    """The across-seeds table as text cells, one row per model and set (the HTML and the README's)."""
    return [
        [
            f"{m.model} ({', '.join(str(s) for s in m.seeds)})",
            r.set,
            r.kind,
            f"{r.images} ({r.patients})",
            figure_text(r.figures["macro_f1"]),
            num(r.majority_class_macro_f1),
            *(figure_text(r.figures[name]) for name in ("roc_auc", "sensitivity", "specificity", "ece")),
            spread_text(r),
        ]
        for m in summary
        for r in m.rows
    ]


def across_seeds_section(summary: list[ModelAcrossSeeds]) -> str:
    rows = [[esc(cell) for cell in row] for row in table_rows(summary)]
    sentences = "".join(f"<li>{esc(s)}</li>" for m in summary for s in m.sentences)
    return (
        "<p>Each model was trained once per seed. A figure is the median over seeds, with the range over "
        "seeds in parentheses and the median of the seeds' 95% patient-bootstrap intervals in brackets. "
        f"A sentence below is stated only when at least {conclusions.AGREEMENT:.0%} of the seeds support "
        "it; otherwise it says the seeds disagree. The ROC AUC needs no threshold: an interval above 0.5 "
        "with the lungs hidden means signal outside the lungs, however the answers at the threshold fall."
        "</p>" + table(list(HEAD), rows, left=3) + f"<ul>{sentences}</ul>"
    )
