"""``cxr report``: one self-contained HTML page and ``report.json`` for a whole experiment.

Input: a folder holding one ``evaluate`` output per model (each a folder with ``metrics.json``), found at
any depth, and the ETL manifest (``--manifest``, else a ``manifest.json`` inside the folder, else the
dataset named in the models' config). Every image is embedded as base64; the page loads nothing else.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from jobs.atomic import write_text_atomically
from jobs.contracts.results import Evaluation, ResultsError, SetMetrics, json_text, read_metrics
from jobs.contracts.results.metrics import EVALUATION_FORMAT, ClassScores
from jobs.contracts.results.report import FORMAT, Machine, Report, RunSummary
from jobs.data.reader import DatasetError, open_dataset
from jobs.evaluation.conclusions import read_run
from jobs.evaluation.html_parts import esc as _e
from jobs.evaluation.html_parts import num as _n
from jobs.evaluation.html_parts import table as _table
from jobs.evaluation.html_parts import with_ci as _with_ci
from jobs.evaluation.metrics import json_safe
from jobs.evaluation.paper_figures import PAPER_EXPERIMENTS, paper_accuracy, paper_headline
from jobs.evaluation.seed_plots import learning_curves_by_seed, roc_by_seed
from jobs.evaluation.seeds import across_seeds_section, across_seeds_summary
from jobs.evaluation.source_report import (
    calibration_section,
    model_cards_section,
    probe_section,
    subgroups_section,
    summary_rows,
    summary_section,
)

LOG = logging.getLogger(__name__)

REJECTED_SHOWN = 200
# An external set's figures (``metrics.json`` external.<name>.files), in the order the page shows them.
EXTERNAL_FIGURES = (
    ("confusion_matrix", "confusion matrix"),
    ("roc_curves", "ROC curves"),
    ("reliability", "reliability diagram"),
)


class ReportError(ValueError):
    """The experiment folder holds nothing to report on."""


def find_evaluations(folder: Path) -> list[Path]:
    """Folders under ``folder`` holding an evaluation's ``metrics.json``, in name order."""
    found = []
    for path in sorted(folder.rglob("metrics.json")):
        try:
            if json.loads(path.read_text()).get("format", "").startswith(f"{EVALUATION_FORMAT}/"):
                found.append(path.parent)
        except (json.JSONDecodeError, AttributeError):
            continue
    if not found:
        raise ReportError(
            f"{folder}: no evaluation output (metrics.json from `cxr evaluate`) found; "
            "run `cxr evaluate --output <folder>/<model>` for each model first"
        )
    return found


def run_of(ev: Evaluation) -> tuple[str, int | None]:
    """(model, seed) of one evaluation."""
    return ev.model, ev.seed


def planned_only(
    evaluations: dict[Path, Evaluation], models: list[str] | None, seeds: list[int] | None = None
) -> tuple[dict[Path, Evaluation], list[dict]]:
    """The evaluations of the runs (model and seed) the experiment plans, in its order, and those left out
    (an earlier experiment's, a model or seed since removed), so that a report never mixes experiments."""
    if models is None:
        return evaluations, []
    planned = [(m, s) for m in models for s in (seeds or [None])]

    def wanted(ev: Evaluation) -> bool:
        model, seed = run_of(ev)
        return model in models and (seeds is None or seed in seeds)

    kept = {d: ev for d, ev in evaluations.items() if wanted(ev)}
    found = [run_of(ev) if seeds else (run_of(ev)[0], None) for ev in kept.values()]
    label = {True: "{} seed {}", False: "{}"}[seeds is not None]
    missing = [label.format(*run) for run in planned if run not in found]
    twice = sorted({label.format(*run) for run in found if found.count(run) > 1})
    if missing or twice:
        raise ReportError(
            f"--models {','.join(models)}"
            + (f" --seeds {','.join(map(str, seeds))}" if seeds else "")
            + ": "
            + (f"no evaluation of {', '.join(missing)}; " if missing else "")
            + (f"several evaluations of {', '.join(twice)}; " if twice else "")
            + "evaluate each planned model and seed once (`cxr run` does) before the report"
        )
    order = {run: i for i, run in enumerate(planned)}

    def position(item: tuple[Path, Evaluation]) -> int:
        model, seed = run_of(item[1])
        return order[(model, seed if seeds else None)]

    kept = dict(sorted(kept.items(), key=position))
    left_out = [
        {"model": ev.model, "seed": ev.seed, "folder": str(d)}
        for d, ev in evaluations.items()
        if d not in kept
    ]
    return kept, left_out


