"""Terminates the ETL cluster of an execution that was stopped, timed out or failed outside its catches.

Step Functions leaves a running EMR cluster up when an execution is stopped; idle auto-termination
would bill the whole cluster for another ``emrIdleTimeoutMinutes``. An EventBridge rule on the state
machine's ABORTED / TIMED_OUT / FAILED status invokes a small function (infra/resources/cleanup) that terminates
the clusters tagged with that execution.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.resources.cleanup.terminate_clusters import ENDED_BADLY

HANDLER_DIR = Path(__file__).resolve().parent / "cleanup"


def ended_badly_pattern(state_machine_arn: str) -> events.EventPattern:
    """Step Functions' status-change events of this state machine that need a cleanup."""
    return events.EventPattern(
        source=["aws.states"],
        detail_type=["Step Functions Execution Status Change"],
        detail={"status": list(ENDED_BADLY), "stateMachineArn": [state_machine_arn]},
    )


class ClusterCleanup(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.IStateMachine,
        key: kms.IKey,
        log_retention_days: int,
        cluster_tag: tuple[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(self, "Logs", encryption_key=key, removal_policy=RemovalPolicy.RETAIN)
        self.log_group.node.default_child.retention_in_days = log_retention_days
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="cxr-pipeline cleanup: terminate the EMR clusters of a stopped or failed execution",
        )
        clusters = stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            statements=[
                # ListClusters has no resource-level permissions.
                iam.PolicyStatement(actions=["elasticmapreduce:ListClusters"], resources=["*"]),
                iam.PolicyStatement(actions=["elasticmapreduce:DescribeCluster"], resources=[clusters]),
                iam.PolicyStatement(
                    actions=["elasticmapreduce:TerminateJobFlows"],
                    resources=[clusters],
                    conditions={"StringEquals": {f"aws:ResourceTag/{cluster_tag[0]}": cluster_tag[1]}},
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[
                        stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name=f"{self.log_group.log_group_name}:*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                ),
            ],
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="terminate_clusters.handler",
            code=lambda_.Code.from_asset(str(HANDLER_DIR), exclude=["__pycache__", "__init__.py"]),
            timeout=Duration.minutes(2),
            role=self.role,
            log_group=self.log_group,
            description="terminates the EMR clusters of a cxr-pipeline execution that ended badly",
        )
        self.function.node.add_dependency(self.policy)
        self.rule = events.Rule(
            self,
            "Rule",
            description="cxr-pipeline: an execution was stopped, timed out or failed",
            event_pattern=ended_badly_pattern(state_machine.state_machine_arn),
            targets=[targets.LambdaFunction(self.function, retry_attempts=4)],
        )
