"""Every Task state's Parameters, resolved against the real input of every shipped experiment, checked against
botocore's model of the AWS API it calls (tests/aws_models.py), for cdk.json's context and for a variant
with spot, VPC mode, network isolation and EMR in-transit TLS all on.

The parameters are those moto's ASL interpreter evaluates while running the synthesized definition with
mocked task results (tests/sfn_support.py), so JSONPaths, ``States.Format`` and the Map's item selector
are resolved the way Step Functions resolves them.
"""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from moto import mock_aws

from jobs.evaluation.sagemaker_card import CONTENT_MAX_CHARS
from jobs.experiment.schema import Experiment, load_experiment, parse_experiment
from jobs.plan.pipeline_input import MAX_EXTERNAL_SETS, state_machine_input
from tests.aws_models import deployed_definition_text, request_problems
from tests.cdk_support import ROOT, SWITCHES_ON, all_states, synthesize
from tests.sfn_support import (
    Mocks,
    TaskCall,
    mocked_tasks,
    one_item_at_a_time,
    recorded_task_calls,
    run_execution,
)

SHIPPED = sorted(path.stem for path in (ROOT / "experiments").glob("*.json"))
# The demo with as many external test sets as the evaluation job can mount (MAX_EXTERNAL_SETS): every
# external ETL step, the audit job and the longest ProcessingInputs list are checked too.
WITH_EXTERNALS = "demo+external-sets"
EXPERIMENTS = [*SHIPPED, WITH_EXTERNALS]
VARIANTS = {"cdk.json": {}, "spot+vpc+isolation+tls": SWITCHES_ON}
BUCKETS = {"raw_uri": "s3://cxr-raw-123456789012", "artifacts_uri": "s3://cxr-artifacts-123456789012"}
DATASETS_BUCKET = "cxr-datasets-123456789012"
# What the services answer, in their formats: the next states read these values.
RESULTS = {
    "CreateCluster": {"ClusterId": "j-1K48XXXXXXHCB"},
    "RunEtlStep": {"Step": {"Id": "s-2CY3XXXXXXKT", "Status": {"State": "COMPLETED"}}},
    "RunExternalEtlStep": {"Step": {"Id": "s-3DZ4XXXXXXLU", "Status": {"State": "COMPLETED"}}},
    "TerminateCluster": {},
    "TerminateClusterAfterFailure": {},
    "AuditData": {"ProcessingJobName": "cxr-paper-binary-20260101-120000-audit"},
    "Train": {
        "TrainingJobName": "cxr-paper-binary-20260101-120000-train-resnet50",
        "ModelArtifacts": {
            "S3ModelArtifacts": "s3://cxr-artifacts-123456789012/runs/paper-binary/20260101-120000/training/"
            "cxr-paper-binary-20260101-120000-train-resnet50/output/model.tar.gz"
        },
    },
    "Evaluate": {"ProcessingJobName": "cxr-paper-binary-20260101-120000-eval-resnet50"},
    "Report": {"ProcessingJobName": "cxr-paper-binary-20260101-120000-report"},
    # The longest content an evaluation writes (jobs.evaluation.sagemaker_card.content_text refuses more).
    "ReadModelCard": {"Body": "x" * CONTENT_MAX_CHARS},
}


def _synth(variant: str):
    return synthesize(nag=False, **VARIANTS[variant]) if VARIANTS[variant] else synthesize()


def _run(definition: dict, payload: dict, mocks: Mocks) -> list[TaskCall]:
    with (
        pytest.MonkeyPatch.context() as patch,
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        mocked_tasks(patch, mocks),
        recorded_task_calls(patch) as calls,
    ):
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=DATASETS_BUCKET)
        run = run_execution(
            boto3.client("stepfunctions", region_name="us-east-1"), one_item_at_a_time(definition), payload
        )
    assert run.status in ("SUCCEEDED", "FAILED"), run
    return list(calls)


def _experiment(name: str) -> Experiment:
    if name != WITH_EXTERNALS:
        return load_experiment(ROOT / "experiments" / f"{name}.json")
    raw = json.loads((ROOT / "experiments" / "demo.json").read_text())
    kinds = ["folders", "cohen", "nih"]
    raw["evaluation"]["external"] = [
        {"name": f"hospital-{i}", "sources": [{"kind": kinds[i % 3], "uri": f"external/hospital-{i}"}]}
        for i in range(MAX_EXTERNAL_SETS)
    ]
    return parse_experiment(raw)


