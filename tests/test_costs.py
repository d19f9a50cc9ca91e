"""The cost estimate (jobs/cloud/costs.py): computed from the CDK context and jobs/cloud/prices.json, printed by
`cxr start --dry-run` without any AWS call, and quoted by docs/cloud.md from the same source."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from jobs.cli import main
from jobs.cloud.costs import (
    CostError,
    cdk_context,
    estimate_cost,
    load_prices,
    markdown_table,
    shipped_experiments,
)
from jobs.experiment.schema import load_experiment, parse_experiment
from jobs.plan.pipeline_input import validate_state_machine_input
from tests.cdk_support import ROOT

PAPER = ROOT / "experiments" / "paper-binary.json"


@pytest.fixture(scope="module")
def prices() -> dict:
    return load_prices()


def test_price_file_is_dated_sourced_and_states_the_spot_assumption(prices):
    """One file holds every price and assumption: a date, a source, the spot discount and why."""
    assert re.fullmatch(r"\d{4}-\d{2}", prices["as_of"]) and prices["region"] == "us-east-1"
    assert "aws.amazon.com" in prices["source"] and "assumed" in prices["spot_note"].lower()
    assert 0 < prices["spot_discount"] < 1


def test_paper_binary_estimate_follows_the_context(prices):
    """Each line is instances x hours x the price of cdk.json's instance type; the total is their sum."""
    exp = load_experiment(PAPER)
    context = cdk_context()
    estimate = estimate_cost(exp, context, spot=False)
    lines = {line.item: line for line in estimate.lines}
    core = lines["EMR Core node (EC2 + EMR)"]
    assert (core.instance_type, core.instances) == (
        context["emrCoreInstanceType"],
        context["emrCoreInstanceCount"],
    )
    assert core.price_per_hour == prices["ec2_per_hour"]["m5.2xlarge"] + prices["emr_per_hour"]["m5.2xlarge"]
    train = lines["SageMaker training"]
    assert (
        train.instances == 4
        and train.price_per_hour == prices["sagemaker_training_per_hour"]["ml.p3.8xlarge"]
    )
    # 1196 capped images, 80% train+validation, 60 epochs at the assumed speed, plus the fixed overhead.
    speed = prices["assumptions"]["training_images_per_second_at_224px"]["ml.p3.8xlarge"]
    assert train.hours == pytest.approx(
        prices["assumptions"]["training_overhead_hours"] + 60 * 1196 * 0.8 / speed / 3600
    )
    assert estimate.total == pytest.approx(
        sum(line.instances * line.hours * line.price_per_hour for line in estimate.lines)
    )


def test_external_sets_add_the_data_audit_job(prices):
    """An experiment with external test sets pays one audit job (report instance) and waits for it."""
    exp = load_experiment(PAPER)
    raw = exp.model_dump(mode="json")
    raw["evaluation"]["external"] = [{"name": "b", "sources": [{"kind": "folders", "uri": "b"}]}]
    plain, audited = (estimate_cost(e, cdk_context(), spot=False) for e in (exp, parse_experiment(raw)))
    (audit,) = [line for line in audited.lines if line.item == "SageMaker processing: data audit"]
    assert audit.hours == prices["assumptions"]["audit_hours"] and audit.instances == 1
    assert (
        audit.price_per_hour == prices["sagemaker_processing_per_hour"][cdk_context()["reportInstanceType"]]
    )
    assert audited.total == pytest.approx(plain.total + audit.hours * audit.price_per_hour)
    assert audited.wall_hours == pytest.approx(plain.wall_hours + audit.hours)
    assert "data audit" not in " ".join(line.item for line in plain.lines)


