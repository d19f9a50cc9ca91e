"""The synthesized template: storage, cluster settings, roles, checks (one synth per process)."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
from aws_cdk.assertions import Match, Template

from tests.cdk_support import VARIANT, all_states, definition, resources, synthesize


@pytest.fixture(scope="module")
def synth():
    return synthesize()


@pytest.fixture(scope="module")
def template(synth) -> Template:
    return Template.from_json(synth.template)


@pytest.fixture(scope="module")
def states(synth) -> dict:
    return all_states(definition(synth.template)["States"])


@pytest.fixture(scope="module")
def variant():
    """One more synth with changed context: 3 core nodes, spot, network isolation, VPC mode."""
    return synthesize(nag=False, **VARIANT)


def test_nag_packs_report_nothing_unacknowledged(synth):
    """AwsSolutions + HIPAA Security ran (the synth raises on an unacknowledged finding); no error left."""
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    plugins = {p["pluginName"]: p for p in report["pluginReports"]}
    assert {"AwsSolutions", "HIPAA.Security"} <= set(plugins)
    for plugin in plugins.values():
        assert plugin["conclusion"] == "success" and plugin["violations"] == [], plugin["violations"]
    acknowledged = [v for p in plugins.values() for v in p.get("suppressedViolations", [])]
    assert acknowledged, "no acknowledged finding at all: did the packs run?"
    assert all(len(v["reason"]) > 40 for v in acknowledged), "every acknowledgement needs a real reason"


def test_cfn_lint_reports_nothing(synth):
    """cfn-lint, with the checks .cfnlintrc ignores (and says why), finds nothing in the template."""
    import yaml
    from cfnlint.api import ManualArgs, lint

    from tests.cdk_support import ROOT

    ignored = yaml.safe_load((ROOT / ".cfnlintrc").read_text())["ignore_checks"]
    path = next(synth.outdir.glob("*.template.json"))
    matches = lint(path.read_text(), config=ManualArgs(ignore_checks=ignored, regions=["us-east-1"]))
    assert not matches, "\n".join(str(m) for m in matches)


def test_every_data_bucket_uses_the_stack_key_and_is_private(template):
    """Raw, datasets and artifacts: SSE-KMS with the stack's key, versioned, public access blocked, logged."""
    buckets = template.find_resources(
        "AWS::S3::Bucket",
        {
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": {
                                    "Fn::GetAtt": [Match.string_like_regexp("StorageKey"), "Arn"]
                                },
                            },
                        }
                    ]
                }
            }
        },
    )
    assert len(buckets) == 3
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
        assert "LoggingConfiguration" in props
        assert any(
            r.get("Prefix") == "tmp/" and r.get("ExpirationInDays")
            for r in props["LifecycleConfiguration"]["Rules"]
        )


def test_every_bucket_denies_plain_http(template):
    """Each of the four buckets has a policy denying aws:SecureTransport=false."""
    policies = template.find_resources(
        "AWS::S3::BucketPolicy",
        {
            "Properties": {
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                            )
                        ]
                    )
                }
            }
        },
    )
    assert len(policies) == 4


def test_key_rotation_is_on(template):
    """The stack's KMS key rotates."""
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_cluster_runs_emr_5_32_with_spark_and_auto_termination(states):
    """The paper's release, Spark, an idle auto-termination backstop, the security configuration, S3 logs."""
    cluster = states["CreateCluster"]["Parameters"]
    assert cluster["ReleaseLabel"] == "emr-5.32.0"
    assert cluster["Applications"] == [{"Name": "Spark"}]
    assert cluster["AutoTerminationPolicy"]["IdleTimeout"] == 30 * 60
    assert cluster["SecurityConfiguration"].startswith("<Ref:EtlClusterSecurityConfiguration")
    assert cluster["LogUri"].endswith("/logs/emr/")


