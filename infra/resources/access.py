"""Least-privilege policy statements with explicit actions (no ``s3:GetObject*``-style groups).

The roles of the jobs get customer-managed policies built from these, scoped to a bucket prefix,
one object, one key or one repository.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

_READ = ["s3:GetObject", "s3:GetObjectVersion"]
_WRITE = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]


def _list(bucket: s3.IBucket, prefix: str) -> list[iam.PolicyStatement]:
    """ListBucket under ``prefix``, and GetBucketLocation in a statement of its own: its requests carry no
    ``s3:prefix`` (a ListBucket key), and a condition on a key the request lacks never matches."""
    conditions = {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}} if prefix else None
    return [
        iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn], conditions=conditions),
        iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]),
    ]


def read_prefix(bucket: s3.IBucket, prefix: str = "") -> list[iam.PolicyStatement]:
    """List and read the objects under ``prefix`` ('' = the whole bucket)."""
    return [
        *_list(bucket, prefix),
        iam.PolicyStatement(actions=_READ, resources=[bucket.arn_for_objects(f"{prefix}*")]),
    ]


def write_prefix(bucket: s3.IBucket, prefix: str, *, delete: bool = False) -> list[iam.PolicyStatement]:
    """List, read and write (optionally delete) the objects under ``prefix``."""
    actions = _READ + _WRITE + (["s3:DeleteObject"] if delete else [])
    return [
        *_list(bucket, prefix),
        iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")]),
    ]


def put_prefix(bucket: s3.IBucket, prefix: str) -> list[iam.PolicyStatement]:
    """Write only (logs)."""
    return [iam.PolicyStatement(actions=_WRITE, resources=[bucket.arn_for_objects(f"{prefix}*")])]


def read_object(bucket: s3.IBucket, key: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(key)])


def use_key(key: kms.IKey) -> iam.PolicyStatement:
    """Encrypt and decrypt data with the stack's key (S3 SSE-KMS, EBS, job outputs)."""
    return iam.PolicyStatement(
        actions=[
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:DescribeKey",
        ],
        resources=[key.key_arn],
    )


def attach_volumes(key: kms.IKey) -> iam.PolicyStatement:
    """Let AWS services (EC2 for EMR, SageMaker) create grants on the key for the volumes they encrypt."""
    return iam.PolicyStatement(
        actions=["kms:CreateGrant"],
        resources=[key.key_arn],
        conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
    )


def pass_role(role: iam.IRole, service: str) -> iam.PolicyStatement:
    """iam:PassRole on one role, to the one service that receives it (``iam:PassedToService``).

    One statement per role: a statement naming several roles can name only their common service, and a
    role handed to any other service is denied (AWS's AmazonEMRFullAccessPolicy_v2 does the same, one
    PassRole statement per default EMR role).
    """
    return iam.PolicyStatement(
        actions=["iam:PassRole"],
        resources=[role.role_arn],
        conditions={"StringEquals": {"iam:PassedToService": service}},
    )


def pull_image(repository: ecr.IRepository) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(
            actions=["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            resources=[repository.repository_arn],
        ),
        # GetAuthorizationToken has no resource-level permissions.
        iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
    ]


def vpc_network_interfaces() -> iam.PolicyStatement:
    """What SageMaker needs to manage a VPC-mode job's network interfaces; these calls take no resource scope."""
    return iam.PolicyStatement(
        actions=[
            "ec2:CreateNetworkInterface",
            "ec2:CreateNetworkInterfacePermission",
            "ec2:DeleteNetworkInterface",
            "ec2:DeleteNetworkInterfacePermission",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeVpcs",
            "ec2:DescribeDhcpOptions",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
        ],
        resources=["*"],
    )


def sagemaker_logs(stack: Stack, log_groups: str, actions: tuple[str, ...] = ()) -> iam.PolicyStatement:
    """Writing a SageMaker job's CloudWatch logs, in the log groups matching ``log_groups``."""
    return iam.PolicyStatement(
        actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", *actions],
        resources=[
            stack.format_arn(
                service="logs",
                resource="log-group",
                resource_name=log_groups,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
        ],
    )
