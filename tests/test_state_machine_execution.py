"""The synthesized state machine, executed in moto with mocked EMR and SageMaker results: which states run."""

from __future__ import annotations

import contextlib
import json
import re

import boto3
import pytest
from moto import mock_aws

from jobs.experiment.schema import parse_experiment
from jobs.plan.pipeline_input import state_machine_input, validate_state_machine_input
from tests.cdk_support import executable_definition, synthesize
from tests.sfn_support import Mocks, mocked_tasks, quick_retries, recorded_task_calls, run_execution

DATASETS_BUCKET = "cxr-datasets-test"
ARTIFACTS_BUCKET = "cxr-artifacts-test"
EMR_STARTED = {
    "CreateCluster",
    "RunEtlStep",
    "RunExternalEtlStep",
    "TerminateCluster",
    "TerminateClusterAfterFailure",
}
JOBS = {"AuditData", "Train", "Evaluate", "Report"}
# moto refuses mocked errors named States.*; real `.sync` failures (States.TaskFailed) are caught alike.
STEP_FAILED = ("EMR.StepFailed", "cxr etl: error: too few usable images")
JOB_FAILED = ("SageMaker.TrainingJobFailed", "AlgorithmError: densenet121 ran out of memory")


@pytest.fixture(scope="module")
def machine() -> dict:
    return executable_definition(synthesize().template)


def _payload(external: list[dict] | None = None, seeds: int = 1) -> dict:
    exp = parse_experiment(
        {
            "name": "moto-run",
            "etl": {
                "sources": [{"kind": "cohen", "uri": "cohen"}, {"kind": "nih", "uri": "nih"}],
                "image_size": 64,
            },
            "training": {"task": "binary", "models": ["small_cnn", "densenet121"], "seeds": seeds},
            "evaluation": {"external": external or []},
        }
    )
    return state_machine_input(
        exp,
        raw_uri="s3://cxr-raw-test",
        datasets_uri=f"s3://{DATASETS_BUCKET}",
        artifacts_uri=f"s3://{ARTIFACTS_BUCKET}",
        run_id="20260101-000000",
    )


@pytest.fixture()
def payload() -> dict:
    return _payload()


@pytest.fixture()
def with_externals() -> dict:
    """Two external test sets: another hospital's folders and an NIH subset."""
    return _payload(
        [
            {"name": "hospital-b", "sources": [{"kind": "folders", "uri": "hospital-b"}]},
            {"name": "nih-extra", "sources": [{"kind": "nih", "uri": "s3://elsewhere/nih"}]},
        ]
    )


def _happy_mocks() -> Mocks:
    return Mocks(
        returns={
            "CreateCluster": {"ClusterId": "j-TESTCLUSTER"},
            "RunEtlStep": {"Step": {"Status": {"State": "COMPLETED"}}},
            "RunExternalEtlStep": {"Step": {"Status": {"State": "COMPLETED"}}},
            "AuditData": {"ProcessingJobName": "cxr-audit"},
            "TerminateCluster": {},
            "TerminateClusterAfterFailure": {},
            "Train": {
                "ModelArtifacts": {"S3ModelArtifacts": "s3://cxr-artifacts-test/model.tar.gz"},
                "TrainingJobName": "cxr-job",
            },
            "Evaluate": {"ProcessingJobName": "cxr-eval"},
            "Report": {"ProcessingJobName": "cxr-report"},
            "RegisterModel": {
                "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/m/1"
            },
        }
    )


def _card_content(model: str) -> str:
    """What an evaluation of ``model`` would have written as sagemaker_model_card.json (one per model)."""
    return json.dumps({"model_overview": {"model_description": f"{model}: chest X-ray classifier"}})


