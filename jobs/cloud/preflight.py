"""``cxr preflight EXPERIMENT`` (also the first thing ``cxr start`` does): in a few seconds, with boto3,
everything a run needs that only the account can tell, each missing item named with the command that
fixes it. Without it a new account learns of a 0 quota after the Map has retried for 15 minutes.

Checks: the stack's outputs, the training image in ECR, the staged ImageNet weights, the raw data of the
dataset and of each external test set (only of those the ETL has to build), and the Service Quotas of the instances the run starts at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.cloud.aws import StackOutputs, _client, execution_input, recorded_md5
from jobs.cloud.stage_weights import INDEX, weights_key
from jobs.contracts.stack_outputs import SETTINGS, TRAINING_IMAGE, WEIGHTS_PREFIX
from jobs.experiment.schema import Experiment
from jobs.plan.pipeline_input import cloud_source_uris
from jobs.training.weights import NOTOP_FILES, NOTOP_MD5

# EMR runs on EC2 On-Demand capacity: this quota counts the vCPUs of standard (A, C, D, H, I, M, R, T, Z)
# instances, which is what the ETL's m5 nodes use.
EC2_STANDARD_ON_DEMAND = (
    "ec2",
    "L-1216C47A",
    "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
)
STANDARD_FAMILIES = tuple("acdhimrtz")
QUOTAS_CONSOLE = "https://{region}.console.aws.amazon.com/servicequotas/home/services/{service}/quotas/{code}"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


class Quotas:
    """Applied quota values by name (Service Quotas lists SageMaker's per instance type by name only)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._by_service: dict[str, dict[str, tuple[str, float]]] = {}

    def _list(self, operation: str, service: str) -> dict[str, tuple[str, float]]:
        found: dict[str, tuple[str, float]] = {}
        kwargs: dict[str, Any] = {"ServiceCode": service}
        while True:
            page = getattr(self.client, operation)(**kwargs)
            for quota in page.get("Quotas", []):
                found[quota["QuotaName"]] = (quota["QuotaCode"], float(quota["Value"]))
            if not page.get("NextToken"):
                return found
            kwargs["NextToken"] = page["NextToken"]

    def lookup(self, service: str, name: str) -> tuple[str, float] | None:
        """(quota code, value) of the applied quota, else of AWS's default; None when unknown."""
        if service not in self._by_service:
            defaults = self._list("list_aws_default_service_quotas", service)
            self._by_service[service] = {**defaults, **self._list("list_service_quotas", service)}
        return self._by_service[service].get(name)


def deployed_settings(described_outputs: dict[str, str]) -> dict[str, Any]:
    """The context the stack was deployed with (the PipelineSettings output)."""
    return json.loads(described_outputs.get(SETTINGS, "{}"))


def _quota_check(quotas: Quotas, service: str, name: str, needed: float, region: str, why: str) -> Check:
    found = quotas.lookup(service, name)
    if found is None:
        return Check(
            f"quota {name}", True, f"not listed by Service Quotas in {region}; check it by hand ({why})"
        )
    code, value = found
    if value >= needed:
        return Check(f"quota {name}", True, f"{value:g} >= {needed:g} ({why})")
    return Check(
        f"quota {name}",
        False,
        f"{value:g} < {needed:g} needed ({why})",
        f"aws service-quotas request-service-quota-increase --region {region} --service-code {service} "
        f"--quota-code {code} --desired-value {needed:g}   (or "
        + QUOTAS_CONSOLE.format(region=region, service=service, code=code)
        + ")",
    )


def quota_checks(
    exp: Experiment,
    settings: dict[str, Any],
    quotas: Quotas,
    region: str,
    vcpus: Callable[[str], int],
    etl: bool,
) -> list[Check]:
    """The quotas of what one execution runs at the same time."""
    at_once = min(settings["modelConcurrency"], len(exp.runs()))  # the Map runs model x seed items
    kind = "spot training job usage" if settings["useSpot"] else "training job usage"
    checks = [
        _quota_check(
            quotas,
            "sagemaker",
            f"{settings['trainingInstanceType']} for {kind}",
            at_once * settings["trainingInstanceCount"],
            region,
            f"{at_once} model(s) at once (modelConcurrency {settings['modelConcurrency']})",
        )
    ]
    processing: dict[str, int] = {settings["evaluationInstanceType"]: at_once}
    processing[settings["reportInstanceType"]] = max(processing.get(settings["reportInstanceType"], 0), 1)
    for instance_type, count in processing.items():
        checks.append(
            _quota_check(
                quotas,
                "sagemaker",
                f"{instance_type} for processing job usage",
                count,
                region,
                "evaluation/report",
            )
        )
    if etl:
        nodes = {settings["emrMasterInstanceType"]: 0, settings["emrCoreInstanceType"]: 0}
        nodes[settings["emrMasterInstanceType"]] += settings["emrMasterInstanceCount"]
        nodes[settings["emrCoreInstanceType"]] += settings["emrCoreInstanceCount"]
        if all(t[0] in STANDARD_FAMILIES for t in nodes):
            needed = sum(vcpus(t) * n for t, n in nodes.items())
            service, _, name = EC2_STANDARD_ON_DEMAND
            checks.append(_quota_check(quotas, service, name, needed, region, "EMR cluster vCPUs"))
    return checks


def _exists(s3: Any, bucket: str, prefix: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"))


def raw_data_check(s3: Any, uri: str) -> Check:
    """A source the ETL will read: at least one object under its prefix."""
    source_bucket, _, prefix = uri[len("s3://") :].partition("/")
    prefix = prefix.rstrip("/")
    ok = _exists(s3, source_bucket, f"{prefix}/" if prefix else "")
    return Check(
        f"raw data {uri}",
        ok,
        "present" if ok else "no objects under it",
        "" if ok else "cxr upload-data --data-root DIR   (DIR holds the sources' folders, e.g. cohen/ nih/)",
    )


def image_check(ecr: Any, image_uri: str) -> Check:
    repository, _, tag = image_uri.split("/", 1)[-1].partition(":")
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ClientError as exc:
        return Check(
            "training image",
            False,
            f"{image_uri} is not in ECR ({exc.response['Error']['Code']})",
            "npx cdk deploy CxrPipeline   (builds and pushes the image; needs a Docker engine)",
        )
    return Check("training image", True, image_uri)


def preflight(
    exp: Experiment,
    outputs: StackOutputs,
    described_outputs: dict[str, str],
    quotas: Quotas | None = None,
) -> list[Check]:
    """Every check, in the order a run needs them; a failing one carries its fix."""
    region = outputs.region
    settings = deployed_settings(described_outputs)
    checks = [Check("stack outputs", True, f"state machine {outputs.state_machine_arn}")]
    if not settings or TRAINING_IMAGE not in described_outputs:
        return [
            *checks,
            Check(
                "stack version",
                False,
                f"the stack has no {SETTINGS} / {TRAINING_IMAGE} outputs (deployed before preflight existed)",
                "npx cdk deploy CxrPipeline",
            ),
        ]
    checks.append(image_check(_client("ecr", region), described_outputs[TRAINING_IMAGE]))

    s3 = _client("s3", region)
    bucket = outputs.artifacts_bucket
    if not _exists(s3, bucket, f"{WEIGHTS_PREFIX}{INDEX}"):
        checks.append(
            Check(
                "weights channel",
                False,
                f"s3://{bucket}/{WEIGHTS_PREFIX} is empty; every training job reads it as its 'weights' channel",
                " ".join(["cxr stage-weights", *(m for m in exp.training.models if m in NOTOP_FILES)]),
            )
        )
    if exp.training.weights == "imagenet":
        for model in (m for m in exp.training.models if m in NOTOP_FILES):
            key = weights_key(model)
            ok = recorded_md5(s3, bucket, key) == NOTOP_MD5[model]
            checks.append(
                Check(
                    f"ImageNet weights {model}",
                    ok,
                    f"s3://{bucket}/{key}" + ("" if ok else " missing (the jobs are network-isolated)"),
                    "" if ok else f"cxr stage-weights {model}",
                )
            )

    payload = execution_input(exp, outputs, run_id="preflight")
    raw = f"s3://{outputs.raw_bucket}"
    # The dataset, then each external test set: the raw data only of those the ETL has to build.
    datasets = [("dataset", payload["dataset"], cloud_source_uris(exp, raw))]
    datasets += [
        (f"external test set {e['name']}", e["dataset"], cloud_source_uris(exp, raw, e["name"]))
        for e in payload["externals"]
    ]
    etl = False
    for name, dataset, uris in datasets:
        if _exists(s3, dataset["bucket"], dataset["manifestKey"]):
            checks.append(
                Check(name, True, f"s3://{dataset['bucket']}/{dataset['manifestKey']} exists: no ETL")
            )
            continue
        etl = True
        checks += [raw_data_check(s3, uri) for uri in uris]

    ec2 = _client("ec2", region)

    def vcpus(instance_type: str) -> int:
        described = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"][0]
        return described["VCpuInfo"]["DefaultVCpus"]

    quotas = quotas or Quotas(_client("service-quotas", region))
    return checks + quota_checks(exp, settings, quotas, region, vcpus, etl)


def cost_line(exp: Experiment, described_outputs: dict[str, str]) -> str:
    """The estimate (jobs/cloud/costs.py) for the deployed context: cdk.json with the stack's own settings."""
    from jobs.cloud.costs import CostError, cdk_context, estimate_cost, format_estimate

    try:
        return format_estimate(estimate_cost(exp, cdk_context(deployed_settings(described_outputs))))[0]
    except CostError as exc:
        return f"no cost estimate: {exc}"


def report(checks: list[Check], echo: Callable[[str], None] = print) -> bool:
    """Prints one line per check (and the fix under a failing one); True when all pass."""
    for check in checks:
        echo(f"{'ok     ' if check.ok else 'MISSING'} {check.name}: {check.detail}")
        if not check.ok:
            echo(f"        fix: {check.fix}")
    return all(c.ok for c in checks)
