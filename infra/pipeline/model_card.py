"""SageMaker Model Cards: after each model's evaluation, the card that evaluation wrote becomes a SageMaker
Model Card (status Draft), where a reviewer finds it in SageMaker's governance console.

Per Map item, S3 GetObject reads ``sagemaker_model_card.json`` (Step Functions returns the Body as a string,
the form CreateModelCard's ``Content`` takes), then CreateModelCard makes the card, encrypted with the stack's
key and tagged like the jobs. A card that cannot be made does not fail the run: the card is a copy of files
the evaluation already wrote to S3 (``model_card.json``, ``sagemaker_model_card.json``), while failing would
stop the other models' training and skip the report. The error is kept instead, as the item's ``modelCard``
in the execution output (``$.modelCards``), next to the ARNs of the cards that were made.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.pipeline.etl_cluster import PROJECT_TAG
from infra.pipeline.fragment import Fragment
from infra.pipeline.training import SAGEMAKER_SDK_RETRY_ERRORS
from infra.resources import access
from infra.resources.storage import Storage
from jobs.evaluation.sagemaker_card import SAGEMAKER_MODEL_CARD_FILE
from jobs.plan.pipeline_input import JOB_NAME_PREFIX

# The card of a model whose evaluation wrote ``$.item.evaluationUri`` (both paths set by jobs.plan.pipeline_input).
CONTENT_OBJECTS = f"runs/*/{SAGEMAKER_MODEL_CARD_FILE}"


class ModelCards(Fragment):
    """ReadModelCard -> CreateModelCard -> ModelCardOutcome (``{model, modelCard: {arn} or {Error, Cause}}``)."""

    def __init__(self, scope: Construct, construct_id: str, *, storage: Storage) -> None:
        super().__init__(scope, construct_id)
        cards = Stack.of(self).format_arn(
            service="sagemaker", resource="model-card", resource_name=f"{JOB_NAME_PREFIX}*"
        )
        read = tasks.CallAwsService(
            self,
            "ReadModelCard",
            service="s3",
            action="getObject",
            parameters={
                "Bucket": sfn.JsonPath.string_at("$.item.modelCard.bucket"),
                "Key": sfn.JsonPath.string_at("$.item.modelCard.key"),
            },
            iam_resources=[storage.artifacts.arn_for_objects(CONTENT_OBJECTS)],
            iam_action="s3:GetObject",
            # The objects are encrypted with the stack's key.
            additional_iam_statements=[
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[storage.key.key_arn])
            ],
            result_selector={"content.$": "$.Body"},
            result_path="$.modelCardContent",
        )
        create = tasks.CallAwsService(
            self,
            "CreateModelCard",
            service="sagemaker",
            action="createModelCard",
            parameters={
                "ModelCardName": sfn.JsonPath.string_at("$.item.modelCard.name"),
                "Content": sfn.JsonPath.string_at("$.modelCardContent.content"),
                "ModelCardStatus": "Draft",
                "SecurityConfig": {"KmsKeyId": storage.key.key_arn},
                "Tags": [{"Key": PROJECT_TAG[0], "Value": PROJECT_TAG[1]}],
            },
            iam_resources=[cards],
            iam_action="sagemaker:CreateModelCard",
            additional_iam_statements=[
                # Tags given to a Create call need AddTags on the new resource.
                iam.PolicyStatement(actions=["sagemaker:AddTags"], resources=[cards]),
                # SageMaker encrypts the card with the stack's key on the caller's behalf.
                access.use_key(storage.key),
                access.attach_volumes(storage.key),
            ],
            result_selector={"arn.$": "$.ModelCardArn"},
            result_path="$.modelCard",
        )
        create.add_retry(
            errors=SAGEMAKER_SDK_RETRY_ERRORS, interval=Duration.seconds(30), max_attempts=4, backoff_rate=2.0
        )
        outcome = sfn.Pass(
            self,
            "ModelCardOutcome",
            parameters={"model.$": "$.item.model", "seed.$": "$.item.seed", "modelCard.$": "$.modelCard"},
        )
        for state in (read, create):
            state.add_catch(outcome, errors=["States.ALL"], result_path="$.modelCard")
        read.next(create).next(outcome)
        self.bounds(read, [outcome])