@contextlib.contextmanager
def _aws(
    monkeypatch,
    payload,
    mocks: Mocks,
    *,
    dataset_exists: bool = False,
    externals_exist=(),
    cards_written=None,
):
    """moto with the buckets, and each evaluation's card content (for ``cards_written`` models; default all);
    ``dataset_exists``: the dataset's manifest is there, ``externals_exist``: the names of the external sets
    whose manifests are."""
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        mocked_tasks(monkeypatch, mocks),
    ):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=DATASETS_BUCKET)
        manifests = [payload["dataset"]] if dataset_exists else []
        manifests += [e["dataset"] for e in payload.get("externals", []) if e["name"] in externals_exist]
        for dataset in manifests:
            s3.put_object(Bucket=dataset["bucket"], Key=dataset["manifestKey"], Body=b"{}")
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
        for item in payload["models"]:
            if cards_written is None or item["model"] in cards_written:
                card = item["modelCard"]
                s3.put_object(
                    Bucket=card["bucket"], Key=card["key"], Body=_card_content(item["model"]).encode()
                )
        yield


def _execute(monkeypatch, machine, payload, mocks: Mocks, **existing):
    with _aws(monkeypatch, payload, mocks, **existing):
        return run_execution(boto3.client("stepfunctions", region_name="us-east-1"), machine, payload)


def _external_steps(monkeypatch, machine, payload, mocks: Mocks, **existing) -> tuple[object, list[str]]:
    """The run, and the external sets whose ETL step it started (by the step's evaluated arguments)."""
    with recorded_task_calls(monkeypatch) as calls:
        run = _execute(monkeypatch, machine, payload, mocks, **existing)
    outputs = {e["dataset"]["uri"]: e["name"] for e in payload["externals"]}
    built = [
        outputs[arg.removeprefix("--output=")]
        for c in calls
        if c.state == "RunExternalEtlStep"
        for arg in c.parameters["Step"]["HadoopJarStep"]["Args"]
        if arg.startswith("--output=")
    ]
    return run, built


def test_happy_path_runs_etl_then_each_model_then_report(monkeypatch, machine, payload):
    """A new dataset: cluster, ETL step, terminate, a training and an evaluation per model, the report."""
    run = _execute(monkeypatch, machine, payload, _happy_mocks())
    assert run.status == "SUCCEEDED", run.cause
    assert (
        run.entered.index("CreateCluster")
        < run.entered.index("RunEtlStep")
        < run.entered.index("TerminateCluster")
        < run.entered.index("TrainAndEvaluateModels")
        < run.entered.index("Report")
    )
    assert run.entered.count("Train") == run.entered.count("Evaluate") == len(payload["models"])
    assert run.entered[-1] == "Done"
    assert "RunExternalEtlStep" not in run.entered and "AuditData" not in run.entered


def test_external_sets_are_built_on_the_same_cluster_then_audited_before_training(
    monkeypatch, machine, with_externals
):
    """Nothing exists: the dataset's step, then each external set's, terminate, the audit, then the models."""
    run, built = _external_steps(monkeypatch, machine, with_externals, _happy_mocks())
    assert run.status == "SUCCEEDED", run.cause
    assert built == ["hospital-b", "nih-extra"] and run.entered.count("CreateCluster") == 1
    assert (
        run.entered.index("RunEtlStep")
        < run.entered.index("RunExternalEtlStep")
        < run.entered.index("TerminateCluster")
        < run.entered.index("AuditData")
        < run.entered.index("Train")
    )


def test_only_missing_external_sets_are_built(monkeypatch, machine, with_externals):
    """The dataset and one external set exist: a cluster for the other set only, no dataset step."""
    run, built = _external_steps(
        monkeypatch,
        machine,
        with_externals,
        _happy_mocks(),
        dataset_exists=True,
        externals_exist={"hospital-b"},
    )
    assert run.status == "SUCCEEDED", run.cause
    assert built == ["nih-extra"] and "RunEtlStep" not in run.entered
    assert run.entered.index("TerminateCluster") < run.entered.index("AuditData")


