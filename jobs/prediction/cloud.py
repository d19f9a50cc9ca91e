"""``cxr predict --cloud``: the same ``predict`` entry point as a SageMaker Processing job over an S3 prefix.

The stack publishes the job's role, image, key and network settings as one output (``infra/resources/prediction.py``);
``processing_job_request`` turns them and the user's URIs into ``CreateProcessingJob`` parameters, so
the security settings come from the stack, never from the command line. The model is an s3:// URI or an
approved package of the SageMaker Model Registry.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jobs.cloud.aws import DEFAULT_STACK, CloudError, _call, _client
from jobs.contracts import stack_outputs

MODELS_PREFIX = "runs/"
PREDICTIONS_PREFIX = "predictions/"
JOB_NAME_PREFIX = "cxr-predict-"
MODEL_DIR = "/opt/ml/processing/model"
INPUT_DIR = "/opt/ml/processing/input"
OUTPUT_DIR = "/opt/ml/processing/output"
OPERATING_POINT_DIR = "/opt/ml/processing/operating-point"


def prediction_job_settings(stack: str = DEFAULT_STACK, region: str | None = None) -> dict[str, Any]:
    cfn = _client("cloudformation", region)
    described = _call(lambda: cfn.describe_stacks(StackName=stack), f"stack {stack}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}
    if stack_outputs.PREDICTION_JOB not in outputs:
        raise CloudError(
            f"stack {stack} has no output {stack_outputs.PREDICTION_JOB}: redeploy it (`npx cdk deploy`)"
        )
    return json.loads(outputs[stack_outputs.PREDICTION_JOB])


def _check_uri(uri: str, bucket: str, prefixes: tuple[str, ...], what: str) -> None:
    allowed = [f"s3://{bucket}/{p}" for p in prefixes]
    if not any(uri.startswith(a) for a in allowed):
        raise CloudError(
            f"{what} {uri}: the prediction job's role may only use {' or '.join(allowed)} "
            f"(least privilege); copy the files there, e.g. `aws s3 sync DIR {allowed[-1]}in/`"
        )


def approved_model_uri(sagemaker, package: str) -> str:
    """The model.tar.gz of a package ARN, or of a group's newest approved package; refuses unapproved ones."""
    if ":model-package/" not in package:
        listed = _call(
            lambda: sagemaker.list_model_packages(
                ModelPackageGroupName=package,
                ModelApprovalStatus="Approved",
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=1,
            ),
            f"model package group {package}",
        )["ModelPackageSummaryList"]
        if not listed:
            raise CloudError(
                f"model package group {package}: no approved package; approve one in SageMaker Studio "
                "or with `aws sagemaker update-model-package --model-approval-status Approved`"
            )
        package = listed[0]["ModelPackageArn"]
    described = _call(lambda: sagemaker.describe_model_package(ModelPackageName=package), package)
    status = described.get("ModelApprovalStatus")
    if status != "Approved":
        raise CloudError(f"model package {package} is {status}, not Approved: a team must approve it first")
    return described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]


def _input(name: str, uri: str, local: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def processing_job_request(
    job: dict[str, Any],
    *,
    name: str,
    model_uri: str,
    input_uri: str,
    output_uri: str,
    operating_point_uri: str | None = None,
) -> dict[str, Any]:
    """CreateProcessingJob parameters: the stack's settings, the user's URIs, the predict entry point."""
    bucket = job["bucket"]
    _check_uri(model_uri, bucket, (MODELS_PREFIX, PREDICTIONS_PREFIX), "--model")
    _check_uri(input_uri, bucket, (PREDICTIONS_PREFIX,), "input")
    _check_uri(output_uri, bucket, (PREDICTIONS_PREFIX,), "output")
    inputs = [_input("model", model_uri, MODEL_DIR), _input("images", input_uri, INPUT_DIR)]
    arguments = [
        f"--model={MODEL_DIR}",
        INPUT_DIR,
        f"--output={OUTPUT_DIR}",
        f"--as-uri={INPUT_DIR}={input_uri}",
    ]
    if operating_point_uri:
        _check_uri(operating_point_uri, bucket, (MODELS_PREFIX, PREDICTIONS_PREFIX), "--operating-point")
        inputs.append(_input("operating-point", operating_point_uri, OPERATING_POINT_DIR))
        arguments.append(f"--operating-point={OPERATING_POINT_DIR}")
    network: dict[str, Any] = {
        "EnableNetworkIsolation": bool(job["networkIsolation"]),
        "EnableInterContainerTrafficEncryption": True,
    }
    if job["subnets"]:
        network["VpcConfig"] = {"SecurityGroupIds": job["securityGroups"], "Subnets": job["subnets"]}
    return {
        "ProcessingJobName": name,
        "RoleArn": job["roleArn"],
        "AppSpecification": {
            "ImageUri": job["imageUri"],
            "ContainerEntrypoint": ["predict"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "predictions",
                    "S3Output": {"S3Uri": output_uri, "LocalPath": OUTPUT_DIR, "S3UploadMode": "EndOfJob"},
                }
            ],
            "KmsKeyId": job["kmsKeyArn"],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": job["instanceType"],
                "VolumeSizeInGB": 30,
                "VolumeKmsKeyId": job["kmsKeyArn"],
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": int(job["maxRuntimeSeconds"])},
        "NetworkConfig": network,
        "Tags": [{"Key": "project", "Value": "cxr-pipeline"}],
    }


def start_prediction(
    model: str,
    input_uri: str,
    output_uri: str,
    operating_point_uri: str | None = None,
    stack: str = DEFAULT_STACK,
    region: str | None = None,
) -> str:
    """Starts the job; ``model`` is an s3:// URI, a model package ARN or a model package group name."""
    sagemaker = _client("sagemaker", region)
    model_uri = model if model.startswith("s3://") else approved_model_uri(sagemaker, model)
    name = f"{JOB_NAME_PREFIX}{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    request = processing_job_request(
        prediction_job_settings(stack, region),
        name=name,
        model_uri=model_uri,
        input_uri=input_uri,
        output_uri=output_uri,
        operating_point_uri=operating_point_uri,
    )
    _call(lambda: sagemaker.create_processing_job(**request), f"processing job {name}")
    return name
