"""`cxr run` of a tiny experiment with three seeds on the real sample: each seed trains its own model, and
the report's figures across seeds are those of the seeds' own evaluations (read back from their
predictions, not from the report's code)."""

from __future__ import annotations

import csv
import json
import statistics

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jobs.experiment.schema import parse_experiment
from jobs.plan import runner

TINY = {
    "name": "tiny-seeds",
    "etl": {
        "sources": [{"kind": "cohen", "uri": "cohen"}, {"kind": "nih", "uri": "nih"}],
        "image_size": 32,
        "caps": {"COVID-19": 40, "Normal": 30, "Pneumonia": 30},
    },
    "training": {
        "task": "binary",
        "models": ["small_cnn"],
        "schedule": [{"epochs": 2, "learning_rate": 0.003, "trainable": "all"}],
        "batch_size": 16,
        "weights": "none",
        "seeds": 3,
    },
    "evaluation": {"bootstrap_samples": 50, "gradcam_examples": 0},
}


@pytest.fixture(scope="module")
def finished(sample, tmp_path_factory):
    exp = parse_experiment(TINY)
    layout = runner.LocalLayout(tmp_path_factory.mktemp("runs"))
    lines: list[str] = []
    assert runner.run_steps(runner.plan(exp, layout, sample), force=False, echo=lines.append), lines
    return exp, layout


def _test_rows(path) -> tuple[np.ndarray, np.ndarray]:
    """The test split's truth and P(COVID-19) from an evaluation's predictions.csv."""
    with path.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["set"] == "test"]
    return np.array([r["true_label"] == "COVID-19" for r in rows]), np.array(
        [float(r["p_COVID-19"]) for r in rows]
    )


@pytest.mark.slow
def test_each_seed_is_trained_evaluated_and_summarised_across_seeds(finished):
    exp, layout = finished
    report = json.loads((layout.report(exp) / "report.json").read_text())
    assert [(m["model"], m["seed"]) for m in report["models"]] == [("small_cnn", s) for s in (1, 2, 3)]
    aucs = []
    for run in exp.runs():
        truth, scores = _test_rows(layout.evaluation(exp, run) / "predictions.csv")
        aucs.append(roc_auc_score(truth, scores))
        config = json.loads((layout.model(exp, run) / "config.json").read_text())
        assert config["seed"] == run.seed and config["provenance"]["op_determinism"] is True
    weights = [(layout.model(exp, run) / "model.keras").read_bytes() for run in exp.runs()]
    assert len(set(weights)) == 3  # three seeds, three different models
    (model,) = report["across_seeds"]
    assert model["seeds"] == [1, 2, 3]
    internal = model["rows"][0]["figures"]["roc_auc"]
    assert internal["per_seed"] == pytest.approx(aucs)
    assert internal["median"] == pytest.approx(statistics.median(aucs))
    assert (internal["min"], internal["max"]) == pytest.approx((min(aucs), max(aucs)))
    assert model["sentences"] and all(
        ("every seed" in s or " of 3 seeds" in s or "seeds disagree" in s) for s in model["sentences"]
    )
    assert report["machines"] and report["machines"][0]["cpu"]["cores"] >= 1
    html = (layout.report(exp) / "report.html").read_text()
    assert "Across seeds" in html and "small_cnn seed 3" in html


@pytest.mark.slow
def test_a_rerun_with_a_fourth_seed_trains_only_that_seed(finished, sample):
    exp, layout = finished
    raw = json.loads(json.dumps(TINY))
    raw["training"]["seeds"] = [1, 2, 3, 4]
    more = parse_experiment(raw)
    pending = [step.name for step in runner.plan(more, layout, sample) if not step.is_done()]
    assert pending == ["train small_cnn seed 4", "evaluate small_cnn seed 4", "report"]