def test_every_dataset_present_skips_the_cluster_but_not_the_audit(monkeypatch, machine, with_externals):
    """All manifests exist: no cluster at all; the audit still runs before training."""
    run = _execute(
        monkeypatch,
        machine,
        with_externals,
        _happy_mocks(),
        dataset_exists=True,
        externals_exist={"hospital-b", "nih-extra"},
    )
    assert run.status == "SUCCEEDED", run.cause
    assert not EMR_STARTED & set(run.entered)
    assert run.entered.index("AuditData") < run.entered.index("Train")


def test_failing_external_step_terminates_the_cluster_and_fails(monkeypatch, machine, with_externals):
    """An external set's ETL step fails: the cluster is terminated, no job starts, EtlFailed names it."""
    mocks = _happy_mocks()
    del mocks.returns["RunExternalEtlStep"]
    mocks.throws["RunExternalEtlStep"] = STEP_FAILED
    run = _execute(monkeypatch, machine, with_externals, mocks, dataset_exists=True)
    assert (run.status, run.error) == ("FAILED", "EtlFailed")
    assert "TerminateClusterAfterFailure" in run.entered and "TerminateCluster" not in run.entered
    assert not JOBS & set(run.entered)
    assert "j-TESTCLUSTER" in run.cause and STEP_FAILED[1] in run.cause


def test_a_leak_found_by_the_audit_fails_before_any_training(monkeypatch, machine, with_externals):
    """`cxr audit-data` exits 1 (a leak): the run fails with DataAuditFailed, naming the job; nothing trains."""
    mocks = _happy_mocks()
    del mocks.returns["AuditData"]
    mocks.throws["AuditData"] = ("SageMaker.ProcessingJobFailed", "AlgorithmError: ExitCode 1")
    run = _execute(monkeypatch, machine, with_externals, mocks)
    assert (run.status, run.error) == ("FAILED", "DataAuditFailed")
    assert not {"Train", "Evaluate", "Report"} & set(run.entered)
    assert with_externals["audit"]["jobName"] in run.cause and "ExitCode 1" in run.cause


def test_existing_dataset_skips_the_cluster(monkeypatch, machine, payload):
    """manifest.json already at the dataset's prefix: no cluster, straight to training."""
    run = _execute(monkeypatch, machine, payload, _happy_mocks(), dataset_exists=True)
    assert run.status == "SUCCEEDED", run.cause
    assert not EMR_STARTED & set(run.entered)
    assert run.entered.count("Train") == len(payload["models"])


def test_failing_etl_step_terminates_the_cluster_and_fails(monkeypatch, machine, payload):
    """The ETL step fails: the cluster is terminated, no job starts, the execution fails with EtlFailed."""
    mocks = _happy_mocks()
    del mocks.returns["RunEtlStep"]
    mocks.throws["RunEtlStep"] = STEP_FAILED
    run = _execute(monkeypatch, machine, payload, mocks)
    assert (run.status, run.error) == ("FAILED", "EtlFailed")
    assert "TerminateClusterAfterFailure" in run.entered and "TerminateCluster" not in run.entered
    assert not JOBS & set(run.entered)
    assert "j-TESTCLUSTER" in run.cause and STEP_FAILED[1] in run.cause


def test_cluster_that_fails_to_start_fails_before_any_step(monkeypatch, machine, payload):
    """CreateCluster fails: no step, no job; EMR has already terminated a cluster that failed to start."""
    mocks = _happy_mocks()
    del mocks.returns["CreateCluster"]
    mocks.throws["CreateCluster"] = (
        "EMR.ClusterTerminatedWithErrors",
        "bootstrap action 1 returned a non-zero return code",
    )
    run = _execute(monkeypatch, machine, payload, mocks)
    assert (run.status, run.error) == ("FAILED", "ClusterStartFailed")
    assert "RunEtlStep" not in run.entered and not JOBS & set(run.entered)
    assert "bootstrap action" in run.cause


