"""The cloud commands: ``cxr upload-data``, ``start``, ``status``, ``results`` (boto3).

They read the deployed stack's outputs, so nothing here knows bucket names; every failure a user
can fix (no credentials, no stack, unknown execution) is a ``CloudError`` with one clear sentence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from jobs.contracts import stack_outputs as names
from jobs.experiment.schema import Experiment
from jobs.plan.pipeline_input import (
    execution_name,
    new_run_id,
    state_machine_input,
    validate_state_machine_input,
)

DEFAULT_STACK = "CxrPipeline"
CONSOLE = "https://{region}.console.aws.amazon.com"


class CloudError(RuntimeError):
    """A cloud command cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class StackOutputs:
    raw_bucket: str
    datasets_bucket: str
    artifacts_bucket: str
    state_machine_arn: str
    region: str


# What `cxr start --dry-run` puts where the deployed stack's outputs go (it reads none).
PLACEHOLDER_OUTPUTS = StackOutputs(
    "raw-bucket-of-the-stack",
    "datasets-bucket-of-the-stack",
    "artifacts-bucket-of-the-stack",
    "",
    "us-east-1",
)

# An endpoint that accepts and never answers fails in seconds; botocore's defaults (60 s reads,
# up to 5 attempts) made `cxr status` wait 181 s.
AWS_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"total_max_attempts": 2, "mode": "standard"})


def _client(service: str, region: str | None = None):
    try:
        return boto3.client(service, region_name=region, config=AWS_CONFIG)
    except NoRegionError:
        raise CloudError("no AWS region is configured: set AWS_REGION (or `aws configure`)") from None


def _call(action: Callable[[], Any], what: str) -> Any:
    """Runs one AWS call and turns the errors a user can fix into CloudErrors."""
    try:
        return action()
    except NoCredentialsError:
        raise CloudError("no AWS credentials found: run `aws configure` or set AWS_PROFILE") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in ("ExecutionDoesNotExist", "InvalidArn"):
            raise CloudError(
                f"{what}: no such execution ({message}); `cxr status` lists recent ones"
            ) from None
        if code == "ValidationError" and "does not exist" in message:
            raise CloudError(f"{what}: {message}; deploy it first with `npx cdk deploy`") from None
        raise CloudError(f"{what}: {code}: {message}") from None
    except BotoCoreError as exc:
        raise CloudError(f"{what}: {exc}") from None


def described_outputs(stack: str = DEFAULT_STACK, region: str | None = None) -> tuple[dict[str, str], str]:
    """Every output of the deployed stack by name, and the region it was read from."""
    cfn = _client("cloudformation", region)
    described = _call(lambda: cfn.describe_stacks(StackName=stack), f"stack {stack}")
    return {
        o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])
    }, cfn.meta.region_name


def stack_outputs(stack: str = DEFAULT_STACK, region: str | None = None) -> StackOutputs:
    outputs, region = described_outputs(stack, region)
    missing = [name for name in names.REQUIRED if name not in outputs]
    if missing:
        raise CloudError(
            f"stack {stack} has no output(s) {missing}: is it the cxr-pipeline stack? redeploy it"
        )
    return StackOutputs(
        outputs[names.RAW_BUCKET],
        outputs[names.DATASETS_BUCKET],
        outputs[names.ARTIFACTS_BUCKET],
        outputs[names.STATE_MACHINE],
        region,
    )


# The stack's buckets are SSE-KMS, and S3 documents that the ETag of an SSE-KMS object is not the MD5 of its
# data: the MD5 of what was sent travels as user metadata instead (x-amz-meta-md5), read back with HEAD.
MD5_METADATA = "md5"


def md5_of(path: Path) -> str:
    """A file's MD5 (hex), in 1 MiB reads."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_md5(s3, bucket: str, key: str) -> str | None:
    """The MD5 recorded on an object when it was sent (``MD5_METADATA``), or None (absent, or no object)."""
    try:
        return s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(MD5_METADATA)
    except s3.exceptions.ClientError:
        return None


def _remote_objects(s3, bucket: str, prefix: str) -> dict[str, int]:
    """Every object's size under ``prefix``, by key."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = obj["Size"]
    return found


def upload_data(
    root: Path, outputs: StackOutputs, prefix: str = "", echo: Callable[[str], None] = print
) -> tuple[int, int]:
    """Uploads ``root`` to the raw-data bucket, sending only new or changed files; returns (sent, unchanged).

    A file is unchanged when an object of its size has its MD5 recorded (``recorded_md5``; one HEAD per file
    of the same size): the ETag cannot tell, the bucket being SSE-KMS. An object sent before the MD5 was
    recorded is sent once more.
    """
    if not root.is_dir():
        raise CloudError(f"{root}: no such folder; point --data-root at the folder holding cohen/ and nih/")
    s3 = _client("s3", outputs.region)
    bucket = outputs.raw_bucket
    prefix = prefix.strip("/")
    remote = _call(lambda: _remote_objects(s3, bucket, prefix), f"bucket {bucket}")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    sent = 0
    for number, path in enumerate(files, 1):
        key = "/".join(p for p in (prefix, path.relative_to(root).as_posix()) if p)
        md5 = md5_of(path)
        if remote.get(key) == path.stat().st_size and (
            _call(lambda key=key: recorded_md5(s3, bucket, key), f"s3://{bucket}/{key}") == md5
        ):
            continue
        _call(
            lambda path=path, key=key, md5=md5: s3.put_object(
                Bucket=bucket, Key=key, Body=path.read_bytes(), Metadata={MD5_METADATA: md5}
            ),
            f"upload {key}",
        )
        sent += 1
        if sent % 50 == 0:
            echo(f"  {number}/{len(files)} files checked, {sent} sent")
    echo(f"s3://{bucket}/{prefix}: {sent} file(s) sent, {len(files) - sent} unchanged")
    return sent, len(files) - sent