def find_manifest(folder: Path, explicit: str | None, evaluations: list[Evaluation]) -> dict | None:
    """The ETL manifest: given (dataset root or its manifest.json, local or s3://), found in the folder,
    or read from the dataset the models were tested on."""
    if explicit:
        return open_dataset(explicit.removesuffix("/manifest.json")).manifest
    for path in sorted(folder.rglob("manifest.json")):
        manifest = json.loads(path.read_text())
        if manifest.get("format", "").startswith("cxr-dataset/"):
            return manifest
    for ev in evaluations:
        if ev.test.dataset is None:
            continue
        try:
            return open_dataset(ev.test.dataset.uri).manifest
        except DatasetError:
            continue
    return None


def _external_summary(m: SetMetrics) -> dict:
    return {
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "accuracy_ci": m.bootstrap.ci("accuracy"),
        "images": m.images,
        "uri": m.dataset.uri if m.dataset else None,
    }


def model_summary(ev: Evaluation, folder: Path, reference: str | None) -> RunSummary:
    """One model's row of the side-by-side table, with everything the report shows about it."""
    test = ev.test
    audit = test.audit
    disease = summary_rows(ev)
    return RunSummary.model_validate(
        {
            "disease_summary": disease,
            "findings": [f"{ev.model} {finding.text}." for finding in read_run(disease)],
            "seed": ev.seed,
            "label": ev.label,
            "provenance": ev.provenance,
            "operating_point": ev.operating_point,
            "subgroups": test.subgroups,
            "source_probe": ev.source_probe,
            "model_card": ev.model_card,
            "model": ev.model,
            "task": ev.task,
            "folder": str(folder),
            "classes": ev.classes,
            "accuracy": test.accuracy,
            "accuracy_ci": test.bootstrap.ci("accuracy"),
            "macro_f1_ci": test.bootstrap.ci("macro_f1"),
            "paper_accuracy": paper_accuracy(reference, ev.model),
            "table": test.report,
            "roc_auc": test.roc_auc,
            "rates": test.rates,
            "recall_ci": {c: test.bootstrap.ci(f"recall:{c}") for c in ev.classes},
            "images": test.images,
            "patients": test.patients,
            "audit": {"verdict": audit.verdict if audit else None, "region": audit.region if audit else None},
            "external": {name: _external_summary(m) for name, m in ev.external.items()},
            "config": ev.config,
            "dataset": test.dataset,
            "evaluation_settings": ev.settings,
            "warnings": ev.warnings,
            "epochs_run": len(ev.epochs),
        }
    )


def machines(runs: list[RunSummary]) -> list[dict]:
    """Each distinct machine that trained or evaluated a run (CPU, its instruction sets, libraries)."""
    found: list[dict] = []
    for run in runs:
        provenance = run.provenance
        for machine in (provenance.training, provenance.evaluation) if provenance else ():
            if machine:
                described = {k: machine.get(k) for k in ("cpu", "gpus", "tensorflow", "keras", "settings")}
                if described not in found:
                    found.append(described)
    return found


def _dataset_summary(manifest: dict | None) -> dict | None:
    """The manifest's counts, rejections and settings, with the first rejected inputs."""
    if not manifest:
        return None
    keys = ("image_shape", "counts", "rejected_by_reason", "excluded_by_rule", "settings", "fingerprint")
    return {key: manifest.get(key) for key in keys} | {
        "rejected": manifest.get("rejected", [])[:REJECTED_SHOWN]
    }