def test_cluster_instance_types_and_counts_follow_the_paper(states):
    """Master 1x m5.xlarge, core 7x m5.2xlarge, on demand."""
    groups = {
        g["InstanceRole"]: g for g in states["CreateCluster"]["Parameters"]["Instances"]["InstanceGroups"]
    }
    assert (groups["MASTER"]["InstanceType"], groups["MASTER"]["InstanceCount"]) == ("m5.xlarge", 1)
    assert (groups["CORE"]["InstanceType"], groups["CORE"]["InstanceCount"]) == ("m5.2xlarge", 7)


def test_cluster_nodes_get_an_instance_profile_of_the_instance_role(template, states):
    """JobFlowRole names an instance profile that exists and holds the nodes' role."""
    job_flow_role = states["CreateCluster"]["Parameters"]["JobFlowRole"]
    (profile,) = resources(template.to_json(), "AWS::IAM::InstanceProfile").values()
    role_ref = {"Ref": job_flow_role.removeprefix("<Ref:").removesuffix(">")}
    assert profile["Properties"] == {"InstanceProfileName": role_ref, "Roles": [role_ref]}


def test_bootstrap_installs_pinned_packages_then_the_etl_code(states):
    """Two bootstrap actions: jobs/etl/emr-bootstrap.sh with emr-requirements.txt, then the job code."""
    actions = states["CreateCluster"]["Parameters"]["BootstrapActions"]
    assert [a["Name"] for a in actions] == ["install-etl-packages", "install-etl-code"]
    assert actions[0]["ScriptBootstrapAction"]["Args"][0].endswith(".txt")
    package, script, command, region = actions[1]["ScriptBootstrapAction"]["Args"]
    assert package.endswith(".zip") and script.endswith(".py") and command == "/home/hadoop/cxr/run-etl"
    assert region == "<Ref:AWS::Region>"


def test_security_configuration_encrypts_s3_and_local_disks_with_the_key(template):
    """At rest: SSE-KMS for EMRFS and KMS local-disk + EBS encryption; in transit off without certificates."""
    (config,) = resources(template.to_json(), "AWS::EMR::SecurityConfiguration").values()
    encryption = config["Properties"]["SecurityConfiguration"]["EncryptionConfiguration"]
    at_rest = encryption["AtRestEncryptionConfiguration"]
    assert at_rest["S3EncryptionConfiguration"]["EncryptionMode"] == "SSE-KMS"
    assert at_rest["LocalDiskEncryptionConfiguration"]["EnableEbsEncryption"] is True
    assert encryption["EnableInTransitEncryption"] is False


def test_training_job_uses_p3_8xlarge_and_the_key_for_volume_and_output(states):
    """ml.p3.8xlarge x1, VolumeKmsKeyId and output KmsKeyId = the stack's key, checkpoints, max runtime."""
    train = states["Train"]["Parameters"]
    assert (train["ResourceConfig"]["InstanceType"], train["ResourceConfig"]["InstanceCount"]) == (
        "ml.p3.8xlarge",
        1,
    )
    assert train["ResourceConfig"]["VolumeKmsKeyId"].startswith("<GetAtt:StorageKey")
    assert train["OutputDataConfig"]["KmsKeyId"].startswith("<GetAtt:StorageKey")
    assert train["CheckpointConfig"] == {"S3Uri.$": "$.item.checkpointUri"}
    assert train["EnableManagedSpotTraining"] is False and train["EnableNetworkIsolation"] is True


def test_evaluation_and_report_jobs_encrypt_volume_and_output(states):
    """Both processing jobs: KMS for the volume and the output."""
    for name in ("Evaluate", "Report"):
        job = states[name]["Parameters"]
        assert job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"].startswith("<GetAtt:StorageKey")
        assert job["ProcessingOutputConfig"]["KmsKeyId"].startswith("<GetAtt:StorageKey")


def test_metric_definitions_match_the_training_metric_lines(states):
    """SageMaker's regexes read back exactly what jobs.contracts.metric_lines prints."""
    import re

    from jobs.contracts.metric_lines import METRIC_NAMES, format_metric_line

    definitions = states["Train"]["Parameters"]["AlgorithmSpecification"]["MetricDefinitions"]
    assert [d["Name"] for d in definitions] == list(METRIC_NAMES)
    for d in definitions:
        line = format_metric_line(d["Name"], 0.0123)
        assert [float(m) for m in re.findall(d["Regex"], f"noise {line} noise")] == [0.0123]


