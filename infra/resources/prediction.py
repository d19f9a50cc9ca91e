"""Batch prediction in AWS: the role and settings of the SageMaker Processing job `cxr predict --cloud` starts.

A Processing job (not Batch Transform) runs the ``predict`` entry point of the pipeline's image unchanged
over an S3 prefix: the refusals, the operating point, ``predictions.csv``/``.jsonl`` and the summary
are the local command's. Batch Transform would need a model server behind an HTTP contract and writes
one output object per input, a second code path to keep equal to the first.

The job is started per request (by the CLI), so it is not a CloudFormation resource; the stack defines
who it runs as and with which settings (the training jobs' key, network isolation and VPC), and
publishes them as one JSON output that ``jobs.prediction.cloud`` turns into the job's parameters.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.pipeline.training import SageMakerJobs
from infra.resources import access
from jobs.contracts import stack_outputs
from jobs.prediction.cloud import MODELS_PREFIX, PREDICTIONS_PREFIX


class BatchPrediction(Construct):
    """A least-privilege role: read models under runs/, read and write predictions/, the key, the image."""

    def __init__(self, scope: Construct, construct_id: str, *, jobs: SageMakerJobs) -> None:
        super().__init__(scope, construct_id)
        storage, stack = jobs.storage, Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker batch prediction jobs of cxr-pipeline (cxr predict --cloud)",
        )
        statements = [
            *access.read_prefix(storage.artifacts, MODELS_PREFIX),
            *access.write_prefix(storage.artifacts, PREDICTIONS_PREFIX),
            access.use_key(storage.key),
            access.attach_volumes(storage.key),
            *access.pull_image(jobs.image.repository),
            access.sagemaker_logs(stack, "/aws/sagemaker/ProcessingJobs*"),
        ]
        if jobs.settings.trainingInVpc:
            statements.append(access.vpc_network_interfaces())
        self.policy = iam.ManagedPolicy(self, "Policy", roles=[self.role], statements=statements)
        settings = jobs.settings
        job = {
            "roleArn": self.role.role_arn,
            "imageUri": jobs.image.image_uri,
            "kmsKeyArn": storage.key.key_arn,
            "bucket": storage.artifacts.bucket_name,
            "instanceType": settings.evaluationInstanceType,
            "maxRuntimeSeconds": settings.evaluationMaxRuntimeSeconds,
            "networkIsolation": settings.networkIsolation,
            "subnets": [s.subnet_id for s in jobs.network.job_subnets] if settings.trainingInVpc else [],
            "securityGroups": (
                [jobs.network.job_security_group.security_group_id] if settings.trainingInVpc else []
            ),
        }
        CfnOutput(
            stack,
            stack_outputs.PREDICTION_JOB,
            value=stack.to_json_string(job),
            description="settings of the batch prediction job (cxr predict --cloud reads them)",
        )
