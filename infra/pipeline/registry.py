"""The SageMaker Model Registry: every pipeline execution registers its trained models for approval.

One Model Package Group per stack. After the report, each model of the run becomes a package with status
``PendingManualApproval``, its evaluation's ``metrics.json`` as model-quality statistics and the run's
``report.html`` attached, so a team approves a model before ``cxr predict --cloud`` may use it.

A registration that fails does not fail the run: it comes after every job and the report, which are all in
S3 by then, and a FAILED execution would keep ``cxr results`` from fetching that report. Each model's outcome
is in the execution output instead (``$.registrations``: ``{model, modelPackage: {arn} or {Error, Cause}}``),
as the model cards' are (``$.modelCards``); a missing package can be registered afterwards.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.pipeline.training import SAGEMAKER_SDK_RETRY_ERRORS, SageMakerJobs

CONTENT_TYPES = ["image/png", "image/jpeg", "application/dicom"]
RESPONSE_TYPES = ["text/csv", "application/jsonlines"]


class ModelRegistry(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, jobs: SageMakerJobs) -> None:
        super().__init__(scope, construct_id)
        self.jobs = jobs
        self.group_name = f"{Stack.of(self).stack_name}-models"
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=self.group_name,
            model_package_group_description="cxr-pipeline models; approve one before cxr predict --cloud",
        )

    def register_state(self, scope: Construct, construct_id: str) -> sfn.Map:
        """A Map over ``$.models``: one CreateModelPackage per trained model of the run, each outcome (the
        package's ARN or the error) in ``$.registrations``."""
        register = sfn.CustomState(
            scope,
            "RegisterModel",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Stack.of(self).partition}:states:::aws-sdk:sagemaker:createModelPackage",
                "Parameters": {
                    "ModelPackageGroupName": self.group_name,
                    "ModelPackageDescription.$": "States.Format('{} {} seed {} run {}', $.experiment, $.item.model, "
                    "$.item.seed, $.runId)",
                    "ModelApprovalStatus": "PendingManualApproval",
                    "InferenceSpecification": {
                        "Containers": [
                            {
                                "Image": self.jobs.image.image_uri,
                                # SageMaker's layout: <S3OutputPath>/<training job name>/output/model.tar.gz
                                "ModelDataUrl.$": "States.Format('{}/{}/output/model.tar.gz', "
                                "$.item.outputUri, $.item.trainingJobName)",
                            }
                        ],
                        "SupportedContentTypes": CONTENT_TYPES,
                        "SupportedResponseMIMETypes": RESPONSE_TYPES,
                    },
                    "ModelMetrics": {
                        "ModelQuality": {
                            "Statistics": {
                                "ContentType": "application/json",
                                "S3Uri.$": "States.Format('{}/metrics.json', $.item.evaluationUri)",
                            }
                        },
                        "Explainability": {
                            "Report": {
                                "ContentType": "text/html",
                                "S3Uri.$": "States.Format('{}/report.html', $.reportUri)",
                            }
                        },
                    },
                    "CustomerMetadataProperties": {
                        "experiment.$": "$.experiment",
                        "runId.$": "$.runId",
                        "model.$": "$.item.model",
                        "evaluationUri.$": "$.item.evaluationUri",
                        # The SageMaker Model Card made after the evaluation (infra/pipeline/model_card.py); the
                        # execution output's $.modelCards says whether it was made.
                        "modelCard.$": "$.item.modelCard.name",
                    },
                },
                "ResultSelector": {"arn.$": "$.ModelPackageArn"},
                "ResultPath": "$.modelPackage",
            },
        )
        register.add_retry(
            errors=SAGEMAKER_SDK_RETRY_ERRORS, interval=Duration.seconds(30), max_attempts=4, backoff_rate=2.0
        )
        outcome = sfn.Pass(
            scope,
            "RegistrationOutcome",
            parameters={
                "model.$": "$.item.model",
                "seed.$": "$.item.seed",
                "modelPackage.$": "$.modelPackage",
            },
        )
        register.add_catch(outcome, errors=["States.ALL"], result_path="$.modelPackage")
        per_model = sfn.Map(
            scope,
            construct_id,
            items_path="$.models",
            item_selector={
                "item.$": "$$.Map.Item.Value",
                "experiment.$": "$.experiment",
                "runId.$": "$.runId",
                "reportUri.$": "$.report.uri",
            },
            result_path="$.registrations",
        )
        per_model.item_processor(register.next(outcome))
        return per_model

    def grant_register(self, principal: iam.IGrantable) -> None:
        stack = Stack.of(self)
        principal.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateModelPackage"],
                resources=[
                    stack.format_arn(
                        service="sagemaker", resource="model-package-group", resource_name=self.group_name
                    ),
                    stack.format_arn(
                        service="sagemaker", resource="model-package", resource_name=f"{self.group_name}/*"
                    ),
                ],
            )
        )
