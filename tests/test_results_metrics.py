"""The typed metrics.json of a real tiny evaluation: written back byte for byte, holding the file's values;
an old format stops the report, a mistyped field is named (report.json and the card: test_results_schema)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jobs.contracts.results import ResultsError, json_text, read_metrics, read_model_card
from jobs.evaluation.report import ReportError, build_report
from tests.contract_models import evaluated_experiment


@pytest.fixture(scope="module")
def experiment(small_dataset, tmp_path_factory):
    return evaluated_experiment(small_dataset, tmp_path_factory.mktemp("evaluation"))


def _write(path: Path, content: object) -> Path:
    path.write_text(json.dumps(content, indent=2))
    return path


def test_real_metrics_and_model_cards_are_written_back_byte_for_byte(experiment):
    for name in ("small_cnn", "constant"):
        folder = experiment / "experiment" / name
        for path, read in (
            (folder / "metrics.json", read_metrics),
            (folder / "model_card.json", read_model_card),
        ):
            assert json_text(read(path)) == path.read_text(), path


def test_the_typed_metrics_hold_the_file_s_values(experiment):
    path = experiment / "experiment" / "small_cnn" / "metrics.json"
    raw, metrics = json.loads(path.read_text()), read_metrics(path)
    assert metrics.test.macro_f1 == raw["test"]["report"]["macro avg"]["f1-score"]
    assert metrics.test.bootstrap.ci("recall:COVID-19") == raw["test"]["bootstrap"]["recall:COVID-19"]
    assert metrics.external["other"].kind is None and "kind" not in raw["external"]["other"]
    assert metrics.test.audit.verdict.level == raw["test"]["audit"]["verdict"]["level"]
    assert metrics.epochs == raw["history"]["epochs"]


def test_an_old_metrics_file_stops_the_report_with_the_fix(experiment, tmp_path):
    folder = shutil.copytree(experiment / "experiment" / "small_cnn", tmp_path / "old" / "small_cnn")
    content = json.loads((folder / "metrics.json").read_text())
    _write(folder / "metrics.json", {**content, "format": "cxr-evaluation/0"})
    with pytest.raises(
        ReportError, match=r"metrics.json: format 0 written by an older cxr; re-run `cxr evaluate`"
    ):
        build_report(tmp_path / "old")


def test_a_mistyped_metrics_field_is_named(experiment, tmp_path):
    content = json.loads((experiment / "experiment" / "small_cnn" / "metrics.json").read_text())
    content["test"]["at_threshold"]["positives"] = "19 images"
    path = _write(tmp_path / "metrics.json", content)
    with pytest.raises(
        ResultsError, match=rf"{path}: field 'test.at_threshold.positives': .*cxr-evaluation/1"
    ):
        read_metrics(path)
