"""Each execution registers its models in the Model Registry: the real definition run in moto, whose
SageMaker backend receives the CreateModelPackage calls."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from jobs.experiment.schema import parse_experiment
from jobs.plan.pipeline_input import state_machine_input
from tests.cdk_support import executable_definition, resources, synthesize
from tests.sfn_support import mocked_tasks, run_execution
from tests.test_state_machine_execution import DATASETS_BUCKET, _happy_mocks

GROUP = "CxrPipeline-models"


@pytest.fixture(scope="module")
def machine() -> dict:
    return executable_definition(synthesize().template)


def test_the_stack_defines_one_model_package_group():
    (group,) = resources(synthesize().template, "AWS::SageMaker::ModelPackageGroup").values()
    assert group["Properties"]["ModelPackageGroupName"] == GROUP


def test_every_trained_model_is_registered_pending_approval(monkeypatch, machine):
    exp = parse_experiment(
        {
            "name": "registry-run",
            "etl": {"sources": [{"kind": "cohen", "uri": "cohen"}, {"kind": "nih", "uri": "nih"}]},
            "training": {"task": "binary", "models": ["small_cnn", "densenet121"]},
        }
    )
    payload = state_machine_input(
        exp,
        raw_uri="s3://cxr-raw-test",
        datasets_uri=f"s3://{DATASETS_BUCKET}",
        artifacts_uri="s3://cxr-artifacts-test",
        run_id="20260101-000000",
    )
    mocks = _happy_mocks()
    del mocks.returns["RegisterModel"]  # the call reaches moto's SageMaker
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        mocked_tasks(monkeypatch, mocks),
    ):
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=DATASETS_BUCKET)
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        run = run_execution(boto3.client("stepfunctions", region_name="us-east-1"), machine, payload)
        assert run.status == "SUCCEEDED", run.cause
        assert run.entered.index("Report") < run.entered.index("RegisterModels")
        listed = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
        packages = [sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"]) for p in listed]
    assert len(packages) == 2
    by_model = {p["CustomerMetadataProperties"]["model"]: p for p in packages}
    for item in payload["models"]:
        package = by_model[item["model"]]
        assert package["ModelApprovalStatus"] == "PendingManualApproval"
        assert package["CustomerMetadataProperties"]["modelCard"] == item["modelCard"]["name"]
        (container,) = package["InferenceSpecification"]["Containers"]
        assert (
            container["ModelDataUrl"] == f"{item['outputUri']}/{item['trainingJobName']}/output/model.tar.gz"
        )
        metrics = package["ModelMetrics"]
        assert metrics["ModelQuality"]["Statistics"]["S3Uri"] == f"{item['evaluationUri']}/metrics.json"
        assert metrics["Explainability"]["Report"]["S3Uri"] == f"{payload['report']['uri']}/report.html"
