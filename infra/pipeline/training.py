"""SageMaker: the training/evaluation image, the jobs' role, and the states that run the jobs.

Training runs as a training job (the /opt/ml contract, managed spot, checkpoints, metric definitions);
evaluation and the report run as processing jobs of the same image, whose outputs land in S3 as plain
files. The jobs are written as Step Functions states by hand because the CDK task lacks managed spot
and checkpoints; their settings (KMS, isolation, VPC) are not CloudFormation resources, so cdk-nag
cannot see them and the tests assert them on the definition.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.resources import access
from infra.resources.network import Network
from infra.resources.storage import TEMPORARY_PREFIX, Storage
from infra.settings import PipelineSettings
from jobs.contracts.metric_lines import metric_definitions
from jobs.contracts.sagemaker_env import (
    AUDIT_OUTPUT_DIR,
    DATASET_CHANNEL,
    EVALUATION_MODEL_DIR,
    EVALUATION_OUTPUT_DIR,
    REPORT_DATASET_DIR,
    REPORT_EVALUATIONS_DIR,
    REPORT_OUTPUT_DIR,
    TENSORBOARD_LOCAL_PATH,
    WEIGHTS_CHANNEL,
)
from jobs.contracts.stack_outputs import WEIGHTS_PREFIX
from jobs.experiment.paths import ROOT
from jobs.plan.pipeline_input import JOB_NAME_PREFIX, processing_input

# The image needs only these; a narrow build context keeps the asset hash and upload small.
IMAGE_CONTEXT = ["containers", "jobs", "pyproject.toml"]
# API-level errors worth another try on the optimised `.sync` job tasks; a job that ran and failed is not
# retried (its name is taken).
TRANSIENT_SAGEMAKER_ERRORS = [
    "SageMaker.AmazonSageMakerException",
    "SageMaker.ResourceLimitExceededException",
    "ThrottlingException",
]
# Retried on the `aws-sdk:sagemaker:*` tasks (CreateModelCard, CreateModelPackage). Step Functions names an
# SDK integration's error "<ServiceName>.<ErrorName>", the Exception suffix added where the API reference
# has none ("Learning to use AWS service SDK integrations in Step Functions"), so SageMaker's common errors
# ThrottlingException and ServiceUnavailable arrive as these; a bare "ThrottlingException" never matches.
# Both mean the request was not carried out. InternalFailure is not retried: the card or package may exist
# by then, and a retry would register a second package version.
SAGEMAKER_SDK_RETRY_ERRORS = ["SageMaker.ThrottlingException", "SageMaker.ServiceUnavailableException"]


class SageMakerJobs(Construct):
    """The image asset and the role every job of the pipeline runs with."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineSettings,
        storage: Storage,
        network: Network,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.storage = storage
        self.network = network
        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(ROOT),
            file="containers/Dockerfile",
            exclude=["*", *[f"!{path}" for path in IMAGE_CONTEXT], "**/__pycache__", "**/*.pyc"],
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training, evaluation and report jobs of cxr-pipeline",
        )
        stack = Stack.of(self)
        statements = [
            *access.read_prefix(storage.datasets, "datasets/"),
            *access.read_prefix(storage.artifacts, WEIGHTS_PREFIX),
            *access.write_prefix(storage.artifacts, "runs/"),
            *access.write_prefix(storage.artifacts, TEMPORARY_PREFIX),
            access.use_key(storage.key),
            access.attach_volumes(storage.key),
            *access.pull_image(self.image.repository),
            access.sagemaker_logs(stack, "/aws/sagemaker/*", ("logs:DescribeLogStreams",)),
            # PutMetricData has no resource-level permissions; the condition pins SageMaker's namespace.
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
        ]
        if settings.trainingInVpc:
            statements.append(access.vpc_network_interfaces())
        self.policy = iam.ManagedPolicy(self, "Policy", roles=[self.role], statements=statements)

    def _vpc_config(self) -> dict[str, Any]:
        return {
            "SecurityGroupIds": [self.network.job_security_group.security_group_id],
            "Subnets": [subnet.subnet_id for subnet in self.network.job_subnets],
        }

    def training_state(self, scope: Construct, construct_id: str) -> sfn.CustomState:
        """One training job per Map item: ``$.item`` (a ``models[]`` entry) and ``$.datasetUri``."""
        s = self.settings
        stopping: dict[str, Any] = {"MaxRuntimeInSeconds": s.maxRuntimeSeconds}
        if s.useSpot:
            stopping["MaxWaitTimeInSeconds"] = s.maxWaitSeconds
        parameters: dict[str, Any] = {
            "TrainingJobName.$": "$.item.trainingJobName",
            "RoleArn": self.role.role_arn,
            "AlgorithmSpecification": {
                "TrainingImage": self.image.image_uri,
                "TrainingInputMode": "File",
                "MetricDefinitions": metric_definitions(),
                "EnableSageMakerMetricsTimeSeries": True,
            },
            "HyperParameters.$": "$.item.hyperparameters",
            "InputDataConfig": [
                {
                    "ChannelName": DATASET_CHANNEL,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri.$": "$.datasetUri",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                },
                # ImageNet weights staged by `cxr stage-weights`: the jobs are network-isolated.
                {
                    "ChannelName": WEIGHTS_CHANNEL,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": self.storage.artifacts.s3_url_for_object(WEIGHTS_PREFIX),
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                },
            ],
            "OutputDataConfig": {"S3OutputPath.$": "$.item.outputUri", "KmsKeyId": self.storage.key.key_arn},
            "ResourceConfig": {
                "InstanceType": s.trainingInstanceType,
                "InstanceCount": s.trainingInstanceCount,
                "VolumeSizeInGB": s.trainingVolumeSizeGb,
                "VolumeKmsKeyId": self.storage.key.key_arn,
            },
            "StoppingCondition": stopping,
            "EnableManagedSpotTraining": s.useSpot,
            "CheckpointConfig": {"S3Uri.$": "$.item.checkpointUri"},
            # Keras' TensorBoard logs, synced while the job runs: the console's TensorBoard reads them there.
            "TensorBoardOutputConfig": {
                "S3OutputPath.$": "States.Format('{}/tensorboard/{}', $.item.outputUri, $.item.trainingJobName)",
                "LocalPath": TENSORBOARD_LOCAL_PATH,
            },
            "EnableNetworkIsolation": s.networkIsolation,
            "EnableInterContainerTrafficEncryption": True,
            "Tags": [{"Key": "project", "Value": "cxr-pipeline"}],
        }
        if s.trainingInVpc:
            parameters["VpcConfig"] = self._vpc_config()
        return self._task(
            scope,
            construct_id,
            "createTrainingJob",
            parameters,
            result_selector={
                "modelArtifact.$": "$.ModelArtifacts.S3ModelArtifacts",
                "jobName.$": "$.TrainingJobName",
            },
            result_path="$.training",
        )

    def evaluation_state(self, scope: Construct, construct_id: str) -> sfn.Chain:
        """`evaluate` on the trained model, the dataset and each external set; its output lands at
        ``$.item.evaluationUri``.

        The execution input lists the data inputs (``$.dataInputs``: the dataset, then one per external
        set, as many as the experiment has); the model's comes from the training job. Step Functions has
        no array concatenation, so a Pass state puts the two lists side by side and the job's
        ``ProcessingInputs`` flattens them with a ``[*]`` path (AWS's documented way to flatten arrays).
        """
        model = processing_input("model", EVALUATION_MODEL_DIR, "$.training.modelArtifact", s3_uri_path=True)
        inputs = sfn.Pass(
            scope,
            f"{construct_id}Inputs",
            parameters={"groups": [{"inputs": [model]}, {"inputs": sfn.JsonPath.list_at("$.dataInputs")}]},
            result_path="$.processingInputs",
        )
        job = self._processing(
            scope,
            construct_id,
            name_path="$.item.evaluationJobName",
            entrypoint=["evaluate"],
            arguments_path="$.evaluationArguments",
            inputs="$.processingInputs.groups[*].inputs[*]",
            output=("evaluation", "$.item.evaluationUri", EVALUATION_OUTPUT_DIR),
            instance_type=self.settings.evaluationInstanceType,
            result_path=sfn.JsonPath.DISCARD,
        )
        return inputs.next(job)

    def audit_state(self, scope: Construct, construct_id: str) -> sfn.CustomState:
        """`cxr audit-data` of the dataset against the external sets, mounted as the evaluation mounts them;
        exit code 1 (a leak) fails the job. Its report lands at ``$.audit.uri``."""
        return self._processing(
            scope,
            construct_id,
            name_path="$.audit.jobName",
            entrypoint=["cxr"],
            arguments_path="$.audit.arguments",
            inputs="$.evaluation.processingInputs",
            output=("audit", "$.audit.uri", AUDIT_OUTPUT_DIR),
            instance_type=self.settings.reportInstanceType,
            result_path=sfn.JsonPath.DISCARD,
        )

    def report_state(self, scope: Construct, construct_id: str) -> sfn.CustomState:
        """`cxr report` over every model's evaluation and the dataset manifest; writes ``$.report.uri``."""
        return self._processing(
            scope,
            construct_id,
            name_path="$.report.jobName",
            entrypoint=["cxr"],
            arguments_path="$.report.arguments",
            inputs=[
                processing_input(
                    "evaluations", REPORT_EVALUATIONS_DIR, "$.report.evaluationsUri", s3_uri_path=True
                ),
                processing_input(
                    "manifest",
                    REPORT_DATASET_DIR,
                    "States.Format('s3://{}/{}', $.dataset.bucket, $.dataset.manifestKey)",
                    s3_uri_path=True,
                ),
            ],
            output=("report", "$.report.uri", REPORT_OUTPUT_DIR),
            instance_type=self.settings.reportInstanceType,
            result_path="$.reportJob",
            result_selector={"jobName.$": "$.ProcessingJobName"},
        )

    def _processing(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name_path: str,
        entrypoint: list[str],
        arguments_path: str,
        inputs: list[dict[str, Any]] | str,
        output: tuple[str, str, str],
        instance_type: str,
        result_path: str,
        result_selector: dict[str, Any] | None = None,
    ) -> sfn.CustomState:
        s = self.settings
        network: dict[str, Any] = {
            "EnableNetworkIsolation": s.networkIsolation,
            "EnableInterContainerTrafficEncryption": True,
        }
        if s.trainingInVpc:
            network["VpcConfig"] = self._vpc_config()
        parameters = {
            "ProcessingJobName.$": name_path,
            "RoleArn": self.role.role_arn,
            "AppSpecification": {
                "ImageUri": self.image.image_uri,
                "ContainerEntrypoint": entrypoint,
                "ContainerArguments.$": arguments_path,
            },
            # A JSONPath selects a list the execution builds; a list is the definition's own.
            **({"ProcessingInputs.$": inputs} if isinstance(inputs, str) else {"ProcessingInputs": inputs}),
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": output[0],
                        "S3Output": {
                            "S3Uri.$": output[1],
                            "LocalPath": output[2],
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": self.storage.key.key_arn,
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": instance_type,
                    "VolumeSizeInGB": 30,
                    "VolumeKmsKeyId": self.storage.key.key_arn,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": s.evaluationMaxRuntimeSeconds},
            "NetworkConfig": network,
            "Tags": [{"Key": "project", "Value": "cxr-pipeline"}],
        }
        return self._task(
            scope,
            construct_id,
            "createProcessingJob",
            parameters,
            result_selector=result_selector,
            result_path=result_path,
        )

    def _task(
        self,
        scope: Construct,
        construct_id: str,
        action: str,
        parameters: dict[str, Any],
        *,
        result_path: str,
        result_selector: dict[str, Any] | None,
    ) -> sfn.CustomState:
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": f"arn:{Stack.of(self).partition}:states:::sagemaker:{action}.sync",
            "Parameters": parameters,
            "ResultPath": result_path,
        }
        if result_selector:
            state["ResultSelector"] = result_selector
        task = sfn.CustomState(scope, construct_id, state_json=state)
        task.add_retry(
            errors=TRANSIENT_SAGEMAKER_ERRORS, interval=Duration.seconds(60), max_attempts=4, backoff_rate=2.0
        )
        return task

    def grant_run_jobs(self, principal: iam.IGrantable) -> None:
        """What the state machine needs to start, watch and stop the jobs (the `.sync` integrations)."""
        stack = Stack.of(self)
        jobs = [
            stack.format_arn(service="sagemaker", resource=kind, resource_name=f"{JOB_NAME_PREFIX}*")
            for kind in ("training-job", "processing-job")
        ]
        principal.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                    # CDK's own SageMaker tasks and AWS's Step Functions policy examples grant it (on "*");
                    # here only on the pipeline's jobs.
                    "sagemaker:ListTags",
                ],
                resources=jobs,
            )
        )
        principal.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(service="events", resource="rule", resource_name=name)
                    for name in (
                        "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
                        "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
                    )
                ],
            )
        )
        principal.grant_principal.add_to_principal_policy(
            access.pass_role(self.role, "sagemaker.amazonaws.com")
        )
