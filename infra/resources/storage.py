"""Encrypted storage: one KMS key and the raw-data, datasets, artifacts and access-log buckets."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

# Prefixes whose objects are scratch (checkpoints, staging): expired by a lifecycle rule.
TEMPORARY_PREFIX = "tmp/"
EMR_LOG_PREFIX = "logs/emr/"


class Storage(Construct):
    """X-rays are medical data: every bucket is private, TLS-only, KMS-encrypted, versioned and logged."""

    def __init__(self, scope: Construct, construct_id: str, *, temporary_object_days: int) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
            description="cxr-pipeline: data, models, logs and job volumes",
        )
        stack = Stack.of(self)
        region = stack.region
        log_groups = f"arn:{stack.partition}:logs:{region}:{stack.account}:*"
        # CloudWatch Logs encrypts the state machine's and the VPC's log groups with this key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
            )
        )
        # Server access logs can only be delivered to an SSE-S3 bucket (S3 does not support SSE-KMS there).
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-logs",
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
        )
        self.raw = self._bucket("Raw", "raw/", temporary_object_days)
        self.datasets = self._bucket("Datasets", "datasets/", temporary_object_days)
        self.artifacts = self._bucket("Artifacts", "artifacts/", temporary_object_days)

    def _bucket(self, construct_id: str, log_prefix: str, temporary_object_days: int) -> s3.Bucket:
        return s3.Bucket(
            self,
            construct_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-temporary",
                    prefix=TEMPORARY_PREFIX,
                    expiration=Duration.days(temporary_object_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=Duration.days(90),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
        )
