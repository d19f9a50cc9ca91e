"""The typed results (report.json, model_card.json, operating_point.json; metrics.json in
test_results_metrics): real files read and written again keep their bytes; a file of another format, a
missing field or a mistyped one is refused with the file, the field and the version named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.contracts.operating_point import OperatingPoint, load_operating_point, save_operating_point
from jobs.contracts.results import ResultsError, json_text, read_model_card
from jobs.contracts.results.report import read_report

ROOT = Path(__file__).resolve().parents[1]
DEMO_REPORT = ROOT / "docs" / "demo-report.json"


def _write(path: Path, content: object) -> Path:
    path.write_text(json.dumps(content, indent=2))
    return path


# ---- report.json and model_card.json: the demo's real report (docs/demo-report.json) ------------------


def test_the_demo_report_validates_and_is_written_back_byte_for_byte():
    report = read_report(DEMO_REPORT)
    assert json_text(report) == DEMO_REPORT.read_text()
    raw = json.loads(DEMO_REPORT.read_text())
    assert [m.label for m in report.models] == [m["label"] for m in raw["models"]]
    assert report.models[0].table["accuracy"] == raw["models"][0]["table"]["accuracy"]


def test_a_model_card_keeps_its_bytes_and_its_integers(tmp_path):
    card = json.loads(DEMO_REPORT.read_text())["models"][0]["model_card"]
    path = _write(tmp_path / "model_card.json", card)
    read = read_model_card(tmp_path)
    assert json_text(read) == path.read_text()
    # an int stays an int (a plain float field would write 70 as 70.0)
    assert (
        json.loads(json_text(read))["metrics"]["internal_test"]["images"]
        == card["metrics"]["internal_test"]["images"]
    )
    assert isinstance(read.metrics["internal_test"].images, int)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "cxr-report/0",
            "format 0 written by an older cxr; re-run `cxr report` for this experiment (this cxr reads format 1)",
        ),
        ("cxr-report/7", "format 7 written by a newer cxr"),
        ("cxr-evaluation/1", "format 'cxr-evaluation/1' is not 'cxr-report/1': not a cxr-report file"),
    ],
)
def test_a_report_of_another_format_is_refused_naming_file_and_version(tmp_path, written, message):
    path = _write(tmp_path / "report.json", {**json.loads(DEMO_REPORT.read_text()), "format": written})
    with pytest.raises(ResultsError) as error:
        read_report(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_a_missing_or_mistyped_field_is_named_with_its_place(tmp_path):
    content = json.loads(DEMO_REPORT.read_text())
    del content["models"][1]["accuracy"]
    with pytest.raises(ResultsError, match=r"report.json: field 'models.1.accuracy': Field required"):
        read_report(_write(tmp_path / "report.json", content))
    content = json.loads(DEMO_REPORT.read_text())
    content["models"][0]["model_card"]["metrics"]["internal_test"]["images"] = "seventy"
    with pytest.raises(ResultsError, match=r"field 'models.0.model_card.metrics.internal_test.images'"):
        read_report(_write(tmp_path / "report.json", content))


def test_an_unknown_field_is_refused_so_a_renamed_one_is_caught(tmp_path):
    card = json.loads(DEMO_REPORT.read_text())["models"][0]["model_card"]
    card["training"]["epochs"] = card["training"].pop("epochs_trained")
    with pytest.raises(ResultsError) as error:
        read_model_card(_write(tmp_path / "model_card.json", card))
    assert "field 'training.epochs_trained': Field required (and 1 more)" in str(error.value)


# ---- operating_point.json ------------------------------------------------------------------------------


def test_an_operating_point_is_written_with_its_format_and_read_back(tmp_path):
    point = OperatingPoint(rule="youden", threshold=0.25, class_names=("COVID-19", "Non-COVID"))
    path = save_operating_point(point, tmp_path)
    assert json.loads(path.read_text()) == {
        "format": "cxr-operating-point/1",
        "rule": "youden",
        "threshold": 0.25,
        "class_names": ["COVID-19", "Non-COVID"],
        "positive_class": "COVID-19",
        "chosen_on": "validation",
    }
    assert load_operating_point(path) == point


def test_an_operating_point_from_before_the_format_field_is_read_as_format_1(tmp_path):
    legacy = {"rule": "youden", "threshold": 0.4, "class_names": ["COVID-19", "Non-COVID"]}
    legacy |= {"positive_class": "COVID-19", "chosen_on": "validation"}
    point = load_operating_point(_write(tmp_path / "operating_point.json", legacy))
    assert point.threshold == 0.4 and point.class_names == ("COVID-19", "Non-COVID")


def test_a_bad_operating_point_names_the_file_and_field(tmp_path):
    path = tmp_path / "operating_point.json"
    fields = {
        "format": "cxr-operating-point/1",
        "rule": "youden",
        "threshold": "high",
        "class_names": ["COVID-19"],
    }
    with pytest.raises(ResultsError, match=rf"{path}: field 'threshold': "):
        load_operating_point(_write(path, fields))
    with pytest.raises(ResultsError, match="format 2 written by a newer cxr"):
        load_operating_point(_write(path, {**fields, "threshold": 0.5, "format": "cxr-operating-point/2"}))
