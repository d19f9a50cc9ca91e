"""The state machine of one experiment run: validate -> ETL of the dataset and of each external test set
(those whose manifest is missing; no cluster when none is) -> data audit (when there are external sets)
-> per-model training and evaluation (a Map) -> report. Its input is built by
``jobs.plan.pipeline_input.state_machine_input``.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.pipeline.etl_cluster import EmrEtl, EtlCluster
from infra.pipeline.fragment import fail_with_cause
from infra.pipeline.model_card import ModelCards
from infra.pipeline.registry import ModelRegistry
from infra.pipeline.training import SageMakerJobs
from infra.pipeline.validation import ValidateInput
from infra.resources.network import Network
from infra.resources.storage import Storage
from infra.settings import PipelineSettings


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
        find_dataset = self._find_dataset(storage, "FindDataset", "$.existingDataset")
        find_externals = self._find_external_datasets(storage)
        etl = EmrEtl(self, "Etl", settings=settings, cluster=cluster, network=network)
        per_model = self._per_model(settings, jobs, storage)
        audit = self._audit(jobs, per_model)
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

        datasets_exist = (
            sfn.Choice(self, "DatasetsExist?")
            .when(
                sfn.Condition.and_(
                    sfn.Condition.number_greater_than("$.existingDataset.count", 0),
                    sfn.Condition.boolean_equals("$.externalDatasets.missing", False),
                ),
                audit,
            )
            .otherwise(etl)
        )
        etl.next(audit)
        self.log_group, self.state_machine = self._state_machine(
            validate.next(find_dataset).next(find_externals).next(datasets_exist), settings, storage
        )
        jobs.grant_run_jobs(self.state_machine)
        self.registry.grant_register(self.state_machine)
        etl.restrict_permissions(self.state_machine)

    def _find_dataset(
        self, storage: Storage, state_id: str, result_path: str, output_path: str | None = None
    ) -> tasks.CallAwsService:
        """Counts the objects at ``$.dataset``'s manifest key: a finished ETL output is reused."""
        find_dataset = tasks.CallAwsService(
            self,
            state_id,
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
            result_path=result_path,
            output_path=output_path,
        )
        find_dataset.add_retry(
            errors=["S3.S3Exception", "S3.SdkClientException"],
            interval=Duration.seconds(5),
            max_attempts=3,
            backoff_rate=2.0,
        )
        return find_dataset

    def _find_external_datasets(self, storage: Storage) -> sfn.Map:
        """The manifest count of each external set's dataset, in ``$.externalDatasets.counts`` (the order
        of ``$.externals``), and ``$.externalDatasets.missing``: is any of them still to be built?"""
        # Each iteration answers its count: the Map's result is the list of counts.
        find = self._find_dataset(
            storage, "FindExternalDataset", "$.existing", output_path="$.existing.count"
        )
        find_each = sfn.Map(
            self,
            "FindExternalDatasets",
            items_path="$.externals",
            result_selector={
                "counts": sfn.JsonPath.entire_payload,
                "missing": sfn.JsonPath.array_contains(sfn.JsonPath.entire_payload, 0),
            },
            result_path="$.externalDatasets",
        )
        find_each.item_processor(find)
        return find_each

    def _audit(self, jobs: SageMakerJobs, per_model: sfn.Map) -> sfn.Choice:
        """With external sets, `cxr audit-data` before any training: a leak fails the run, as locally."""
        audit = jobs.audit_state(self, "AuditData")
        audit.add_catch(
            fail_with_cause(
                self,
                "DataAuditFailed",
                "The data audit of the dataset against the external test sets failed: a leak (shared "
                "patients, files or near-duplicates; the LEAK lines are in CloudWatch "
                "/aws/sagemaker/ProcessingJobs, job {}) or unreadable datasets. Cause: {}",
                "$.audit.jobName",
                "$.error.Cause",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        return (
            sfn.Choice(self, "ExternalSets?")
            .when(sfn.Condition.is_present("$.externals[0]"), audit.next(per_model))
            .otherwise(per_model)
        )

    def _per_model(self, settings: PipelineSettings, jobs: SageMakerJobs, storage: Storage) -> sfn.Map:
        """Train, evaluate and make the model card of each model, ``modelConcurrency`` at a time; a failed job
        fails the run, a failed card does not (infra/pipeline/model_card.py); each card's outcome in ``$.modelCards``."""
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
                "dataInputs.$": "$.evaluation.processingInputs",
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
            comment="cxr-pipeline: one experiment run (input: jobs.plan.pipeline_input.state_machine_input)",
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        return log_group, state_machine