def test_one_failing_training_job_fails_the_run_after_the_cluster_is_gone(monkeypatch, machine, payload):
    """densenet121's training job fails: the Map fails into ModelFailed, no report; the cluster is gone."""
    mocks = _happy_mocks()
    mocks.fail_items["Train"] = ("item.model", {"densenet121"}, *JOB_FAILED)
    run = _execute(monkeypatch, machine, payload, mocks)
    assert (run.status, run.error) == ("FAILED", "ModelFailed")
    assert "TerminateCluster" in run.entered and "Report" not in run.entered
    assert JOB_FAILED[1] in run.cause


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p["models"][1].update(model="alexnet"), id="unknown-model"),
        pytest.param(lambda p: p.update(task="segmentation"), id="unknown-task"),
        pytest.param(lambda p: p.pop("dataset"), id="missing-dataset"),
        pytest.param(lambda p: p["etl"]["stepArguments"].__delitem__(slice(1, 3)), id="missing-sources"),
        pytest.param(lambda p: p.pop("externals"), id="missing-externals"),
        pytest.param(
            lambda p: p["externals"][1]["etl"]["stepArguments"].__setitem__(0, "/bin/sh"),
            id="external-command",
        ),
        pytest.param(lambda p: p["externals"][0]["dataset"].pop("manifestKey"), id="external-manifest"),
    ],
)
def test_invalid_input_fails_first_with_the_validator_message(monkeypatch, machine, with_externals, change):
    """A bad input fails in the validation states with the Python validator's first message."""
    change(with_externals)
    expected = validate_state_machine_input(with_externals)
    run = _execute(monkeypatch, machine, with_externals, _happy_mocks())
    assert (run.status, run.error) == ("FAILED", "InvalidInput")
    assert run.cause == re.sub(r"^\w+\[\d+\]: ", "", expected[0])
    assert not (EMR_STARTED | JOBS | {"FindDataset"}) & set(run.entered)


def _made_cards(payload) -> dict[str, dict]:
    """The SageMaker Model Cards in moto, by model, as DescribeModelCard returns them."""
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    return {
        item["model"]: sagemaker.describe_model_card(ModelCardName=item["modelCard"]["name"])
        for item in payload["models"]
    }


def test_each_evaluation_becomes_a_sagemaker_model_card(monkeypatch, machine, payload):
    """After each evaluation, its sagemaker_model_card.json becomes a Draft SageMaker Model Card (moto's own
    S3 GetObject and CreateModelCard), and the execution output lists each card's ARN."""
    with _aws(monkeypatch, payload, _happy_mocks()):
        run = run_execution(boto3.client("stepfunctions", region_name="us-east-1"), machine, payload)
        cards = _made_cards(payload)
    assert run.status == "SUCCEEDED", run.cause
    assert (
        run.entered.index("Evaluate")
        < run.entered.index("ReadModelCard")
        < run.entered.index("CreateModelCard")
    )
    for model, card in cards.items():
        assert card["Content"] == _card_content(model)
        assert card["ModelCardStatus"] == "Draft"
    outcomes = {o["model"]: o["modelCard"] for o in run.output["modelCards"]}
    assert outcomes == {model: {"arn": card["ModelCardArn"]} for model, card in cards.items()}


def test_a_card_that_cannot_be_made_is_recorded_and_the_run_goes_on(monkeypatch, machine, payload):
    """densenet121's card content is missing: its error is in the output, small_cnn's card is made, the
    report and the registration still run."""
    with _aws(monkeypatch, payload, _happy_mocks(), cards_written={"small_cnn"}):
        run = run_execution(boto3.client("stepfunctions", region_name="us-east-1"), machine, payload)
        made = boto3.client("sagemaker", region_name="us-east-1").list_model_cards()["ModelCardSummaries"]
    assert run.status == "SUCCEEDED", run.cause
    assert {"Report", "RegisterModels", "Done"} <= set(run.entered)
    outcomes = {o["model"]: o["modelCard"] for o in run.output["modelCards"]}
    assert set(outcomes["small_cnn"]) == {"arn"}
    assert "NoSuchKey" in outcomes["densenet121"]["Error"]  # AWS names it S3.NoSuchKeyException
    assert [c["ModelCardName"] for c in made] == [payload["models"][0]["modelCard"]["name"]]