def build_report(
    folder: Path,
    manifest_uri: str | None = None,
    experiment: dict | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
) -> tuple[Report, dict[Path, Evaluation]]:
    """(report.json content, {evaluation folder: metrics.json}) for the experiment in ``folder``; with
    ``models`` (and ``seeds``), only those runs' evaluations (the report lists the ones it left out)."""
    dirs = find_evaluations(folder)
    try:
        found = {d: read_metrics(d) for d in dirs}
    except ResultsError as exc:
        raise ReportError(str(exc)) from None
    evaluations, left_out = planned_only(found, models, seeds)
    experiment = experiment or {}
    reference = experiment.get("paper_reference")
    manifest = find_manifest(folder, manifest_uri, list(evaluations.values()))
    runs = [model_summary(ev, d, reference) for d, ev in evaluations.items()]
    report = json_safe(
        {
            "format": FORMAT,
            "experiment": experiment.get("name", folder.name),
            "paper_reference": reference,
            "paper_headline": paper_headline(reference),
            "across_seeds": across_seeds_summary(runs),
            "models": [run.dump() for run in runs],
            "models_planned": models,
            "seeds_planned": seeds,
            "machines": machines(runs),
            "left_out": left_out,
            "dataset": _dataset_summary(manifest),
            "experiment_settings": experiment or None,
        }
    )
    return Report.model_validate(relative_places(report, places_root(folder, manifest_uri))), evaluations


def places_root(folder: Path, manifest_uri: str | None) -> str | None:
    """The folder that holds the evaluations and the dataset (locally the runs folder), so that the report
    names places relative to it: the same run in another clone gives the same report.json."""
    if manifest_uri and "://" in manifest_uri:
        return None
    places = [str(folder.resolve())] + ([str(Path(manifest_uri).resolve())] if manifest_uri else [])
    return os.path.commonpath(places)


def relative_places(document: object, root: str | None) -> object:
    """``document`` with every string under ``root`` written relative to it (``./...``)."""
    if root is None or root == "/":
        return document
    if isinstance(document, dict):
        return {key: relative_places(value, root) for key, value in document.items()}
    if isinstance(document, list):
        return [relative_places(value, root) for value in document]
    if isinstance(document, str) and (document == root or document.startswith(root + "/")):
        return "." + document[len(root) :]
    return document


