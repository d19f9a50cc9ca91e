"""The cloud commands against moto: upload, start, status, results, and each error a user can meet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest

from jobs.cli import main as cxr
from jobs.cloud import aws as cloud
from jobs.experiment.arguments import etl_arguments
from jobs.experiment.schema import load_experiment
from jobs.plan.pipeline_input import etl_arguments_of, validate_state_machine_input
from tests.cdk_support import definition, synthesize
from tests.moto_support import documented_kms_etags, mocked_aws

ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-west-1"
# The stack's buckets are SSE-KMS (infra/resources/storage.py).
SSE_KMS = {
    "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
}
STACK_TEMPLATE = {
    "Resources": {
        name: {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket, "BucketEncryption": SSE_KMS}}
        for name, bucket in (("Raw", "cxr-raw"), ("Datasets", "cxr-datasets"), ("Artifacts", "cxr-artifacts"))
    },
    "Outputs": {
        "RawBucket": {"Value": "cxr-raw"},
        "DatasetsBucket": {"Value": "cxr-datasets"},
        "ArtifactsBucket": {"Value": "cxr-artifacts"},
        "StateMachineArn": {"Value": "PLACEHOLDER"},
    },
}


@pytest.fixture
def aws(monkeypatch):
    documented_kms_etags(monkeypatch)
    with mocked_aws(monkeypatch, REGION):
        yield


@pytest.fixture
def deployed(aws) -> cloud.StackOutputs:
    """A stack in moto with the real synthesized state-machine definition and the stack's output names."""
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="cxr-pipeline",
        definition=json.dumps(definition(synthesize().template)),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    template = json.loads(json.dumps(STACK_TEMPLATE))
    template["Outputs"]["StateMachineArn"]["Value"] = arn
    boto3.client("cloudformation").create_stack(StackName="CxrPipeline", TemplateBody=json.dumps(template))
    return cloud.stack_outputs("CxrPipeline")


def test_upload_sends_only_new_or_changed_files(deployed, sample, tmp_path):
    """Into the SSE-KMS raw bucket, whose ETags are not MD5s: a second upload sends nothing, a changed file
    is sent again."""
    root = tmp_path / "raw"
    shutil.copytree(sample / "nih", root / "nih")
    files = sum(1 for p in root.rglob("*") if p.is_file())
    assert cloud.upload_data(root, deployed) == (files, 0)
    stored = boto3.client("s3").head_object(Bucket=deployed.raw_bucket, Key="nih/Data_Entry_2017.csv")
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["ETag"].strip('"') != cloud.md5_of(root / "nih" / "Data_Entry_2017.csv")
    assert cloud.upload_data(root, deployed) == (0, files)
    (root / "nih" / "Data_Entry_2017.csv").write_text("changed")
    assert cloud.upload_data(root, deployed) == (1, files - 1)


def test_start_passes_the_local_runs_arguments_to_the_execution(deployed):
    exp = load_experiment(ROOT / "experiments" / "paper-binary.json")
    started = cloud.start(exp, deployed, run_id="20260101-000000")
    described = boto3.client("stepfunctions").describe_execution(executionArn=started["executionArn"])
    received = json.loads(described["input"])
    assert not validate_state_machine_input(received)
    assert etl_arguments_of(received) == etl_arguments(
        exp, ["s3://cxr-raw/cohen", "s3://cxr-raw/nih"], received["dataset"]["uri"]
    )
    assert [m["model"] for m in received["models"]] == exp.training.models
    assert started["execution"].startswith(f"https://{REGION}.console.aws.amazon.com/states/")


def test_status_lists_steps_and_training_jobs(deployed):
    exp = load_experiment(ROOT / "experiments" / "demo.json")
    arn = cloud.start(exp, deployed, run_id="20260101-000001")["executionArn"]
    state = cloud.status(None, deployed)
    assert state["executionArn"] == arn
    assert state["status"] in ("RUNNING", "SUCCEEDED", "FAILED")
    assert len(state["trainingJobs"]) == len(exp.runs()) == 6  # 2 models x 3 seeds
    assert all(j.startswith("cxr-demo-") for j in state["trainingJobs"])


def _succeeded_execution(deployed, monkeypatch, run_id: str, *, audit: bool) -> tuple[str, dict]:
    """A demo execution that moto reports as SUCCEEDED, with its report (and the audit's, if ``audit``) in S3."""
    exp = load_experiment(ROOT / "experiments" / "demo.json")
    arn = cloud.start(exp, deployed, run_id=run_id)["executionArn"]
    payload = cloud.execution_input(exp, deployed, run_id=run_id)
    written = {payload["report"]["uri"]: ("report.html", b"<html>ok</html>")}
    if audit:
        written[payload["audit"]["uri"]] = ("audit.json", b'{"leaks": []}')
    for uri, (name, body) in written.items():
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body)
    real_client = cloud._client

    def succeeded_client(service, region=None):
        client = real_client(service, region)
        if service == "stepfunctions":
            describe = client.describe_execution
            client.describe_execution = lambda **kw: {**describe(**kw), "status": "SUCCEEDED"}
        return client

    monkeypatch.setattr(cloud, "_client", succeeded_client)
    return arn, payload


def test_results_download_the_report_and_the_data_audit(deployed, tmp_path, monkeypatch):
    """The demo has external test sets, so its leak audit comes down beside the report."""
    arn, _ = _succeeded_execution(deployed, monkeypatch, "20260101-000002", audit=True)
    written = cloud.results(arn, deployed, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        "report.html",
        "audit-data/audit.json",
    ]
    assert (tmp_path / "out" / "report.html").read_bytes() == b"<html>ok</html>"
    assert (tmp_path / "out" / "audit-data" / "audit.json").read_bytes() == b'{"leaks": []}'


def test_results_name_a_missing_data_audit(deployed, tmp_path, monkeypatch):
    arn, payload = _succeeded_execution(deployed, monkeypatch, "20260101-000003", audit=False)
    with pytest.raises(cloud.CloudError, match="data audit's report is missing") as error:
        cloud.results(arn, deployed, tmp_path / "out")
    assert payload["audit"]["uri"] in str(error.value)


def test_unknown_execution_is_named(deployed, capsys):
    arn = deployed.state_machine_arn.replace(":stateMachine:", ":execution:") + ":nope"
    assert cxr(["status", arn]) == 2
    assert "no such execution" in capsys.readouterr().err


def test_no_deployed_stack_says_deploy_first(aws, capsys):
    assert cxr(["status", "--stack", "Missing"]) == 2
    err = capsys.readouterr().err
    assert "Missing" in err and "npx cdk deploy" in err


def test_no_credentials_says_how_to_configure(monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask the instance metadata service
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert cxr(["start", "demo"]) == 2
    assert "no AWS credentials found" in capsys.readouterr().err