def test_every_model_and_seed_is_trained_evaluated_and_carded_once(monkeypatch, machine):
    """Seeds are Map items: two models x two seeds are four training jobs, four evaluations and four
    model cards with names of their own, each recorded with its model and seed."""
    payload = _payload(seeds=2)
    with _aws(monkeypatch, payload, _happy_mocks()):
        run = run_execution(boto3.client("stepfunctions", region_name="us-east-1"), machine, payload)
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        cards = [
            sagemaker.describe_model_card(ModelCardName=i["modelCard"]["name"]) for i in payload["models"]
        ]
    assert run.status == "SUCCEEDED", run.cause
    assert run.entered.count("Train") == run.entered.count("Evaluate") == 4
    assert len({card["ModelCardArn"] for card in cards}) == 4
    recorded = sorted((o["model"], o["seed"]) for o in run.output["modelCards"])
    assert recorded == sorted((m, s) for m in ("small_cnn", "densenet121") for s in (1, 2))


def test_a_registration_that_fails_is_recorded_and_the_run_succeeds(monkeypatch, machine, payload):
    """The registry refuses both packages after training and the report: the run still succeeds (so `cxr
    results` fetches the report) and the output names each model's registration error."""
    mocks = _happy_mocks()
    mocks.throws["RegisterModel"] = ("SageMaker.ResourceLimitExceededException", "too many model packages")
    del mocks.returns["RegisterModel"]
    run = _execute(monkeypatch, machine, payload, mocks)
    assert run.status == "SUCCEEDED", run.cause
    assert {"Report", "RegisterModels", "Done"} <= set(run.entered)
    outcomes = {o["model"]: o["modelPackage"] for o in run.output["registrations"]}
    assert set(outcomes) == {"small_cnn", "densenet121"}
    assert {o["Error"] for o in outcomes.values()} == {"SageMaker.ResourceLimitExceededException"}


def test_registrations_are_in_the_output(monkeypatch, machine, payload):
    """Each model's package ARN is in the output's registrations."""
    run = _execute(monkeypatch, machine, payload, _happy_mocks())
    assert run.status == "SUCCEEDED", run.cause
    arn = _happy_mocks().returns["RegisterModel"]["ModelPackageArn"]
    assert {o["model"]: o["modelPackage"] for o in run.output["registrations"]} == {
        "small_cnn": {"arn": arn},
        "densenet121": {"arn": arn},
    }


# How Step Functions names a throttled aws-sdk:sagemaker call: "<ServiceName>.<ErrorName>" with the Exception
# suffix ("Learning to use AWS service SDK integrations in Step Functions"; SageMaker's common error
# ThrottlingException).
SDK_THROTTLED = ("SageMaker.ThrottlingException", "Rate exceeded")


def test_throttled_model_card_and_registration_calls_are_retried(monkeypatch, machine, payload):
    """CreateModelCard and CreateModelPackage throttled once each (per model): both are retried and made (the
    mocks answer only a retry: moto picks a mocked response by the state's retry count)."""
    mocks = _happy_mocks()
    mocks.returns["CreateModelCard"] = {
        "ModelCardArn": "arn:aws:sagemaker:us-east-1:123456789012:model-card/c"
    }
    mocks.throws_once.update({"CreateModelCard": SDK_THROTTLED, "RegisterModel": SDK_THROTTLED})
    run = _execute(monkeypatch, quick_retries(machine), payload, mocks)
    assert run.status == "SUCCEEDED", run.cause
    assert [o["modelCard"] for o in run.output["modelCards"]] == [
        {"arn": mocks.returns["CreateModelCard"]["ModelCardArn"]}
    ] * 2
    assert [o["modelPackage"] for o in run.output["registrations"]] == [
        {"arn": mocks.returns["RegisterModel"]["ModelPackageArn"]}
    ] * 2