@pytest.fixture(scope="module")
def task_calls() -> dict[tuple[str, str], list[TaskCall]]:
    """Per (variant, experiment): the calls of a run that builds the dataset, plus one whose ETL step fails."""
    found = {}
    for variant in VARIANTS:
        definition = json.loads(deployed_definition_text(_synth(variant).template))
        for name in EXPERIMENTS:
            exp = _experiment(name)
            payload = state_machine_input(
                exp, datasets_uri=f"s3://{DATASETS_BUCKET}", run_id="20260101-120000", **BUCKETS
            )
            found[variant, name] = _run(definition, payload, Mocks(returns=RESULTS))
        etl_fails = Mocks(
            returns={k: v for k, v in RESULTS.items() if k != "RunEtlStep"},
            throws={"RunEtlStep": ("EMR.StepFailed", "cxr etl failed")},
        )
        found[variant, "etl-fails"] = _run(definition, payload, etl_fails)
    return found


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("experiment", [*EXPERIMENTS, "etl-fails"])
def test_task_parameters_are_valid_aws_requests(task_calls, variant, experiment):
    """Each Task's resolved Parameters pass botocore's validator and the model's enum/length/pattern rules."""
    calls = task_calls[variant, experiment]
    assert calls, "no Task state ran"
    problems = [f"{c.state}: {p}" for c in calls for p in request_problems(c.resource, c.parameters)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_task_state_was_checked(task_calls, variant):
    """The runs reach every Task state of the definition, so none escapes the check above."""
    states = all_states(json.loads(deployed_definition_text(_synth(variant).template))["States"])
    tasks = {name for name, state in states.items() if state["Type"] == "Task"}
    checked = {c.state for (v, _), calls in task_calls.items() if v == variant for c in calls}
    assert tasks - checked == set()


def test_models_are_checked_for_each_model(task_calls):
    """The Map's item selector is resolved per item: one training and one evaluation request per model."""
    calls = task_calls["cdk.json", "paper-binary"]
    names = sorted(c.parameters["TrainingJobName"] for c in calls if c.state == "Train")
    assert len(names) == 4 and len(set(names)) == 4
    assert sum(c.state == "Evaluate" for c in calls) == 4


def _train_call(task_calls) -> TaskCall:
    return next(c for c in task_calls["cdk.json", "paper-binary"] if c.state == "Train")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.update(TrainingJobNmae="x"), 'Unknown parameter in input: "TrainingJobNmae"'),
        (lambda p: p["ResourceConfig"].update(InstanceType="ml.p3.8xlarg"), "is not one of"),
        (lambda p: p["AlgorithmSpecification"].update(TrainingInputMode="Stream"), "is not one of"),
        (lambda p: p.update(TrainingJobName="cxr_" + "a" * 70), "above the maximum 63"),
        (lambda p: p.update(TrainingJobName="cxr_run"), "does not match the pattern"),
        (
            lambda p: p["HyperParameters"].update(epochs=30),
            "Invalid type for parameter HyperParameters.epochs",
        ),
        (lambda p: p["StoppingCondition"].update(MaxRuntimeInSeconds=0), "below the minimum 1"),
    ],
    ids=["unknown-key", "instance-type", "input-mode", "name-length", "name-pattern", "type", "range"],
)
def test_check_rejects_what_aws_rejects(task_calls, change, expected):
    """Negative control: an unknown key, a bad enum, a too-long or malformed name, a wrong type, a range."""
    params = copy.deepcopy(_train_call(task_calls).parameters)
    change(params)
    problems = request_problems(_train_call(task_calls).resource, params)
    assert any(expected in p for p in problems), problems


def test_emr_integration_rules_are_checked(task_calls):
    """createCluster refuses Steps and needs KeepJobFlowAliveWhenNoSteps; addStep takes one Step, not Steps."""
    calls = {c.state: c for c in task_calls["cdk.json", "paper-binary"]}
    create = copy.deepcopy(calls["CreateCluster"].parameters)
    create["Instances"]["KeepJobFlowAliveWhenNoSteps"] = False
    create["Steps"] = []
    problems = request_problems(calls["CreateCluster"].resource, create)
    assert any("KeepJobFlowAliveWhenNoSteps" in p for p in problems)
    assert any(p.startswith("Steps:") for p in problems)
    step = {**calls["RunEtlStep"].parameters, "Steps": [calls["RunEtlStep"].parameters["Step"]]}
    assert any(
        "Steps: not a field of addStep" in p for p in request_problems(calls["RunEtlStep"].resource, step)
    )


def test_cluster_carries_the_tag_its_managed_service_policy_requires(task_calls):
    """AmazonEMRServicePolicy_v2 acts only on clusters tagged for-use-with-amazon-emr-managed-policies=true."""
    create = next(c for c in task_calls["cdk.json", "paper-binary"] if c.state == "CreateCluster")
    assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in create.parameters["Tags"]


def test_external_sets_reach_their_steps_the_audit_and_the_evaluation(task_calls):
    """One EMR step per external set; the audit and each evaluation mount all of them (10 inputs, the
    most CreateProcessingJob takes), so an eleventh would be refused."""
    calls = task_calls["cdk.json", WITH_EXTERNALS]
    assert sum(c.state == "RunExternalEtlStep" for c in calls) == MAX_EXTERNAL_SETS
    evaluate = next(c for c in calls if c.state == "Evaluate")
    audit = next(c for c in calls if c.state == "AuditData")
    assert len(evaluate.parameters["ProcessingInputs"]) == MAX_EXTERNAL_SETS + 2
    assert evaluate.parameters["ProcessingInputs"][1:] == audit.parameters["ProcessingInputs"]
    more = copy.deepcopy(evaluate.parameters)
    more["ProcessingInputs"].append({**more["ProcessingInputs"][-1], "InputName": "one-too-many"})
    assert any("above the maximum 10" in p for p in request_problems(evaluate.resource, more))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.update(ModelCardName="cxr_run_card"), "does not match the pattern"),
        (lambda p: p.update(Content="x" * (CONTENT_MAX_CHARS + 1)), "above the maximum 100000"),
        (lambda p: p.update(ModelCardStatus="draft"), "is not one of"),
    ],
    ids=["name-pattern", "content-length", "status"],
)
def test_model_card_request_is_checked(task_calls, change, expected):
    """Negative control for CreateModelCard: a malformed name, a content over 100,000 characters, a bad status."""
    call = next(c for c in task_calls["cdk.json", "paper-binary"] if c.state == "CreateModelCard")
    assert request_problems(call.resource, call.parameters) == []
    params = copy.deepcopy(call.parameters)
    change(params)
    assert any(expected in p for p in request_problems(call.resource, params))