def test_spot_discounts_training_only(prices):
    """Managed spot lowers the training line by the stated discount; EMR and processing are unchanged."""
    exp = load_experiment(PAPER)
    on_demand, spot = (estimate_cost(exp, cdk_context(), spot=s) for s in (False, True))
    saved = on_demand.total - spot.total
    train = next(line for line in on_demand.lines if line.item == "SageMaker training")
    assert saved == pytest.approx(train.cost * prices["spot_discount"])
    assert estimate_cost(exp, cdk_context({"useSpot": "true"})).spot


def test_one_gpu_instance_brings_a_paper_experiment_under_15_dollars():
    """The paper's batch of 3 cannot use 4 GPUs: one V100 (ml.p3.2xlarge) costs a quarter as much per job."""
    exp = load_experiment(PAPER)
    assert estimate_cost(exp, cdk_context(), spot=False).total > 15
    assert estimate_cost(exp, cdk_context({"trainingInstanceType": "ml.p3.2xlarge"}), spot=False).total < 15
    assert estimate_cost(exp, cdk_context(), spot=True).total < 15


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trainingInstanceType": "ml.p9.xlarge"}, "context 'trainingInstanceType'"),
        ({"evaluationInstanceType": "ml.t3.medium"}, "context 'evaluationInstanceType'"),
        ({"trainingInstanceTyp": "ml.p3.2xlarge"}, "unknown context key(s) trainingInstanceTyp"),
    ],
)
def test_unknown_choices_are_named(overrides, message):
    """An instance type without a price or a misspelt key names the key and the fix."""
    with pytest.raises(CostError, match=re.escape(message)):
        estimate_cost(load_experiment(PAPER), cdk_context(overrides))


def test_uncapped_source_of_unknown_size_is_reported():
    exp = parse_experiment(
        {
            "name": "mine",
            "etl": {"sources": [{"kind": "folders", "uri": "mine"}]},
            "training": {"task": "binary", "models": ["small_cnn"]},
        }
    )
    with pytest.raises(CostError, match=r"etl\.caps"):
        estimate_cost(exp, cdk_context())


def test_dry_run_prints_estimate_and_input_without_aws(monkeypatch, capsys):
    """`cxr start --dry-run` makes no AWS client; its input passes the state machine's own rules."""

    def no_aws(*args, **kwargs):
        raise AssertionError("--dry-run created an AWS client")

    monkeypatch.setattr(boto3, "client", no_aws)
    assert main(["start", "paper-multiclass", "--dry-run", "-c", "useSpot=true"]) == 0
    out = capsys.readouterr().out
    assert "estimated cost of 'paper-multiclass' (managed spot training" in out
    payload = json.loads(out[out.index("{") :])
    assert payload["experiment"] == "paper-multiclass" and validate_state_machine_input(payload) == []


def test_docs_quote_the_generated_table():
    """docs/cloud.md's cost table is `python -m jobs.cloud.costs`'s output, so the two cannot drift."""
    doc = (ROOT / "docs" / "cloud.md").read_text()
    block = re.search(r"<!-- cost-table:begin.*?-->\n(.*?)\n<!-- cost-table:end -->", doc, re.S)
    assert block, "docs/cloud.md lacks the <!-- cost-table:begin --> ... <!-- cost-table:end --> block"
    assert block.group(1) == markdown_table(shipped_experiments()), (
        "regenerate it: .venv/bin/python -m jobs.cloud.costs"
    )


def test_seeds_multiply_the_training_and_evaluation_jobs_only(prices):
    exp = load_experiment(PAPER)
    repeated = exp.model_copy(update={"training": exp.training.model_copy(update={"seeds": 3})})
    once = {line.item: line for line in estimate_cost(exp, cdk_context(), spot=False).lines}
    thrice = {line.item: line for line in estimate_cost(repeated, cdk_context(), spot=False).lines}
    for item in ("SageMaker training", "SageMaker processing: evaluation"):
        assert thrice[item].instances == 3 * once[item].instances == 3 * 4
    for item in ("EMR Core node (EC2 + EMR)", "SageMaker processing: report"):
        assert thrice[item].instances == once[item].instances
