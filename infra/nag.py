"""cdk-nag (AwsSolutions and HIPAA Security packs) and every acknowledged finding, each with its reason.

A new finding fails the synth (and the test that synthesizes with these packs): fix it, or add it here
with the reason it does not apply.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks
from constructs import IConstruct

from infra.pipeline.model_card import CONTENT_OBJECTS
from infra.resources.storage import EMR_LOG_PREFIX, TEMPORARY_PREFIX
from infra.stack import CxrPipelineStack
from jobs.contracts.stack_outputs import WEIGHTS_PREFIX

_PARTITION_REGION_ACCOUNT = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"


def add_nag_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), HIPAASecurityChecks(app))


def _ack(construct: IConstruct, reason: str, *finding_ids: str) -> None:
    Validations.of(construct).acknowledge(*[Acknowledgment(id=f, reason=reason) for f in finding_ids])


def _aws(rule: str) -> str:
    return f"AwsSolutions::AwsSolutions-{rule}"


def _hipaa(rule: str) -> str:
    return f"HIPAA.Security::HIPAA.Security-{rule}"


def _objects(bucket: s3.IBucket, prefix: str, rest: str = "*") -> str:
    stack = Stack.of(bucket)
    logical_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))
    return _aws(f"IAM5[Resource::<{logical_id}.Arn>/{prefix}{rest}]")


def acknowledge_findings(stack: CxrPipelineStack) -> None:
    """Every finding the packs report on this stack that does not apply, with the reason."""
    storage, network, cluster, jobs, pipeline = (
        stack.storage,
        stack.network,
        stack.cluster,
        stack.jobs,
        stack.pipeline,
    )

    for bucket in (storage.raw, storage.datasets, storage.artifacts, storage.access_logs):
        _ack(
            bucket,
            "Single-region research pipeline: raw data stays with its owner, datasets and models are "
            "rebuilt from it; versioning protects against deletion. Enable replication per deployment if "
            "the data-use agreement requires a second region.",
            _hipaa("S3BucketReplicationEnabled"),
        )
    _ack(
        storage.access_logs,
        "S3 server access logs can only be delivered to an SSE-S3 bucket (AWS does not support "
        "SSE-KMS on a log target bucket); it holds access logs, not X-rays.",
        _hipaa("S3DefaultEncryptionKMS"),
    )

    for subnet in network.vpc.public_subnets:
        _ack(
            subnet,
            "EMR nodes reach PyPI (bootstrap pip install) and EMR's control plane without a billed NAT "
            "gateway; EMR-managed security groups admit no inbound traffic from the internet.",
            _hipaa("VPCSubnetAutoAssignPublicIpDisabled"),
            _hipaa("VPCNoUnrestrictedRouteToIGW"),
        )
    _ack(
        network.vpc,
        "The default security group is used by nothing; closing it needs a custom-resource Lambda.",
        _hipaa("VPCDefaultSecurityGroupClosed"),
    )

    _ack(
        cluster.service_role,
        "AmazonEMRServicePolicy_v2 is AWS's least-privilege EMR service policy: scoped by the "
        "for-use-with-amazon-emr-managed-policies tag on the subnet; a hand-made copy would drift from EMR.",
        _aws("IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2]"),
        _hipaa("IAMNoInlinePolicy"),
    )
    _ack(
        cluster.instance_policy,
        "The ETL reads every raw source, writes datasets/<key>/ and EMR logs: prefixes whose "
        "objects are named at run time.",
        _objects(storage.raw, ""),
        _objects(storage.datasets, "datasets/"),
        _objects(storage.artifacts, EMR_LOG_PREFIX),
    )
    _ack(
        jobs.policy,
        "SageMaker jobs read datasets/ and the staged weights/, and write runs/<experiment>/<run id>/ and tmp/ checkpoints: object "
        "names are made per run. PutMetricData, GetAuthorizationToken (and ENI calls in VPC mode) have no "
        "resource-level permissions; the log groups are SageMaker's own /aws/sagemaker/*.",
        _objects(storage.datasets, "datasets/"),
        _objects(storage.artifacts, WEIGHTS_PREFIX),
        _objects(storage.artifacts, "runs/"),
        _objects(storage.artifacts, TEMPORARY_PREFIX),
        _aws("IAM5[Resource::*]"),
        _aws(
            "IAM5[Resource::"
            + _PARTITION_REGION_ACCOUNT.format(service="logs", resource="log-group:/aws/sagemaker/*")
            + "]"
        ),
    )
    cleanup = stack.cleanup
    _ack(
        cleanup.policy,
        "ListClusters has no resource-level permissions; DescribeCluster reads the tags of cxr-etl-* "
        "clusters whose ids exist only at run time; TerminateJobFlows is limited by the project tag "
        "condition; the log stream names under the function's own log group are chosen by Lambda.",
        _aws("IAM5[Resource::*]"),
        _aws(
            "IAM5[Resource::"
            + _PARTITION_REGION_ACCOUNT.format(service="elasticmapreduce", resource="cluster/*")
            + "]"
        ),
        _aws(
            "IAM5[Resource::"
            + _PARTITION_REGION_ACCOUNT.format(
                service="logs",
                resource=f"log-group:<{stack.resolve(stack.get_logical_id(cleanup.log_group.node.default_child))}>:*",
            )
            + "]"
        ),
    )
    _ack(
        cleanup.function,
        "A cleanup function invoked a few times a month by one EventBridge rule (which retries 4 times): "
        "reserved concurrency would take from a new account's small pool; it calls only the EMR API, "
        "reachable without a VPC (the stack has no NAT gateway); a failed invocation is in its log group.",
        _hipaa("LambdaConcurrency"),
        _hipaa("LambdaDLQ"),
        _hipaa("LambdaInsideVPC"),
    )
    _ack(
        stack.prediction.policy,
        "Batch prediction reads models under runs/ and writes predictions/: object names are made per "
        "request. GetAuthorizationToken (and ENI calls in VPC mode) have no resource-level permissions; "
        "the log groups are SageMaker's own /aws/sagemaker/ProcessingJobs*.",
        _objects(storage.artifacts, "runs/"),
        _objects(storage.artifacts, "predictions/"),
        _aws("IAM5[Resource::*]"),
        _aws(
            "IAM5[Resource::"
            + _PARTITION_REGION_ACCOUNT.format(
                service="logs", resource="log-group:/aws/sagemaker/ProcessingJobs*"
            )
            + "]"
        ),
    )
    _ack(
        pipeline.state_machine,
        "Each execution registers its models as new versions of the stack's one model package group; "
        "a version's ARN is made by SageMaker at registration.",
        _aws(
            "IAM5[Resource::"
            + _PARTITION_REGION_ACCOUNT.format(
                service="sagemaker", resource=f"model-package/{pipeline.registry.group_name}/*"
            )
            + "]"
        ),
    )
    _ack(
        pipeline.state_machine,
        "Each execution makes one SageMaker Model Card per model, named per run with the cxr- prefix, "
        "from the sagemaker_model_card.json its evaluation wrote under runs/<experiment>/<run>/.",
        _objects(storage.artifacts, CONTENT_OBJECTS, rest=""),
        _aws(
            "IAM5[Resource::"
            + _PARTITION_REGION_ACCOUNT.format(service="sagemaker", resource="model-card/cxr-*")
            + "]"
        ),
    )
    _ack(
        pipeline.state_machine,
        "The state machine's policy is generated by CDK for its tasks: EMR clusters and "
        "SageMaker jobs are created per execution (jobs are limited to the cxr- name prefix); X-Ray and "
        "log delivery have no resource-level permissions.",
        _hipaa("IAMNoInlinePolicy"),
        _aws("IAM5[Resource::*]"),
        _aws(
            "IAM5[Resource::"
            + _PARTITION_REGION_ACCOUNT.format(service="elasticmapreduce", resource="cluster/*")
            + "]"
        ),
        _aws(
            "IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/aws-service-role/"
            "elasticmapreduce.amazonaws.com*/AWSServiceRoleForEMRCleanup*]"
        ),
        *[
            _aws(
                "IAM5[Resource::"
                + _PARTITION_REGION_ACCOUNT.format(service="sagemaker", resource=f"{kind}/cxr-*")
                + "]"
            )
            for kind in ("training-job", "processing-job")
        ],
    )
