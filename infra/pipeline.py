"""The state machine of one experiment run: validate -> ETL (unless the dataset exists) -> per-model
training and evaluation (a Map) -> report. Its input is built by ``jobs.pipeline_input.state_machine_input``.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.etl_cluster import EmrEtl, EtlCluster
from infra.fragment import fail_with_cause
from infra.model_card import ModelCards
from infra.network import Network
from infra.registry import ModelRegistry
from infra.settings import PipelineSettings
from infra.storage import Storage
from infra.training import SageMakerJobs
from infra.validation import ValidateInput


class Pipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineSettings,
        storage: Storage,
        network: Network,
        cluster: EtlCluster,
        jobs: SageMakerJobs,
    ) -> None:
        super().__init__(scope, construct_id)
        validate = ValidateInput(self, "Validate")
        find_dataset = self._find_dataset(storage)
        etl = EmrEtl(self, "Etl", settings=settings, cluster=cluster, network=network)
        per_model = self._per_model(settings, jobs, storage)
        report = jobs.report_state(self, "Report")
        report.add_catch(
            fail_with_cause(
                self,
                "ReportFailed",
                "The report job failed; see CloudWatch /aws/sagemaker/ProcessingJobs. Cause: {}",
                "$.error.Cause",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        self.registry = ModelRegistry(self, "Registry", jobs=jobs)
        register = self.registry.register_state(self, "RegisterModels")
        per_model.next(report).next(register).next(sfn.Succeed(self, "Done"))

        dataset_exists = (
            sfn.Choice(self, "DatasetExists?")
            .when(sfn.Condition.number_greater_than("$.existingDataset.count", 0), per_model)
            .otherwise(etl)
        )
        etl.next(per_model)
        self.log_group, self.state_machine = self._state_machine(
            validate.next(find_dataset).next(dataset_exists), settings, storage
        )
        jobs.grant_run_jobs(self.state_machine)
        self.registry.grant_register(self.state_machine)
        etl.restrict_permissions(self.state_machine)

    def _find_dataset(self, storage: Storage) -> tasks.CallAwsService:
        """Counts the objects at the dataset's manifest key: a finished ETL output is reused."""
        find_dataset = tasks.CallAwsService(
            self,
            "FindDataset",
            service="s3",
            action="listObjectsV2",
            parameters={
                "Bucket": sfn.JsonPath.string_at("$.dataset.bucket"),
                "Prefix": sfn.JsonPath.string_at("$.dataset.manifestKey"),
                "MaxKeys": 1,
            },
            iam_resources=[storage.datasets.bucket_arn],
            iam_action="s3:ListBucket",
            result_selector={"count.$": "$.KeyCount"},
            result_path="$.existingDataset",
        )
        find_dataset.add_retry(
            errors=["S3.S3Exception", "S3.SdkClientException"],
            interval=Duration.seconds(5),
            max_attempts=3,
            backoff_rate=2.0,
        )
        return find_dataset

    def _per_model(self, settings: PipelineSettings, jobs: SageMakerJobs, storage: Storage) -> sfn.Map:
        """Train, evaluate and make the model card of each model, ``modelConcurrency`` at a time; a failed job
        fails the run, a failed card does not (infra/model_card.py); each card's outcome in ``$.modelCards``."""
        train = jobs.training_state(self, "Train")
        evaluate = jobs.evaluation_state(self, "Evaluate")
        self.model_cards = ModelCards(self, "ModelCards", storage=storage)
        per_model = sfn.Map(
            self,
            "TrainAndEvaluateModels",
            items_path="$.models",
            item_selector={
                "item.$": "$$.Map.Item.Value",
                "datasetUri.$": "$.dataset.uri",
                "evaluationArguments.$": "$.evaluation.arguments",
            },
            max_concurrency=settings.modelConcurrency,
            result_path="$.modelCards",
        )
        per_model.item_processor(train.next(evaluate).next(self.model_cards))
        per_model.add_catch(
            fail_with_cause(
                self,
                "ModelFailed",
                "A training or evaluation job failed (the others were stopped); see the SageMaker console "
                "and CloudWatch /aws/sagemaker/TrainingJobs. Cause: {}",
                "$.error.Cause",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        return per_model

    def _state_machine(
        self, definition: sfn.IChainable, settings: PipelineSettings, storage: Storage
    ) -> tuple[logs.LogGroup, sfn.StateMachine]:
        """The state machine, logging everything to a KMS-encrypted group, traced with X-Ray."""
        log_group = logs.LogGroup(
            self, "Logs", encryption_key=storage.key, removal_policy=RemovalPolicy.RETAIN
        )
        log_group.node.default_child.retention_in_days = settings.logRetentionDays
        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            comment="cxr-pipeline: one experiment run (input: jobs.pipeline_input.state_machine_input)",
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        return log_group, state_machine
