"""`evaluate` end to end: a tiny contract model trained on the real sample, its files, and their numbers."""

from __future__ import annotations

import csv
import json
import tarfile

import keras
import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix

from jobs.cli import main as cxr
from jobs.contracts.results import ModelCard, read_metrics
from jobs.data.reader import open_dataset, to_float
from jobs.evaluation.entry import main
from jobs.evaluation.sagemaker_card import CONTENT_MAX_CHARS, content_text, sagemaker_content
from tests.contract_models import evaluated_experiment
from tests.model_card_schema import schema_errors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def experiment(small_dataset, tmp_path_factory):
    return evaluated_experiment(small_dataset, tmp_path_factory.mktemp("evaluation"))


def _strict(path):
    def reject(token):
        raise AssertionError(f"{path}: non-finite number {token}")

    return json.loads(path.read_text(), parse_constant=reject)


def _same_report(ours: dict, expected: dict) -> None:
    assert ours.keys() == expected.keys()
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value), key


def test_every_file_is_written(experiment):
    out = experiment / "experiment" / "small_cnn"
    for name in (
        "metrics.json",
        "predictions.csv",
        "confusion_matrix.png",
        "learning_curves.png",
        "roc_curves.png",
        "gradcam/test.png",
        "confusion_matrix_other.png",
        "roc_curves_other.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = _strict(out / "metrics.json")
    assert metrics["gradcam"]["layer"] == "tiny_backbone/relu_b" and metrics["gradcam"]["examples"] > 0
    assert set(metrics["test"]["audit"]) >= {"lungs_hidden", "lungs_only", "verdict", "region"}
    assert metrics["test"]["audit"]["verdict"]["text"]
    assert set(metrics["external"]) == {"other"}
    assert metrics["warnings"] == []


def test_metrics_agree_with_scikit_learn_on_the_model_itself(experiment, small_dataset):
    """Predict again here with the saved model; scikit-learn's report must equal metrics.json's."""
    out = experiment / "experiment" / "small_cnn"
    metrics = _strict(out / "metrics.json")
    model = keras.models.load_model(experiment / "models" / "small_cnn" / "model.keras", compile=False)
    test = open_dataset(small_dataset).load("test")
    probabilities = model.predict(to_float(test["image"]), verbose=0)
    pred = np.round(probabilities, 6).argmax(axis=1)  # the precision of predictions.csv, which evaluate uses
    expected = classification_report(
        test["label_index"],
        pred,
        labels=[0, 1, 2],
        output_dict=True,
        zero_division=0,
        target_names=metrics["classes"],
    )
    _same_report(metrics["test"]["report"], expected)
    assert (
        metrics["test"]["confusion_matrix"]
        == confusion_matrix(test["label_index"], pred, labels=[0, 1, 2]).tolist()
    )
    ci = metrics["test"]["bootstrap"]["accuracy"]
    assert ci[0] <= metrics["test"]["report"]["accuracy"] <= ci[1]

    with (out / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    test_rows = [r for r in rows if r["set"] == "test"]
    assert len(test_rows) == len(test["label_index"]) and len(rows) == 2 * len(test_rows)
    assert [r["patient_id"] for r in test_rows] == list(test["patient_id"])
    assert [r["predicted_label"] for r in test_rows] == [metrics["classes"][k] for k in pred]
    probs = np.array([[float(r[f"p_{c}"]) for c in metrics["classes"]] for r in test_rows])
    np.testing.assert_allclose(probs, probabilities, atol=1e-6)
    assert {r["source"] for r in test_rows} == {"cohen", "nih"} and all(r["original_path"] for r in test_rows)
    # the external copy holds the same images: the same answers
    _same_report(metrics["external"]["other"]["report"], metrics["test"]["report"])


def test_constant_model_gets_sane_metrics(experiment):
    metrics = _strict(experiment / "experiment" / "constant" / "metrics.json")
    test = metrics["test"]
    support = {c: test["report"][c]["support"] for c in metrics["classes"]}
    assert test["report"]["accuracy"] == pytest.approx(support["Normal"] / sum(support.values()))
    assert test["report"]["COVID-19"]["precision"] == 0 and test["rates"]["COVID-19"]["ppv"] is None
    assert test["audit"]["verdict"]["level"] == "inconclusive"
    assert all(auc == pytest.approx(0.5) for auc in test["roc_auc"].values())


def test_sagemaker_model_archive_and_cxr_subcommand(experiment, small_dataset, tmp_path):
    """A model.tar.gz (SageMaker's packing of /opt/ml/model) is unpacked; `cxr evaluate` is the same entry."""
    packed = tmp_path / "channel"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        for name in ("model.keras", "config.json", "history.json"):
            tar.add(experiment / "models" / "constant" / name, arcname=name)
    code = cxr(
        [
            "evaluate",
            f"--model-dir={packed}",
            f"--data={small_dataset}",
            f"--output={tmp_path / 'out'}",
            "--bootstrap-samples=0",
            "--gradcam-examples=0",
        ]
    )
    assert code == 0 and (tmp_path / "out" / "metrics.json").is_file()
    assert not (tmp_path / "out" / "gradcam").exists()


def test_errors_name_the_problem(experiment, small_dataset, tmp_path, capsys):
    assert main([f"--model-dir={tmp_path}", f"--data={small_dataset}", f"--output={tmp_path / 'o'}"]) == 2
    assert "missing model.keras, config.json, history.json" in capsys.readouterr().err
    model_dir = experiment / "models" / "constant"
    assert main([f"--model-dir={model_dir}", f"--data={tmp_path}", f"--output={tmp_path / 'o'}"]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    code = main(
        [
            f"--model-dir={model_dir}",
            f"--data={small_dataset}",
            f"--output={tmp_path / 'o'}",
            f"--external=same={small_dataset}",
        ]
    )
    assert code == 2 and "the dataset the model was trained on" in capsys.readouterr().err


def test_threshold_chosen_on_validation_is_applied_unchanged_to_test_and_external(experiment):
    """operating_point.json's threshold, applied by `decide`, gives the reported rates on every set."""
    from jobs.contracts.operating_point import decide, load_operating_point

    out = experiment / "experiment" / "small_cnn"
    metrics = _strict(out / "metrics.json")
    point = load_operating_point(out)
    assert point.chosen_on == "validation" and point.rule == metrics["operating_point"]["rule"] == "youden"
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    classes = tuple(metrics["classes"])
    for name, m in [("test", metrics["test"]), ("other", metrics["external"]["other"])]:
        mine = [r for r in rows if r["set"] == name]
        probabilities = np.array([[float(r[f"p_{c}"]) for c in classes] for r in mine])
        called = decide(probabilities, classes, point) == classes.index("COVID-19")
        positive = np.array([r["true_label"] == "COVID-19" for r in mine])
        assert m["at_threshold"]["threshold"] == point.threshold
        assert m["at_threshold"]["sensitivity"] == pytest.approx(called[positive].mean())
        assert m["at_threshold"]["specificity"] == pytest.approx((~called[~positive]).mean())


def test_the_lungs_hidden_row_is_scored_at_the_stored_threshold_and_calibrated(experiment, small_dataset):
    """The same threshold, unchanged, on the model's own predictions for the test images with the lungs
    blanked; the summary's lungs-hidden row then has every column."""
    from jobs.contracts.operating_point import decide, load_operating_point
    from jobs.evaluation.audit import mask_lungs
    from jobs.evaluation.calibration import expected_calibration_error
    from jobs.evaluation.source_report import summary_rows

    out = experiment / "experiment" / "small_cnn"
    metrics = _strict(out / "metrics.json")
    point = load_operating_point(out)
    model = keras.models.load_model(experiment / "models" / "small_cnn" / "model.keras", compile=False)
    test = open_dataset(small_dataset).load("test")
    probabilities = np.round(
        model.predict(to_float(mask_lungs(test["image"])), verbose=0).astype(np.float64), 6
    )
    classes = tuple(metrics["classes"])
    k = classes.index("COVID-19")
    positive = test["label_index"] == k
    called = decide(probabilities, classes, point) == k
    hidden = metrics["test"]["audit"]["lungs_hidden"]
    assert (
        hidden["at_threshold"]["threshold"] == point.threshold == metrics["test"]["at_threshold"]["threshold"]
    )
    assert hidden["at_threshold"]["sensitivity"] == pytest.approx(called[positive].mean())
    assert hidden["at_threshold"]["specificity"] == pytest.approx((~called[~positive]).mean())
    ece = hidden["calibration"]["classes"]["COVID-19"]["ece"]
    assert ece == pytest.approx(expected_calibration_error(positive, probabilities[:, k]), abs=1e-6)
    row = next(r for r in summary_rows(read_metrics(out)) if r["kind"] == "lungs hidden")
    assert None not in (
        row["sensitivity"],
        row["specificity"],
        row["ece"],
        row["sensitivity_ci"],
        row["ece_ci"],
    )


def test_model_card_is_filled_from_manifest_config_and_metrics(experiment, small_dataset):
    out = experiment / "experiment" / "small_cnn"
    card, metrics = _strict(out / "model_card.json"), _strict(out / "metrics.json")
    manifest = open_dataset(small_dataset).manifest
    assert "Research only" in card["intended_use"]
    assert card["data_lineage"]["counts"] == manifest["counts"]
    assert [s["kind"] for s in card["data_lineage"]["sources"]] == [
        k for k, _ in manifest["settings"]["source"]
    ]
    assert card["training"]["hyperparameters"] == metrics["config"]["hyperparameters"]
    internal = card["metrics"]["internal_test"]
    assert internal["macro_f1"] == metrics["test"]["report"]["macro avg"]["f1-score"]
    assert internal["macro_f1_ci"] == metrics["test"]["bootstrap"]["macro_f1"]
    assert card["operating_point"]["threshold"] == metrics["operating_point"]["threshold"]
    assert set(card["metrics"]) == {"internal_test", "external:other"}
    assert any("confounded" in note for note in card["known_limitations"])


def test_calibration_subgroups_and_probe_are_reported_for_each_set(experiment):
    metrics = _strict(experiment / "experiment" / "small_cnn" / "metrics.json")
    for m in (metrics["test"], metrics["external"]["other"]):
        assert set(m["calibration"]["classes"]) == set(metrics["classes"])
        assert set(m["subgroups"]["attributes"]) >= {"source"}
        assert "sex" in m["subgroups"]["missing"]
    assert set(metrics["source_probe"]["classes"]) == set(metrics["classes"])
    assert (experiment / "experiment" / "small_cnn" / metrics["files"]["reliability"]).is_file()


def _sagemaker_card(out):
    text = (out / "sagemaker_model_card.json").read_text()
    return text, json.loads(text)


def _figures(evaluation: dict) -> dict:
    return {m["name"]: m["value"] for g in evaluation["metric_groups"] for m in g["metric_data"]}


def test_sagemaker_model_card_follows_aws_schema_and_carries_the_card(experiment):
    """sagemaker_model_card.json (CreateModelCard's Content) validates against AWS's model card JSON schema and
    holds model_card.json's figures, for the trained and the constant model."""
    for name in ("small_cnn", "constant"):
        out = experiment / "experiment" / name
        text, content = _sagemaker_card(out)
        card = _strict(out / "model_card.json")
        assert len(text) <= CONTENT_MAX_CHARS
        assert schema_errors(content) == []
        evaluations = {e["metadata"]["set"]: e for e in content["evaluation_details"]}
        assert set(evaluations) == set(card["metrics"]) == {"internal_test", "external:other"}
        for key, headline in card["metrics"].items():
            figures = _figures(evaluations[key])
            assert figures["macro_f1"] == headline["macro_f1"]
            assert [figures["macro_f1 95% CI lower"], figures["macro_f1 95% CI upper"]] == headline[
                "macro_f1_ci"
            ]
            assert figures["operating threshold"] == card["operating_point"]["threshold"]
        assert content["intended_uses"]["intended_uses"] == card["intended_use"]
        job = content["training_details"]["training_job_details"]
        assert {h["name"]: h["value"] for h in job["hyper_parameters"]} == card["training"]["hyperparameters"]
        final = {m["name"]: m["value"] for m in job["training_metrics"]}
        assert final and final == {f"final epoch {k}": v for k, v in card["training"]["final_epoch"].items()}
        details = content["additional_information"]["custom_details"]
        notes = [v for k, v in sorted(details.items()) if k.startswith("known_limitation_")]
        assert notes == card["known_limitations"]


@pytest.mark.parametrize(
    ("break_it", "where"),
    [
        (lambda c: c.update(model_name="small_cnn"), "(root)"),
        (
            lambda c: c["evaluation_details"][0]["metric_groups"][0]["metric_data"][0].update(type="percent"),
            "evaluation_details/0/metric_groups/0/metric_data/0",
        ),
        (lambda c: c["intended_uses"].update(intended_uses="x" * 2049), "intended_uses/intended_uses"),
        (lambda c: c["evaluation_details"][0].pop("name"), "evaluation_details/0"),
        (lambda c: c["intended_uses"].update(risk_rating="Severe"), "intended_uses/risk_rating"),
    ],
    ids=["unknown-section", "metric-type", "too-long", "unnamed-evaluation", "risk-rating"],
)
def test_schema_check_rejects_a_broken_card(experiment, break_it, where):
    """Negative control: an unknown section, a metric type AWS does not know, a text over its limit, an
    evaluation without a name, a risk rating outside AWS's list."""
    _, content = _sagemaker_card(experiment / "experiment" / "small_cnn")
    break_it(content)
    errors = schema_errors(content)
    assert any(e.startswith(where) for e in errors), errors


def test_sagemaker_card_marks_what_it_cuts_or_lacks_and_refuses_an_oversized_card(experiment):
    """A figure not computed says so, a text over its field's limit is cut and marked, and the content still
    validates; a card over CreateModelCard's 100,000 characters is refused, naming the field."""
    card = _strict(experiment / "experiment" / "small_cnn" / "model_card.json")
    card["metrics"]["internal_test"]["roc_auc"] = None
    card["known_limitations"].append("x" * 3000)
    card["training"]["hyperparameters"]["schedule"] = "[" + "1, " * 200 + "1]"
    content = sagemaker_content(ModelCard.model_validate(card))
    assert schema_errors(content) == []
    internal = next(e for e in content["evaluation_details"] if e["metadata"]["set"] == "internal_test")
    assert _figures(internal)["roc_auc"] == "not computed"
    caveats = content["additional_information"]["caveats_and_recommendations"]
    assert len(caveats) == 2048 and caveats.endswith("(cut to fit; whole in model_card.json)")
    hp = {
        h["name"]: h["value"] for h in content["training_details"]["training_job_details"]["hyper_parameters"]
    }
    assert len(hp["schedule"]) == 255 and hp["schedule"].startswith("[1, 1, ")
    card["metrics"] = {f"external:set{i}": card["metrics"]["internal_test"] for i in range(60)}
    with pytest.raises(ValueError, match="evaluation_details"):
        content_text(ModelCard.model_validate(card))