def execution_input(exp: Experiment, outputs: StackOutputs, run_id: str | None = None) -> dict[str, Any]:
    payload = state_machine_input(
        exp,
        raw_uri=f"s3://{outputs.raw_bucket}",
        datasets_uri=f"s3://{outputs.datasets_bucket}",
        artifacts_uri=f"s3://{outputs.artifacts_bucket}",
        run_id=run_id or new_run_id(),
    )
    problems = validate_state_machine_input(payload)
    if problems:
        raise CloudError("the execution input is invalid: " + "; ".join(problems))
    return payload


def start(exp: Experiment, outputs: StackOutputs, run_id: str | None = None) -> dict[str, str]:
    payload = execution_input(exp, outputs, run_id)
    sfn = _client("stepfunctions", outputs.region)
    name = execution_name(exp, payload["runId"])
    started = _call(
        lambda: sfn.start_execution(
            stateMachineArn=outputs.state_machine_arn, name=name, input=json.dumps(payload)
        ),
        "start execution",
    )
    arn = started["executionArn"]
    console = CONSOLE.format(region=outputs.region)
    return {
        "executionArn": arn,
        "execution": f"{console}/states/home?region={outputs.region}#/v2/executions/details/{arn}",
        "trainingJobs": f"{console}/sagemaker/home?region={outputs.region}#/jobs",
    }


def _history(sfn, arn: str) -> Iterator[dict[str, Any]]:
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        yield from page["events"]


def status(arn: str | None, outputs: StackOutputs) -> dict[str, Any]:
    """The state of each step of an execution (the latest one when ``arn`` is None)."""
    sfn = _client("stepfunctions", outputs.region)
    if arn is None:
        listed = _call(
            lambda: sfn.list_executions(stateMachineArn=outputs.state_machine_arn, maxResults=1),
            "list executions",
        )
        if not listed["executions"]:
            raise CloudError("the state machine has no executions yet; start one with `cxr start EXPERIMENT`")
        arn = listed["executions"][0]["executionArn"]
    described = _call(lambda: sfn.describe_execution(executionArn=arn), f"execution {arn}")
    events = _call(lambda: list(_history(sfn, arn)), f"execution {arn}")
    steps: dict[str, str] = {}
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            steps[event["stateEnteredEventDetails"]["name"]] = "running"
        elif kind.endswith("StateExited"):
            steps[event["stateExitedEventDetails"]["name"]] = "done"
    payload = json.loads(described.get("input", "{}"))
    jobs = [m.get("trainingJobName") for m in payload.get("models", [])]
    return {
        "executionArn": arn,
        "status": described["status"],
        "steps": steps,
        "trainingJobs": jobs,
        "error": described.get("error"),
        "cause": described.get("cause"),
    }


def _download_prefix(s3, uri: str, destination: Path) -> list[Path]:
    """Every object under ``uri`` into ``destination``, keeping the layout below the prefix."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    objects = _call(lambda: _remote_objects(s3, bucket, prefix), uri)
    written = []
    for key in sorted(objects):
        target = destination / key[len(prefix) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        _call(lambda key=key, target=target: s3.download_file(bucket, key, str(target)), f"download {key}")
        written.append(target)
    return written


def results(arn: str, outputs: StackOutputs, destination: Path) -> list[Path]:
    """Downloads the report of a finished execution, and the data audit's (``audit-data/``) when it had
    external test sets: the audit says what was checked for leaks before training."""
    sfn = _client("stepfunctions", outputs.region)
    described = _call(lambda: sfn.describe_execution(executionArn=arn), f"execution {arn}")
    if described["status"] != "SUCCEEDED":
        raise CloudError(
            f"execution {arn} is {described['status']}: no report to fetch; see `cxr status {arn}`"
        )
    payload = json.loads(described["input"])
    report_uri = payload["report"]["uri"]
    s3 = _client("s3", outputs.region)
    written = _download_prefix(s3, report_uri, destination)
    if not written:
        raise CloudError(f"{report_uri}: the report is missing although the execution succeeded")
    if payload.get("externals"):
        audit_uri = payload["audit"]["uri"]
        audit = _download_prefix(s3, audit_uri, destination / "audit-data")
        if not audit:
            raise CloudError(
                f"{audit_uri}: the data audit's report is missing although the execution ran it and succeeded"
            )
        written += audit
    return written
