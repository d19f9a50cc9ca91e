"""`cxr predict --cloud`: the job's parameters from the real stack's output, botocore-valid, run in moto."""

from __future__ import annotations

import json
import re

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters

from jobs.cli import main as cxr
from jobs.cloud.aws import CloudError
from jobs.prediction.cloud import approved_model_uri, processing_job_request
from tests.cdk_support import VARIANT, resources, synthesize
from tests.moto_support import mocked_aws

REGION = "eu-west-1"
ACCOUNT = "123456789012"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET = "cxr-artifacts"


def _value(part) -> str:
    """A made-up deployed value for each CloudFormation token of the output."""
    if isinstance(part, str):
        return part
    if "Fn::GetAtt" in part:
        name = part["Fn::GetAtt"][0]
        return KEY_ARN if name.startswith("StorageKey") else f"arn:aws:iam::{ACCOUNT}:role/{name}"
    if "Fn::Sub" in part:
        return re.sub(
            r"\$\{AWS::(\w+)\}",
            lambda m: {"AccountId": ACCOUNT, "Region": REGION}.get(m[1], "amazonaws.com"),
            part["Fn::Sub"],
        )
    ref = part["Ref"]
    if ref.startswith("StorageArtifacts"):
        return BUCKET
    return ("subnet-" if "Subnet" in ref else "sg-") + "0123456789abcdef0"


def deployed_job_settings(template) -> dict:
    value = template["Outputs"]["PredictionJob"]["Value"]
    separator, parts = value["Fn::Join"]
    return json.loads(separator.join(_value(p) for p in parts))


@pytest.fixture(scope="module")
def job() -> dict:
    return deployed_job_settings(synthesize().template)


def _request(job, **overrides):
    uris = {
        "model_uri": f"s3://{BUCKET}/runs/demo/r1/models/small_cnn/output/model.tar.gz",
        "input_uri": f"s3://{BUCKET}/predictions/in/",
        "output_uri": f"s3://{BUCKET}/predictions/out/",
    }
    return processing_job_request(job, name="cxr-predict-test", **{**uris, **overrides})


def test_request_is_valid_for_botocore_and_uses_the_stacks_key(job):
    request = _request(job, operating_point_uri=f"s3://{BUCKET}/runs/demo/r1/evaluations/small_cnn/")
    shape = (
        botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateProcessingJob")
    )
    validate_parameters(request, shape.input_shape)
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == KEY_ARN
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY_ARN
    assert request["NetworkConfig"]["EnableInterContainerTrafficEncryption"] is True
    assert request["AppSpecification"]["ContainerEntrypoint"] == ["predict"]
    assert (
        f"--as-uri=/opt/ml/processing/input=s3://{BUCKET}/predictions/in/"
        in request["AppSpecification"]["ContainerArguments"]
    )


def test_isolation_and_vpc_follow_the_training_settings():
    """With networkIsolation and trainingInVpc on, the prediction job gets both, like every training job."""
    variant = deployed_job_settings(synthesize(nag=False, **VARIANT).template)
    network = _request(variant)["NetworkConfig"]
    assert network["EnableNetworkIsolation"] is True
    assert network["VpcConfig"]["Subnets"] and network["VpcConfig"]["SecurityGroupIds"]


def test_uris_outside_the_roles_prefixes_are_refused_with_the_fix(job):
    with pytest.raises(CloudError, match=r"input s3://elsewhere/x/: the prediction job's role may only use"):
        _request(job, input_uri="s3://elsewhere/x/")
    with pytest.raises(CloudError, match="output"):
        _request(job, output_uri=f"s3://{BUCKET}/runs/overwrite/")


def test_role_reads_models_and_writes_only_predictions():
    """The prediction role's policy: read runs/, write predictions/, nothing on datasets or raw data."""
    template = synthesize().template
    (policy,) = [
        p
        for name, p in resources(template, "AWS::IAM::ManagedPolicy").items()
        if name.startswith("PredictionPolicy")
    ]
    writes, reads = [], []
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        text = json.dumps(statement["Resource"])
        if "s3:PutObject" in actions:
            writes.append(text)
        elif "s3:GetObject" in actions:
            reads.append(text)
    assert len(writes) == 1 and "/predictions/*" in writes[0]
    assert len(reads) == 1 and "/runs/*" in reads[0]
    assert "StorageDatasets" not in json.dumps(policy) and "StorageRaw" not in json.dumps(policy)


@pytest.fixture
def aws(monkeypatch):
    with mocked_aws(monkeypatch, REGION):
        yield


def _package(sagemaker, status: str) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName="cxr-small-cnn",
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cxr:1",
                    "ModelDataUrl": f"s3://{BUCKET}/runs/m/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["application/dicom"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def test_only_an_approved_package_gives_a_model(aws):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="cxr-small-cnn")
    pending = _package(sagemaker, "PendingManualApproval")
    with pytest.raises(CloudError, match="is PendingManualApproval, not Approved"):
        approved_model_uri(sagemaker, pending)
    with pytest.raises(CloudError, match="no approved package"):
        approved_model_uri(sagemaker, "cxr-small-cnn")
    sagemaker.update_model_package(ModelPackageArn=pending, ModelApprovalStatus="Approved")
    assert approved_model_uri(sagemaker, "cxr-small-cnn") == f"s3://{BUCKET}/runs/m/model.tar.gz"
    assert approved_model_uri(sagemaker, pending) == f"s3://{BUCKET}/runs/m/model.tar.gz"


def test_cli_starts_the_job_from_the_deployed_stacks_output(aws, job, capsys):
    """`cxr predict --cloud` reads the stack's output and creates the processing job (moto)."""
    template = {
        "Resources": {"Artifacts": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}}},
        "Outputs": {"PredictionJob": {"Value": json.dumps(job)}},
    }
    boto3.client("cloudformation").create_stack(StackName="CxrPipeline", TemplateBody=json.dumps(template))
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="cxr-small-cnn")
    sagemaker.update_model_package(
        ModelPackageArn=_package(sagemaker, "PendingManualApproval"), ModelApprovalStatus="Approved"
    )
    code = cxr(
        [
            "predict",
            "--cloud",
            "--model=cxr-small-cnn",
            f"s3://{BUCKET}/predictions/in/",
            f"s3://{BUCKET}/predictions/out/",
        ]
    )
    assert code == 0, capsys.readouterr().err
    name = re.search(r"started processing job (\S+);", capsys.readouterr().out)[1]
    described = sagemaker.describe_processing_job(ProcessingJobName=name)
    assert described["RoleArn"] == job["roleArn"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in described["ProcessingInputs"]}
    assert inputs == {
        "model": f"s3://{BUCKET}/runs/m/model.tar.gz",
        "images": f"s3://{BUCKET}/predictions/in/",
    }
    assert cxr(["predict", "--cloud", "--model=s3://x/m.tar.gz", "s3://a/"]) == 2