def test_context_changes_the_template(states, variant):
    """3 core nodes, spot, isolation and VPC mode from context all reach the definition."""
    changed = all_states(definition(variant.template)["States"])
    core = [
        g
        for g in changed["CreateCluster"]["Parameters"]["Instances"]["InstanceGroups"]
        if g["InstanceRole"] == "CORE"
    ]
    assert core[0]["InstanceCount"] == 3
    train = changed["Train"]["Parameters"]
    assert train["EnableManagedSpotTraining"] is True
    assert train["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600, "MaxWaitTimeInSeconds": 21600}
    assert train["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    assert changed != states


def test_network_isolation_and_vpc_reach_every_job_when_enabled(variant):
    """With networkIsolation and trainingInVpc: all three jobs isolated, in the isolated subnets."""
    changed = all_states(definition(variant.template)["States"])
    assert changed["Train"]["Parameters"]["EnableNetworkIsolation"] is True
    assert len(changed["Train"]["Parameters"]["VpcConfig"]["Subnets"]) == 2
    for name in ("Evaluate", "Report"):
        network = changed[name]["Parameters"]["NetworkConfig"]
        assert network["EnableNetworkIsolation"] is True and network["VpcConfig"]["SecurityGroupIds"]


def test_state_machine_logs_all_to_an_encrypted_group_and_traces(template):
    """Logging level ALL with execution data, X-Ray tracing; the log group has the key and a retention."""
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
            "TracingConfiguration": {"Enabled": True},
        },
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("StorageKey"), "Arn"]}, "RetentionInDays": 365},
    )


def test_no_aws_managed_policy_except_the_emr_service_policy(template):
    """Only the EMR service role carries an AWS managed policy (the tag-scoped v2 one)."""
    managed = [
        arn
        for role in resources(template.to_json(), "AWS::IAM::Role").values()
        for arn in role["Properties"].get("ManagedPolicyArns", [])
    ]
    assert [json.dumps(a) for a in managed] == [
        json.dumps(
            {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":iam::aws:policy/service-role/AmazonEMRServicePolicy_v2",
                    ],
                ]
            }
        )
    ]