# ---- HTML -----------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1300px;
color:#1d2433;line-height:1.4}h1{margin-bottom:0}h2{border-bottom:2px solid #dde3ee;padding-bottom:4px;
margin-top:36px}table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #cfd6e4;
padding:4px 8px;text-align:right;font-variant-numeric:tabular-nums}th{background:#eef2f8}
td.l,th.l{text-align:left}.paper{background:#fff7e0}.verdict{padding:10px 14px;border-radius:6px;
margin:6px 0 14px}.shortcut{background:#fde2e1}.lungs{background:#e3f5e1}.inconclusive{background:#eef0f4}
.tables{display:flex;flex-wrap:wrap;gap:24px}.fig{max-width:100%;border:1px solid #dde3ee;margin:4px 0}
.muted{color:#5b6478;font-size:90%}pre{background:#f5f7fa;padding:8px;overflow-x:auto;font-size:85%}
.warn{color:#a33}
"""


def _image(folder: Path, name: str | None, alt: str) -> str:
    if not name or not (folder / name).is_file():
        return f"<p class='muted'>({_e(alt)}: no figure)</p>"
    data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
    return f"<img class='fig' alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _summary_table(report: Report) -> str:
    paper = report.paper_headline is not None
    head = [
        "model",
        "task",
        "accuracy [95% CI]",
        "macro precision",
        "macro recall",
        "macro F1 [95% CI]",
        "weighted F1",
        "test images (patients)",
        "shortcut audit",
    ] + (["paper accuracy"] if paper else [])
    rows = []
    for m in report.models:
        macro, weighted = _scores(m, "macro avg"), _scores(m, "weighted avg")
        row = [
            f"<b>{_e(m.label)}</b>",
            _e(m.task),
            _with_ci(m.accuracy, m.accuracy_ci),
            _n(macro.precision),
            _n(macro.recall),
            _with_ci(macro.f1_score, m.macro_f1_ci),
            _n(weighted.f1_score),
            f"{m.images} ({m.patients})",
            _e(m.audit.verdict.level if m.audit.verdict else "–"),
        ]
        if paper:
            row.append(f"<span class='paper'>{_n(m.paper_accuracy)}</span>")
        rows.append(row)
    return _table(head, rows, left=2)


def _scores(m: RunSummary, row: str) -> ClassScores:
    """A row of the run's classification report (a class, ``macro avg`` or ``weighted avg``)."""
    scores = m.table[row]
    if not isinstance(scores, ClassScores):
        raise ReportError(f"{m.folder}/metrics.json: field 'test.report.{row}' is not a row of scores")
    return scores


def _class_table(m: RunSummary) -> str:
    """The paper's Table 1/2 layout for one model, with our extra per-class columns."""
    rows = []
    for c in m.classes:
        r, rates = _scores(m, c), (m.rates or {}).get(c)
        rows.append(
            [
                _e(c),
                _n(r.precision),
                _with_ci(r.recall, m.recall_ci.get(c)),
                _n(r.f1_score),
                str(int(r.support)),
                _n(rates.specificity if rates else None),
                _n((m.roc_auc or {}).get(c)),
            ]
        )
    rows.append(
        ["accuracy", "", "", _n(m.table["accuracy"]), str(int(_scores(m, "macro avg").support)), "", ""]
    )
    for avg in ("macro avg", "weighted avg"):
        r = _scores(m, avg)
        rows.append([avg, _n(r.precision), _n(r.recall), _n(r.f1_score), str(int(r.support)), "", ""])
    head = ["", "precision", "recall (sensitivity) [95% CI]", "f1-score", "support", "specificity", "ROC AUC"]
    return f"<div><h3>{_e(m.label)}</h3>{_table(head, rows)}</div>"


def _external_table(report: Report) -> str:
    names = sorted({n for m in report.models for n in m.external})
    if not names:
        return "<p class='muted'>No external test set was evaluated (evaluate --external NAME=URI).</p>"
    head = ["model", "test split accuracy", "test split macro F1"]
    head += [f"{_e(n)} accuracy" for n in names] + [f"{_e(n)} macro F1" for n in names]
    rows = []
    for m in report.models:
        ext = m.external
        rows.append(
            [_e(m.label), _with_ci(m.accuracy, m.accuracy_ci), _n(_scores(m, "macro avg").f1_score)]
            + [_with_ci(ext[n].accuracy, ext[n].accuracy_ci) if n in ext else "–" for n in names]
            + [_n(ext[n].macro_f1) if n in ext else "–" for n in names]
        )
    return _table(head, rows)


def _audit_section(report: Report) -> str:
    rows, verdicts = [], []
    for m in report.models:
        v = m.audit.verdict
        by_kind = {r.kind: r for r in m.disease_summary}
        if not v or "lungs hidden" not in by_kind:
            continue
        whole, hidden = by_kind["internal"], by_kind["lungs hidden"]
        rows.append(
            [
                _e(m.label),
                _with_ci(whole.roc_auc, whole.roc_auc_ci),
                _with_ci(hidden.roc_auc, hidden.roc_auc_ci),
                _with_ci(whole.macro_f1, whole.macro_f1_ci),
                _with_ci(hidden.macro_f1, hidden.macro_f1_ci),
                _n(hidden.majority_class_macro_f1),
                _e(v.level),
            ]
        )
        verdicts.append(f"<div class='verdict {_e(v.level)}'><b>{_e(m.label)}</b>: {_e(v.text)}</div>")
    if not rows:
        return "<p class='muted'>No shortcut audit in these evaluations.</p>"
    region = report.models[0].audit.region or {}
    note = (
        f"<p class='muted'>Lung region: one fixed ellipse, centre ({region['centre_x']:.0%}, "
        f"{region['centre_y']:.0%}) of width and height, semi-axes {region['semi_axis_x']:.0%} x "
        f"{region['semi_axis_y']:.0%}; hidden pixels set to black. The verdict reads the ROC AUC's interval "
        "(threshold-free) and the macro F1's against always answering the most common class.</p>"
    )
    head = [
        "run",
        "ROC AUC, whole image",
        "ROC AUC, lungs hidden",
        "macro F1, whole image",
        "macro F1, lungs hidden",
        "majority-class macro F1",
        "verdict",
    ]
    return _table(head, rows) + note + "".join(verdicts)


def _dataset_section(dataset: dict | None) -> str:
    if not dataset:
        return "<p class='warn'>No ETL manifest found: pass --manifest.</p>"
    counts = dataset["counts"]
    splits = list(counts["by_split"])
    classes = sorted({c for s in counts["by_split_class"].values() for c in s})
    sources = sorted({c for s in counts["by_split_source"].values() for c in s})
    rows = [
        [_e(name)]
        + [str(counts[table].get(s, {}).get(name, 0)) for s in splits]
        + [str(counts[total].get(name, 0))]
        for table, total, names in (
            ("by_split_class", "by_class", classes),
            ("by_split_source", "by_source", sources),
        )
        for name in names
    ]
    rows.append(["<b>images</b>"] + [str(counts["by_split"][s]) for s in splits] + [str(counts["images"])])
    rows.append(["patients"] + [str(counts["patients_by_split"].get(s, 0)) for s in splits] + [""])
    parts = [
        f"<p>{counts['inputs']} inputs selected, {counts['images']} images written, "
        f"{counts['rejected']} rejected. Image size {dataset['image_shape']}.</p>",
        _table(["class / source"] + splits + ["total"], rows),
    ]
    reasons = dataset.get("rejected_by_reason") or {}
    excluded = dataset.get("excluded_by_rule") or {}
    if reasons or excluded:
        parts.append(
            _table(
                ["rejected or excluded because", "inputs"],
                [[_e(k), str(v)] for k, v in {**reasons, **excluded}.items()],
            )
        )
    if dataset["rejected"]:
        items = "".join(
            f"<li>{_e(r.get('source'))}: {_e(r.get('path'))}: {_e(r.get('reason'))}</li>"
            for r in dataset["rejected"]
        )
        parts.append(
            f"<details><summary>Rejected inputs ({len(dataset['rejected'])} shown)</summary>"
            f"<ul>{items}</ul></details>"
        )
    return "".join(parts)


def _figures(m: RunSummary, ev: Evaluation, folder: Path) -> str:
    files, gradcam = ev.files, ev.gradcam
    layer = f" (layer {_e(gradcam.layer)})" if gradcam and gradcam.layer else ""
    ext = "".join(
        f"<h4>{_e(name)}</h4>"
        + "".join(
            _image(folder, (e.files or {}).get(key), f"{m.label} {caption} on {name}")
            for key, caption in EXTERNAL_FIGURES
        )
        for name, e in ev.external.items()
    )
    return (
        f"<h3>{_e(m.label)}</h3>"
        + _image(folder, files.get("learning_curves"), f"{m.label} learning curves")
        + _image(folder, files.get("confusion_matrix"), f"{m.label} confusion matrix")
        + _image(folder, files.get("roc_curves"), f"{m.label} ROC curves")
        + f"<h4>Grad-CAM{layer}: most confident correct and wrong test images per class</h4>"
        + _image(folder, gradcam.file if gradcam else None, f"{m.label} Grad-CAM")
        + ext
    )


def _seed_figures(report: Report, evaluations: dict[Path, Evaluation], out: Path) -> str:
    """Per model, its learning curves and test ROC curves with one line per seed (files in ``out``)."""
    parts = []
    for summary in report.across_seeds:
        model = summary.model
        mine = [(ev.seed, folder, ev) for folder, ev in evaluations.items() if ev.model == model]
        positive = mine[0][2].operating_point.positive_class
        curves = learning_curves_by_seed(
            model, [(s, ev.epochs) for s, _, ev in mine], out / f"{model}-learning-by-seed.png"
        )
        roc = roc_by_seed(model, [(s, f) for s, f, _ in mine], positive, out / f"{model}-roc-by-seed.png")
        parts.append(
            _image(out, curves.name, f"{model} learning curves by seed")
            + (_image(out, roc.name, f"{model} ROC curves by seed") if roc else "")
        )
    return "<div class='tables'>" + "".join(parts) + "</div>"


def _machine_item(m: Machine) -> str:
    cpu, settings = m.cpu or {}, m.settings or {}
    return (
        f"<li>{_e(cpu.get('model'))} ({_e(cpu.get('cores'))} cores; "
        f"{_e(' '.join(cpu.get('isa') or []))}), GPUs {_e(', '.join(m.gpus or []) or 'none')}, "
        f"TensorFlow {_e(m.tensorflow)}, Keras {_e(m.keras)}, settings "
        f"{_e(', '.join(f'{k}={v}' for k, v in settings.items() if v) or 'defaults')}</li>"
    )


def _machines_section(found: list[Machine]) -> str:
    """Which machines made the figures: another CPU may train other weights from the same seed."""
    if not found:
        return ""
    return f"<p class='muted'>Made on:</p><ul class='muted'>{''.join(map(_machine_item, found))}</ul>"


def _reproduction(m: RunSummary) -> str:
    """The run's dataset, test set and exact configuration, as the reproduction section shows them."""
    dataset = m.dataset
    settings = {
        "config": m.config,
        "evaluation": m.evaluation_settings.dump() if m.evaluation_settings else None,
    }
    return (
        f"<h3>{_e(m.label)}</h3><p>dataset fingerprint <code>{_e(m.config.get('dataset_fingerprint'))}"
        f"</code>, tested on <code>{_e(dataset.uri if dataset else None)}</code> "
        f"(split {_e(dataset.split if dataset else None)}, fingerprint "
        f"<code>{_e(dataset.fingerprint if dataset else None)}</code>), {m.epochs_run} epochs run</p>"
        f"<pre>{_e(json.dumps(settings, indent=1))}</pre>"
    )


def _paper_note(headline: dict | None) -> str:
    if not headline:
        return "<p class='muted'>Not one of the paper's experiments: no paper figures shown.</p>"
    return (
        f"<p>Paper's best accuracy for this experiment: <span class='paper'>{_n(headline['accuracy'])}"
        f"</span>{' (' + _e(headline['model']) + ')' if headline['model'] else ''}. Our numbers "
        "come from our own data and training settings; read them together with the shortcut audit "
        "below.</p>"
    )


def render_html(report: Report, evaluations: dict[Path, Evaluation], out: Path) -> str:
    warnings = [f"<li>{_e(m.label)}: {_e(w)}</li>" for m in report.models for w in m.warnings]
    warnings += [
        f"<li>left out {_e(x.model)} ({_e(x.folder)}): not a model this experiment plans</li>"
        for x in report.left_out
    ]
    figures = "".join(
        _figures(m, ev, folder) for m, (folder, ev) in zip(report.models, evaluations.items(), strict=True)
    )
    dataset = report.dataset
    body = [
        f"<h1>Experiment {_e(report.experiment)}</h1>",
        f"<p class='muted'>{len(report.models)} run(s); generated "
        f"{_e(datetime.now(UTC).isoformat(timespec='seconds'))}; dataset "
        f"fingerprint <code>{_e((dataset or {}).get('fingerprint'))}</code></p>",
        "<ul class='warn'>" + "".join(warnings) + "</ul>" if warnings else "",
        "<h2>How much of it is the disease? Across seeds</h2>",
        across_seeds_section(report.across_seeds),
        _seed_figures(report, evaluations, out),
        _machines_section(report.machines),
        "<h2>Each seed: internal, lungs hidden, within-source and external</h2>",
        summary_section(report.models),
        "<h2>Models side by side (test split)</h2>",
        _paper_note(report.paper_headline),
        _summary_table(report),
        "<h2>Per-class results (layout of the paper's Tables 1 and 2)</h2>",
        "<div class='tables'>" + "".join(_class_table(m) for m in report.models) + "</div>",
        "<h2>Shortcut audit: does the model read the lungs?</h2>",
        _audit_section(report),
        "<h2>External test sets</h2>",
        _external_table(report),
        "<h2>Calibration and the operating threshold</h2>",
        calibration_section(report.models, evaluations, _image),
        "<h2>Subgroups</h2>",
        subgroups_section(report.models),
        "<h2>Source probe: do the features carry the source?</h2>",
        probe_section(report.models),
        "<h2>Learning curves, confusion matrices, ROC curves and Grad-CAM</h2>",
        figures,
        "<h2>Dataset (ETL manifest)</h2>",
        _dataset_section(dataset),
        "<h2>Reproduction: exact configuration</h2>",
        "".join(_reproduction(m) for m in report.models),
        "<h2>Model cards (also model_card.json next to each evaluation)</h2>",
        model_cards_section(report.models),
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>cxr report: {_e(report.experiment)}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )


def write_report(
    folder: Path,
    output: Path,
    manifest_uri: str | None = None,
    experiment: dict | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict:
    """Writes report.json and report.html; returns report.json's content."""
    report, evaluations = build_report(folder, manifest_uri, experiment, models, seeds)
    write_text_atomically(output / "report.json", json_text(report))
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomically(output / "report.html", render_html(report, evaluations, output))
    return report.dump()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cxr report", description=__doc__.splitlines()[0])
    p.add_argument("folder", help="experiment folder holding one evaluation output per model")
    p.add_argument("--output", help="where report.html and report.json go (default: FOLDER/report)")
    p.add_argument(
        "--manifest", help="the ETL manifest.json (default: found in FOLDER or via the models' dataset)"
    )
    p.add_argument("--experiment-name", help="the experiment's name (default: the folder's name)")
    p.add_argument(
        "--paper-reference",
        choices=PAPER_EXPERIMENTS,
        help="the paper's experiment this one reproduces: its figures are shown beside ours",
    )
    p.add_argument(
        "--models",
        type=lambda text: text.split(","),
        help="comma-separated models the experiment plans: only their evaluations are reported "
        "(default: every evaluation in FOLDER)",
    )
    p.add_argument(
        "--seeds",
        type=lambda text: [int(seed) for seed in text.split(",")],
        help="comma-separated training seeds the experiment plans (with --models): every model must "
        "have one evaluation per seed",
    )
    args = p.parse_args(argv)
    experiment = {"name": args.experiment_name, "paper_reference": args.paper_reference}
    experiment = {k: v for k, v in experiment.items() if v} or None
    folder = Path(args.folder)
    output = Path(args.output) if args.output else folder / "report"
    try:
        report = write_report(folder, output, args.manifest, experiment, args.models, args.seeds)
    except (ReportError, DatasetError) as exc:
        LOG.error(f"cxr report: {exc}")
        return 2
    names = ", ".join(m["label"] for m in report["models"])
    LOG.info(f"cxr report: {len(report['models'])} run(s) ({names}) -> {output / 'report.html'}")
    for x in report["left_out"]:
        LOG.info(f"  left out {x['model']} ({x['folder']}): not a model this experiment plans")
    return 0
