"""The ETL on a transient EMR cluster: create, run `cxr etl` as one step for the dataset and one per
external test set (each only when its manifest is missing), terminate on success and on failure.

Step Functions does not terminate a cluster when an execution fails or is stopped: every task after
the cluster exists catches all errors into a terminate step, and EMR's idle auto-termination is the
backstop for a stopped execution.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aws_cdk import Aws, Duration, Size
from aws_cdk import aws_emr as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.pipeline.fragment import Fragment, fail_with_cause
from infra.resources import access
from infra.resources.cleanup.terminate_clusters import CLUSTER_NAME_PREFIX, EXECUTION_TAG
from infra.resources.network import EMR_MANAGED_POLICY_TAG, Network
from infra.resources.storage import EMR_LOG_PREFIX, Storage
from infra.settings import PipelineSettings
from jobs.experiment.paths import ROOT
from jobs.plan.pipeline_input import ETL_COMMAND

ETL_SCRIPT = ROOT / "jobs" / "etl" / "spark_job.py"
ETL_REQUIREMENTS = ROOT / "jobs" / "etl" / "emr-requirements.txt"
ETL_REQUIREMENTS_BOOTSTRAP = ROOT / "jobs" / "etl" / "emr-bootstrap.sh"
ETL_CODE_BOOTSTRAP = Path(__file__).resolve().parent / "emr" / "install-etl-code.sh"

# Retried on EMR calls after creation: API throttling and EMR's internal errors are transient.
_TRANSIENT_EMR_ERRORS = ["EMR.AmazonElasticMapReduceException", "ThrottlingException"]
# CreateCluster retries throttling only: a generic EMR error may come after the cluster exists, and a
# retry would then start (and bill) a second one.
_CREATE_RETRY_ERRORS = ["ThrottlingException"]
# Every cluster carries these; the v2 managed policy acts only on clusters with its tag, termination by
# the state machine and the cleanup function only on clusters with the project tag.
PROJECT_TAG = ("project", "cxr-pipeline")
# The services RunJobFlow hands each role to, as AWS's AmazonEMRFullAccessPolicy_v2 allows passing them
# (its PassRoleForElasticMapReduce, PassRoleForEC2 and PassRoleForAutoScaling statements): the service role
# to EMR, the nodes' role (the instance profile's) to EC2, the automatic-scaling role to Application Auto
# Scaling. A PassRole that names another service is denied, and the run ends in ClusterStartFailed.
EMR_SERVICE = "elasticmapreduce.amazonaws.com"
EC2_SERVICE = "ec2.amazonaws.com"
AUTO_SCALING_SERVICE = "application-autoscaling.amazonaws.com"
# Actions on an existing cluster, which EMR authorizes against the cluster's tags.
_CLUSTER_ACTIONS = {
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:TerminateJobFlows",
    "elasticmapreduce:AddJobFlowSteps",
    "elasticmapreduce:DescribeStep",
    "elasticmapreduce:CancelSteps",
}


# Spark takes the whole node; PySpark runs the node's Python 3.7 (where the bootstrap installed the pins).
_SPARK_CONFIGURATIONS = [
    tasks.EmrCreateCluster.ConfigurationProperty(
        classification="spark", properties={"maximizeResourceAllocation": "true"}
    ),
    tasks.EmrCreateCluster.ConfigurationProperty(
        classification="spark-env",
        configurations=[
            tasks.EmrCreateCluster.ConfigurationProperty(
                classification="export", properties={"PYSPARK_PYTHON": "/usr/bin/python3"}
            )
        ],
    ),
]


class _CreateCluster(tasks.EmrCreateCluster):
    """CDK's CreateCluster task, whose iam:PassRole grants name the service each role is passed to.

    CDK grants PassRole on the service role and the nodes' role in one statement (and on the auto-scaling
    role in another) without ``iam:PassedToService``; a condition added to that shared statement could name
    one service for two roles that go to two services. So its PassRole statements are replaced by one per
    role (``access.pass_role``). ``taskPolicies`` is read when the state joins the state machine; jsii lets a
    Python subclass override it.
    """

    @property
    def _task_policies(self) -> list[iam.PolicyStatement]:
        kept = [s for s in super()._task_policies or [] if s.actions != ["iam:PassRole"]]
        return kept + [
            access.pass_role(self.service_role, EMR_SERVICE),
            access.pass_role(self.cluster_role, EC2_SERVICE),
            access.pass_role(self.auto_scaling_role, AUTO_SCALING_SERVICE),
        ]


def _package_directory(staging: Path) -> Path:
    """What `--py-files` ships: exactly jobs/__init__.py and jobs/etl/*.py (no TensorFlow-side code)."""
    (staging / "jobs" / "etl").mkdir(parents=True)
    shutil.copy2(ROOT / "jobs" / "__init__.py", staging / "jobs" / "__init__.py")
    for source in sorted((ROOT / "jobs" / "etl").glob("*.py")):
        shutil.copy2(source, staging / "jobs" / "etl" / source.name)
    return staging


class EtlCluster(Construct):
    """Everything the cluster needs that is not a state: code assets, roles, security configuration."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineSettings,
        storage: Storage,
    ) -> None:
        super().__init__(scope, construct_id)
        self.script = s3_assets.Asset(self, "Script", path=str(ETL_SCRIPT))
        with tempfile.TemporaryDirectory(prefix="cxr-etl-package-") as staging:
            # A directory asset is zipped at synth: the zip's root holds jobs/, as --py-files needs.
            self.package = s3_assets.Asset(self, "Package", path=str(_package_directory(Path(staging))))
        self.requirements = s3_assets.Asset(self, "Requirements", path=str(ETL_REQUIREMENTS))
        self.requirements_bootstrap = s3_assets.Asset(
            self, "RequirementsBootstrap", path=str(ETL_REQUIREMENTS_BOOTSTRAP)
        )
        self.code_bootstrap = s3_assets.Asset(self, "CodeBootstrap", path=str(ETL_CODE_BOOTSTRAP))
        self.log_uri = storage.artifacts.s3_url_for_object(EMR_LOG_PREFIX)

        assets = (
            self.script,
            self.package,
            self.requirements,
            self.requirements_bootstrap,
            self.code_bootstrap,
        )
        self.instance_role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="EMR nodes of the ETL: read raw data and code, write datasets and logs",
        )
        # EMR's JobFlowRole names an instance profile; CDK makes one only for a role it creates itself.
        self.instance_profile = iam.CfnInstanceProfile(
            self,
            "InstanceProfile",
            roles=[self.instance_role.role_name],
            instance_profile_name=self.instance_role.role_name,
        )
        self.instance_policy = iam.ManagedPolicy(
            self,
            "InstancePolicy",
            roles=[self.instance_role],
            statements=[
                *access.read_prefix(storage.raw),
                *access.write_prefix(storage.datasets, "datasets/", delete=True),
                *access.put_prefix(storage.artifacts, EMR_LOG_PREFIX),
                *[access.read_object(asset.bucket, asset.s3_object_key) for asset in assets],
                access.use_key(storage.key),
            ],
        )

        self.service_role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=iam.ServicePrincipal("elasticmapreduce.amazonaws.com"),
            description="EMR service role: the tag-scoped AmazonEMRServicePolicy_v2",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEMRServicePolicy_v2")
            ],
        )
        iam.ManagedPolicy(
            self,
            "ServicePolicy",
            roles=[self.service_role],
            statements=[
                # EBS encryption with the stack's key: EMR creates grants for the volumes it attaches.
                access.attach_volumes(storage.key),
                iam.PolicyStatement(
                    actions=["kms:ListGrants", "kms:RevokeGrant", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
                    resources=[storage.key.key_arn],
                ),
                access.use_key(storage.key),
                # EMR hands the nodes' role to EC2 (the v2 policy allows this only for EMR_EC2_DefaultRole).
                access.pass_role(self.instance_role, EC2_SERVICE),
            ],
        )
        # The cluster has no automatic scaling policy: this role exists because EMR requires one and
        # holds no permission (CDK would otherwise create one with an AWS managed policy).
        self.auto_scaling_role = iam.Role(
            self,
            "AutoScalingRole",
            description="EMR automatic scaling: unused, no permissions",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("elasticmapreduce.amazonaws.com"),
                iam.ServicePrincipal("application-autoscaling.amazonaws.com"),
            ),
        )
        self.security_configuration = emr.CfnSecurityConfiguration(
            self,
            "SecurityConfiguration",
            security_configuration=_security_configuration(
                storage.key.key_arn, settings.emrInTransitCertificatesUri
            ),
        )


def _security_configuration(key_arn: str, certificates_uri: str) -> dict:
    encryption: dict = {
        "EnableAtRestEncryption": True,
        "AtRestEncryptionConfiguration": {
            "S3EncryptionConfiguration": {"EncryptionMode": "SSE-KMS", "AwsKmsKey": key_arn},
            "LocalDiskEncryptionConfiguration": {
                "EncryptionKeyProviderType": "AwsKms",
                "AwsKmsKey": key_arn,
                "EnableEbsEncryption": True,
            },
        },
        "EnableInTransitEncryption": bool(certificates_uri),
    }
    if certificates_uri:
        encryption["InTransitEncryptionConfiguration"] = {
            "TLSCertificateConfiguration": {"CertificateProviderType": "PEM", "S3Object": certificates_uri}
        }
    return {"EncryptionConfiguration": encryption}


class EmrEtl(Fragment):
    """Create cluster -> ETL step -> one step per missing external set -> terminate; any failure after
    creation -> terminate -> Fail.

    Reads what the pipeline found before: ``$.existingDataset.count`` (the dataset's manifest) and
    ``$.externalDatasets.counts`` (each external set's, in the order of ``$.externals``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineSettings,
        cluster: EtlCluster,
        network: Network,
    ) -> None:
        super().__init__(scope, construct_id)
        create = self._create_cluster(settings, cluster, network)
        step = self._run_step(settings, "RunEtlStep", "$.cluster.ClusterId", "$.etl.stepArguments", "cxr-etl")
        external_step = self._run_step(
            settings,
            "RunExternalEtlStep",
            "$.clusterId",
            "$.external.etl.stepArguments",
            sfn.JsonPath.format("cxr-etl-external-{}", sfn.JsonPath.string_at("$.external.name")),
        )
        external_steps = self._external_steps(external_step)
        terminate = self._terminate("TerminateCluster")
        terminate_after_failure = self._terminate("TerminateClusterAfterFailure")
        etl_failed = fail_with_cause(
            self,
            "EtlFailed",
            "The ETL failed on EMR cluster {} (terminated). Step logs: {}{}/steps/. Cause: {}",
            "$.cluster.ClusterId",
            cluster.log_uri,
            "$.cluster.ClusterId",
            "$.error.Cause",
        )
        termination_failed = fail_with_cause(
            self,
            "ClusterTerminationFailed",
            "Could not terminate EMR cluster {}: terminate it in the EMR console (idle auto-termination "
            "stops it after " + str(settings.emrIdleTimeoutMinutes) + " minutes otherwise). Cause: {}",
            "$.cluster.ClusterId",
            "$.terminationError.Cause",
        )
        start_failed = fail_with_cause(
            self,
            "ClusterStartFailed",
            "The EMR cluster did not start (bootstrap logs under {}). Cause: {}",
            cluster.log_uri,
            "$.error.Cause",
        )

        create.add_retry(
            errors=_CREATE_RETRY_ERRORS, interval=Duration.seconds(30), max_attempts=3, backoff_rate=2.0
        )
        for task in (step, external_step, terminate, terminate_after_failure):
            task.add_retry(
                errors=_TRANSIENT_EMR_ERRORS, interval=Duration.seconds(30), max_attempts=3, backoff_rate=2.0
            )
        # A cluster that fails to start terminates itself (bootstrap or provisioning failure).
        create.add_catch(start_failed, errors=["States.ALL"], result_path="$.error")
        step.add_catch(terminate_after_failure, errors=["States.ALL"], result_path="$.error")
        # A failing external step fails its Map iteration, and with it the Map.
        external_steps.add_catch(terminate_after_failure, errors=["States.ALL"], result_path="$.error")
        terminate_after_failure.add_catch(
            termination_failed, errors=["States.ALL"], result_path="$.terminationError"
        )
        terminate.add_catch(termination_failed, errors=["States.ALL"], result_path="$.terminationError")
        terminate_after_failure.next(etl_failed)
        build_dataset = (
            sfn.Choice(self, "BuildDataset?")
            .when(sfn.Condition.number_equals("$.existingDataset.count", 0), step)
            .otherwise(external_steps)
        )
        step.next(external_steps)
        create.next(build_dataset)
        external_steps.next(terminate)
        self.bounds(create, [terminate])
        self._tasks = (create, step, external_step, terminate, terminate_after_failure)

    def _external_steps(self, step: tasks.EmrAddStep) -> sfn.Map:
        """``step`` for each external set whose manifest count is 0, one at a time (EMR runs one step
        at a time anyway; a queued step would spend its timeout waiting)."""
        each = sfn.Map(
            self,
            "RunExternalEtlSteps",
            items_path="$.externals",
            item_selector={
                "external": sfn.JsonPath.string_at("$$.Map.Item.Value"),
                "clusterId": sfn.JsonPath.string_at("$.cluster.ClusterId"),
                "manifestCount": sfn.JsonPath.array_get_item(
                    sfn.JsonPath.list_at("$.externalDatasets.counts"),
                    sfn.JsonPath.number_at("$$.Map.Item.Index"),
                ),
            },
            max_concurrency=1,
            result_path=sfn.JsonPath.DISCARD,
        )
        each.item_processor(
            sfn.Choice(self, "BuildExternalDataset?")
            .when(sfn.Condition.number_equals("$.manifestCount", 0), step)
            .otherwise(sfn.Pass(self, "ExternalDatasetExists"))
        )
        return each

    def _create_cluster(
        self, settings: PipelineSettings, cluster: EtlCluster, network: Network
    ) -> _CreateCluster:
        """The transient cluster: the paper's nodes, both bootstrap actions, tags, idle auto-termination."""
        return _CreateCluster(
            self,
            "CreateCluster",
            name=sfn.JsonPath.format(
                CLUSTER_NAME_PREFIX + "{}-{}",
                sfn.JsonPath.string_at("$.experiment"),
                sfn.JsonPath.string_at("$.runId"),
            ),
            release_label=settings.emrReleaseLabel,
            applications=[tasks.EmrCreateCluster.ApplicationConfigProperty(name="Spark")],
            instances=tasks.EmrCreateCluster.InstancesConfigProperty(
                instance_groups=[
                    _instance_group(
                        "Master",
                        tasks.EmrCreateCluster.InstanceRoleType.MASTER,
                        settings.emrMasterInstanceType,
                        settings.emrMasterInstanceCount,
                        settings.emrCoreVolumeSizeGb,
                    ),
                    _instance_group(
                        "Core",
                        tasks.EmrCreateCluster.InstanceRoleType.CORE,
                        settings.emrCoreInstanceType,
                        settings.emrCoreInstanceCount,
                        settings.emrCoreVolumeSizeGb,
                    ),
                ],
                ec2_subnet_id=network.emr_subnet.subnet_id,
                termination_protected=False,
            ),
            bootstrap_actions=[
                _bootstrap(
                    "install-etl-packages",
                    cluster.requirements_bootstrap,
                    [cluster.requirements.s3_object_url],
                ),
                _bootstrap(
                    "install-etl-code",
                    cluster.code_bootstrap,
                    [cluster.package.s3_object_url, cluster.script.s3_object_url, ETL_COMMAND, Aws.REGION],
                ),
            ],
            configurations=_SPARK_CONFIGURATIONS,
            auto_termination_policy_idle_timeout=Duration.minutes(settings.emrIdleTimeoutMinutes),
            cluster_role=cluster.instance_role,
            # Immutable here: CDK would grant it PassRole on the nodes' role without naming the service;
            # EtlCluster grants it with iam:PassedToService=ec2.amazonaws.com.
            service_role=cluster.service_role.without_policy_updates(),
            auto_scaling_role=cluster.auto_scaling_role,
            security_configuration=cluster.security_configuration.ref,
            log_uri=cluster.log_uri,
            visible_to_all_users=True,
            tags={
                PROJECT_TAG[0]: PROJECT_TAG[1],
                EMR_MANAGED_POLICY_TAG: "true",
                # What the cleanup function (infra/resources/cleanup) looks for when the execution ends badly.
                EXECUTION_TAG: sfn.JsonPath.string_at("$$.Execution.Id"),
            },
            result_selector={"ClusterId.$": "$.ClusterId"},
            result_path="$.cluster",
        )

    def _run_step(
        self, settings: PipelineSettings, state_id: str, cluster_path: str, arguments_path: str, name: str
    ) -> tasks.EmrAddStep:
        """`cxr etl` with the input's arguments, as one step; a failed step leaves the cluster to us."""
        return tasks.EmrAddStep(
            self,
            state_id,
            cluster_id=sfn.JsonPath.string_at(cluster_path),
            name=name,
            jar="command-runner.jar",
            args=sfn.JsonPath.list_at(arguments_path),
            action_on_failure=tasks.ActionOnFailure.CONTINUE,
            result_path=sfn.JsonPath.DISCARD,
            # States.Timeout is caught like any failure, so a hung step ends with the cluster.
            task_timeout=sfn.Timeout.duration(Duration.minutes(settings.etlStepTimeoutMinutes)),
        )

    def _terminate(self, state_id: str) -> tasks.EmrTerminateCluster:
        return tasks.EmrTerminateCluster(
            self,
            state_id,
            cluster_id=sfn.JsonPath.string_at("$.cluster.ClusterId"),
            result_path=sfn.JsonPath.DISCARD,
        )

    def restrict_permissions(self, principal: iam.IGrantable) -> None:
        """Narrows what CDK grants the state machine for these tasks: only clusters with the project tag can
        be stepped into or terminated (each role passes to its own service already: ``_CreateCluster``).

        CDK's CreateCluster statement allows RunJobFlow, DescribeCluster and TerminateJobFlows on "*" in
        one statement, so its condition can only be "if the key exists" (RunJobFlow has no resource tag
        yet); the Deny closes it for clusters without the tag.
        """
        tag_condition = {f"aws:ResourceTag/{PROJECT_TAG[0]}": PROJECT_TAG[1]}
        for task in self._tasks:
            for statement in task._task_policies:
                if "iam:PassRole" in statement.actions:
                    continue
                if set(statement.actions) <= _CLUSTER_ACTIONS and "*" not in statement.resources:
                    statement.add_condition("StringEquals", tag_condition)
                elif "elasticmapreduce:RunJobFlow" in statement.actions:
                    # RunJobFlow carries the tag in the request, later calls find it on the cluster.
                    statement.add_condition(
                        "StringEqualsIfExists",
                        {f"aws:RequestTag/{PROJECT_TAG[0]}": PROJECT_TAG[1], **tag_condition},
                    )
        principal.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=sorted(
                    _CLUSTER_ACTIONS - {"elasticmapreduce:DescribeCluster", "elasticmapreduce:DescribeStep"}
                ),
                resources=["*"],
                conditions={"StringNotEquals": tag_condition},
            )
        )


def _instance_group(
    name: str, role: tasks.EmrCreateCluster.InstanceRoleType, instance_type: str, count: int, volume_gb: int
) -> tasks.EmrCreateCluster.InstanceGroupConfigProperty:
    return tasks.EmrCreateCluster.InstanceGroupConfigProperty(
        name=name,
        instance_role=role,
        instance_type=instance_type,
        instance_count=count,
        market=tasks.EmrCreateCluster.InstanceMarket.ON_DEMAND,
        ebs_configuration=tasks.EmrCreateCluster.EbsConfigurationProperty(
            ebs_optimized=True,
            ebs_block_device_configs=[
                tasks.EmrCreateCluster.EbsBlockDeviceConfigProperty(
                    volume_specification=tasks.EmrCreateCluster.VolumeSpecificationProperty(
                        volume_size=Size.gibibytes(volume_gb),
                        volume_type=tasks.EmrCreateCluster.EbsBlockDeviceVolumeType.GP2,
                    ),
                    volumes_per_instance=1,
                )
            ],
        ),
    )


def _bootstrap(
    name: str, script: s3_assets.Asset, args: list[str]
) -> tasks.EmrCreateCluster.BootstrapActionConfigProperty:
    return tasks.EmrCreateCluster.BootstrapActionConfigProperty(
        name=name,
        script_bootstrap_action=tasks.EmrCreateCluster.ScriptBootstrapActionConfigProperty(
            path=script.s3_object_url, args=args
        ),
    )