def test_no_policy_grants_a_whole_service(template):
    """No statement allows "*" or "<service>:*" actions: every role lists the calls it makes."""
    kinds = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
    actions = [
        action
        for kind in kinds
        for policy in resources(template.to_json(), kind).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    assert actions and not [a for a in actions if a == "*" or a.endswith(":*")]


def test_outputs_name_the_buckets_and_the_state_machine(template):
    """Every output name of jobs.contracts.stack_outputs (what cxr start/status/results/preflight read) exists."""
    from jobs.contracts import stack_outputs as names

    outputs = template.to_json()["Outputs"]
    declared = {
        v for k, v in vars(names).items() if k.isupper() and isinstance(v, str) and k != "WEIGHTS_PREFIX"
    }
    assert set(names.REQUIRED) <= declared and declared <= set(outputs)


def _imported_modules(module: str, root, seen: set[str]) -> set[str]:
    """Every module ``module`` imports, following the repository's own modules (infra.*, jobs.*)."""
    import ast

    path = root.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            found.add(name)
            local = name.split(".")[0] in ("infra", "jobs")
            if local and name not in seen and (root / f"{name.replace('.', '/')}.py").exists():
                seen.add(name)
                found |= _imported_modules(name, root, seen)
    return found


def test_synth_never_imports_tensorflow_or_pyspark():
    """app.py and everything it imports from infra/ and jobs/ import neither TensorFlow, Keras nor PySpark."""
    from tests.cdk_support import ROOT

    imported = _imported_modules("app", ROOT, set())
    assert "infra.stack" in imported and "jobs.experiment.schema" in imported
    assert not {m.split(".")[0] for m in imported} & {"tensorflow", "keras", "pyspark"}


def _statements(template: dict, *kinds: str) -> list[dict]:
    kinds = kinds or ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
    return [
        statement
        for kind in kinds
        for policy in resources(template, kind).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_cluster_and_vpc_carry_the_emr_managed_policy_tag(template, states):
    """AmazonEMRServicePolicy_v2 acts only on clusters and in VPCs tagged for-use-with-...=true."""
    from infra.resources.network import EMR_MANAGED_POLICY_TAG

    tag = {"Key": EMR_MANAGED_POLICY_TAG, "Value": "true"}
    assert tag in states["CreateCluster"]["Parameters"]["Tags"]
    (vpc,) = resources(template.to_json(), "AWS::EC2::VPC").values()
    assert tag in vpc["Properties"]["Tags"]


def test_a_hung_etl_step_times_out_into_the_terminating_catch(states, variant):
    """RunEtlStep has a timeout from context (etlStepTimeoutMinutes) and States.ALL (incl. Timeout) is caught."""
    step = states["RunEtlStep"]
    assert step["TimeoutSeconds"] == 180 * 60
    assert [c["Next"] for c in step["Catch"] if "States.ALL" in c["ErrorEquals"]] == [
        "TerminateClusterAfterFailure"
    ]
    assert all_states(definition(variant.template)["States"])["RunEtlStep"]["TimeoutSeconds"] == 45 * 60


def test_cluster_creation_is_not_retried_on_a_generic_emr_error(states):
    """A generic EMR error may come after the cluster exists: retrying would start a second one."""
    errors = [e for retry in states["CreateCluster"].get("Retry", []) for e in retry["ErrorEquals"]]
    assert "EMR.AmazonElasticMapReduceException" not in errors and "States.ALL" not in errors


def test_training_runtime_is_the_expected_duration_times_the_margin(states):
    """MaxRuntimeInSeconds = trainingExpectedMinutes x 60 x trainingRuntimeMargin (cdk.json), not 24 h."""
    from tests.cdk_support import cdk_context

    context = cdk_context()
    expected = context["trainingExpectedMinutes"] * 60 * context["trainingRuntimeMargin"]
    assert states["Train"]["Parameters"]["StoppingCondition"] == {"MaxRuntimeInSeconds": expected}
    assert expected < 24 * 3600


# The one service each role may be passed to, as AWS documents it (not taken from infra/): the EMR roles as
# AmazonEMRFullAccessPolicy_v2 passes them (docs.aws.amazon.com/aws-managed-policy/latest/reference/
# AmazonEMRFullAccessPolicy_v2.html: EMR_DefaultRole_V2 to elasticmapreduce.amazonaws.com*, EMR_EC2_DefaultRole
# to ec2.amazonaws.com*, EMR_AutoScaling_DefaultRole to application-autoscaling.amazonaws.com*), the jobs'
# role to SageMaker (AmazonSageMakerFullAccess: iam:PassedToService sagemaker.amazonaws.com). Keys: the
# roles' logical ids without CDK's hash.
DOCUMENTED_PASSED_TO = {
    "EtlClusterServiceRole": "elasticmapreduce.amazonaws.com",
    "EtlClusterInstanceRole": "ec2.amazonaws.com",
    "EtlClusterAutoScalingRole": "application-autoscaling.amazonaws.com",
    "SageMakerRole": "sagemaker.amazonaws.com",
}
STATE_MACHINE_POLICY = "PipelineStateMachineRoleDefaultPolicy"


def _role_of(resource) -> str:
    """A PassRole resource ({"Fn::GetAtt": [<role>, "Arn"]}) as its role's logical id without the hash."""
    assert isinstance(resource, dict) and "Fn::GetAtt" in resource, f"PassRole on {resource}: name one role"
    return re.sub(r"[0-9A-F]{8}$", "", resource["Fn::GetAtt"][0])


def _pass_role_policies(template: dict) -> dict[str, list[dict]]:
    """Every policy's Allow iam:PassRole statements, by policy logical id without the hash."""
    found: dict[str, list[dict]] = {}
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, policy in resources(template, kind).items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement["Effect"] == "Allow" and "iam:PassRole" in _as_list(statement["Action"]):
                    found.setdefault(re.sub(r"[0-9A-F]{8}$", "", name), []).append(statement)
    return found


def _may_pass(statements: list[dict], role: str, service: str) -> bool:
    """IAM's verdict on passing ``role`` to ``service`` (StringEquals/StringLike on iam:PassedToService; a
    request without the key fails the condition)."""

    def allows(statement: dict) -> bool:
        if role not in {_role_of(r) for r in _as_list(statement["Resource"])}:
            return False
        for operator, keys in statement.get("Condition", {}).items():
            for key, wanted in keys.items():
                value = service if key == "iam:PassedToService" else None
                if value is None:
                    return False
                match = fnmatch.fnmatchcase if operator == "StringLike" else str.__eq__
                if operator not in ("StringEquals", "StringLike") or not any(
                    match(value, w) for w in _as_list(wanted)
                ):
                    return False
        return True

    return any(allows(s) for s in statements)


def test_each_role_is_passed_only_to_the_service_aws_documents_for_it(template):
    """RunJobFlow passes the EMR service role to EMR, the nodes' role to EC2 and the auto-scaling role to
    Application Auto Scaling (AWS's EMR policy); the jobs' role goes to SageMaker. Each is allowed for its
    own service and denied for every other."""
    policies = _pass_role_policies(template.to_json())
    state_machine = policies.pop(STATE_MACHINE_POLICY)
    assert {_role_of(r) for s in state_machine for r in _as_list(s["Resource"])} == set(DOCUMENTED_PASSED_TO)
    for role, documented in DOCUMENTED_PASSED_TO.items():
        for service in set(DOCUMENTED_PASSED_TO.values()):
            assert _may_pass(state_machine, role, service) == (service == documented), (role, service)
    # EMR itself hands the nodes' role to EC2 when it launches them, with the service role's policy.
    assert set(policies) == {"EtlClusterServicePolicy"}
    for service in set(DOCUMENTED_PASSED_TO.values()):
        allowed = _may_pass(policies["EtlClusterServicePolicy"], "EtlClusterInstanceRole", service)
        assert allowed == (service == "ec2.amazonaws.com"), service


def test_every_pass_role_statement_names_one_role_and_its_service(template):
    """One PassRole statement per role, each with iam:PassedToService: a statement shared by two roles can
    only name one service for both."""
    for name, statements in _pass_role_policies(template.to_json()).items():
        for statement in statements:
            assert len(_as_list(statement["Resource"])) == 1, (name, statement["Resource"])
            assert "iam:PassedToService" in json.dumps(statement.get("Condition", {})), (name, statement)


def _allowed(statements: list[dict], action: str, tags: dict[str, str]) -> bool:
    """IAM's verdict for ``action`` on a cluster with ``tags`` (explicit Deny wins; String(Not)Equals only)."""

    def applies(statement: dict) -> bool:
        if action not in _as_list(statement["Action"]):
            return False
        for operator, keys in statement.get("Condition", {}).items():
            for key, wanted in keys.items():
                # A termination request carries no request tags: only the cluster's own tags are present.
                value = tags.get(key.split("/", 1)[1]) if key.startswith("aws:ResourceTag/") else None
                if value is None and operator.endswith("IfExists"):
                    continue
                equal = value in _as_list(wanted)
                if operator.startswith("StringEquals") and not equal:
                    return False
                if operator == "StringNotEquals" and equal:
                    return False
        return True

    matching = [s for s in statements if applies(s)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def test_only_clusters_with_the_project_tag_can_be_terminated(template):
    """The state machine's and the cleanup function's policies terminate tagged clusters only."""
    from infra.pipeline.etl_cluster import PROJECT_TAG

    template_json = template.to_json()
    policies = {
        name: policy["Properties"]["PolicyDocument"]["Statement"]
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        for name, policy in resources(template_json, kind).items()
        if any(
            "elasticmapreduce:TerminateJobFlows" in _as_list(s["Action"])
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    }
    assert len(policies) == 2, sorted(policies)
    for name, statements in policies.items():
        for action in ("elasticmapreduce:TerminateJobFlows",):
            assert _allowed(statements, action, {PROJECT_TAG[0]: PROJECT_TAG[1]}), name
            assert not _allowed(statements, action, {}), name
            assert not _allowed(statements, action, {PROJECT_TAG[0]: "someone-else"}), name


def test_sagemaker_list_tags_is_granted_on_the_pipelines_jobs_only(template):
    """ListTags (which CDK's SageMaker tasks grant on "*") is limited to the cxr-* training/processing jobs."""
    (statement,) = [
        s for s in _statements(template.to_json()) if "sagemaker:ListTags" in _as_list(s["Action"])
    ]
    resources_ = [json.dumps(r) for r in _as_list(statement["Resource"])]
    assert len(resources_) == 2 and all("job/cxr-*" in r for r in resources_), resources_


# Condition keys only the listing actions carry (Service Authorization Reference, "Actions, resources, and
# condition keys for Amazon S3": s3:prefix, s3:delimiter and s3:max-keys belong to ListBucket and
# ListBucketVersions; GetBucketLocation has none of them). IAM: a condition on a key that is not in the
# request context does not match, so a statement granting GetBucketLocation under one of them never allows.
LISTING_ONLY_KEYS = {"s3:prefix", "s3:delimiter", "s3:max-keys"}


def test_every_bucket_a_role_may_list_it_may_also_locate(template):
    """GetBucketLocation is never conditioned on a listing-only key (it could never be allowed), and each
    policy that grants it (the EMR nodes', the jobs': EMRFS and SageMaker ask for it) can locate every bucket
    it lists."""
    granting = 0
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, policy in resources(template.to_json(), kind).items():
            listed, located, grants = set(), set(), False
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = _as_list(statement["Action"])
                buckets = {json.dumps(r, sort_keys=True) for r in _as_list(statement["Resource"])}
                keys = {k for condition in statement.get("Condition", {}).values() for k in condition}
                if statement["Effect"] == "Allow" and "s3:ListBucket" in actions:
                    listed |= buckets
                if statement["Effect"] == "Allow" and "s3:GetBucketLocation" in actions:
                    assert not keys & LISTING_ONLY_KEYS, (name, statement)
                    located |= buckets
                    grants = True
            if grants:
                granting += 1
                assert listed <= located, (name, listed - located)
    assert granting >= 2


def _teardown_section() -> str:
    from tests.cdk_support import ROOT

    doc = (ROOT / "docs" / "cloud.md").read_text()
    return doc[doc.index("## Tear down") : doc.index("## Checks")]


def _retained_table(section: str) -> dict[str, int]:
    """docs/cloud.md's table of what `cdk destroy` leaves: resource type -> count."""
    header = section.index("| retained | count |")
    rows = {}
    for line in section[header:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        kind, count = (cell.strip().strip("`") for cell in line.strip("|").split("|")[:2])
        rows[kind] = int(count)
    return rows


def test_the_teardown_section_names_every_resource_cdk_destroy_leaves(synth):
    """Every resource the template retains (DeletionPolicy Retain) is in the tear-down table with its count,
    and nothing else is; a template with a Model Package Group gets the packages deleted before the destroy
    (the group cannot go while it holds them), one whose state machine makes model cards says how to
    delete them (they are not CloudFormation resources)."""
    retained: dict[str, int] = {}
    for resource in synth.template["Resources"].values():
        if resource.get("DeletionPolicy") == "Retain":
            retained[resource["Type"]] = retained.get(resource["Type"], 0) + 1
    section = _teardown_section()
    assert _retained_table(section) == retained
    if resources(synth.template, "AWS::SageMaker::ModelPackageGroup"):
        assert section.index("aws sagemaker delete-model-package") < section.index("npx cdk destroy")
    if "createModelCard" in json.dumps(definition(synth.template)):
        assert "aws sagemaker delete-model-card" in section
