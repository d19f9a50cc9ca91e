"""Test-only: check the Parameters a Task state sends against botocore's model of the API it calls.

Step Functions' optimised integrations mirror an AWS API (docs: "Create and manage Amazon EMR clusters
with Step Functions", https://docs.aws.amazon.com/step-functions/latest/dg/connect-emr.html):
``createCluster`` takes RunJobFlow's request except that ``Steps`` is not allowed and
``Instances.KeepJobFlowAliveWhenNoSteps`` must be true; ``addStep`` takes AddJobFlowSteps' request with
``ClusterId`` for ``JobFlowId`` and one ``Step`` for ``Steps``; ``terminateCluster`` takes
TerminateJobFlows' with one ``ClusterId`` for ``JobFlowIds``. The SageMaker integrations pass the request
of CreateTrainingJob / CreateProcessingJob unchanged, and ``aws-sdk:SERVICE:action`` calls the SDK action
of that name.

``botocore.validate.validate_parameters`` checks required members, unknown keys, types and minimums; it
skips enums, maximum lengths and values, and patterns, which :func:`shape_problems` checks. AWS applies a
model pattern to the whole value (its errors quote ``^...$``), hence ``fullmatch``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.session
import regex
from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel, Shape
from botocore.validate import validate_parameters

from tests.cdk_support import definition_text

ACCOUNT = "123456789012"
REGION = "us-east-1"
_PSEUDO = {
    "<Ref:AWS::Partition>": "aws",
    "<Ref:AWS::Region>": REGION,
    "<AWS::Region>": REGION,
    "<AWS::AccountId>": ACCOUNT,
    "<AWS::URLSuffix>": "amazonaws.com",
}
_TOKEN = re.compile(r"<(Ref|GetAtt):([A-Za-z0-9]+)(?:\.([A-Za-z]+))?>")


def _token_value(template: dict[str, Any], kind: str, logical_id: str, attribute: str | None) -> str:
    """The value CloudFormation would put in place of a Ref/GetAtt, in the format AWS gives it."""
    resource_type = template["Resources"][logical_id]["Type"]
    name = f"CxrPipeline-{logical_id}"[:64]
    hex17 = f"{abs(hash(logical_id)) % 16**17:017x}"
    values = {
        ("Ref", "AWS::IAM::Role"): name,
        ("GetAtt", "AWS::IAM::Role", "Arn"): f"arn:aws:iam::{ACCOUNT}:role/{name}",
        (
            "GetAtt",
            "AWS::KMS::Key",
            "Arn",
        ): f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-{hex17[:12]}",
        ("Ref", "AWS::S3::Bucket"): name.lower(),
        ("Ref", "AWS::EC2::Subnet"): f"subnet-{hex17}",
        ("Ref", "AWS::EC2::SecurityGroup"): f"sg-{hex17}",
        ("GetAtt", "AWS::EC2::SecurityGroup", "GroupId"): f"sg-{hex17}",
        ("Ref", "AWS::EMR::SecurityConfiguration"): name,
    }
    key = (kind, resource_type, attribute) if kind == "GetAtt" else (kind, resource_type)
    if key not in values:
        raise AssertionError(
            f"no realistic value for {kind} {logical_id} ({resource_type}): add one to _token_value"
        )
    return values[key]


def deployed_definition_text(template: dict[str, Any]) -> str:
    """The definition as CloudFormation would deploy it in account 123456789012, us-east-1."""
    text = definition_text(template)
    for token, value in _PSEUDO.items():
        text = text.replace(token, value)
    return _TOKEN.sub(lambda m: _token_value(template, *m.groups()), text)


@dataclass(frozen=True)
class ApiCall:
    """The AWS API behind one Task state's resource, and how its Parameters become that API's request."""

    service: str
    operation: str
    to_request: Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]]


def _same(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return dict(params), []


def _create_cluster(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    problems = []
    if "Steps" in params:
        problems.append("Steps: not allowed in createCluster (add steps with addStep)")
    if params.get("Instances", {}).get("KeepJobFlowAliveWhenNoSteps") is not True:
        problems.append("Instances.KeepJobFlowAliveWhenNoSteps: createCluster requires true")
    return dict(params), problems


def _add_step(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    request = {k: v for k, v in params.items() if k not in ("ClusterId", "Step")}
    problems = [f"{k}: not a field of addStep" for k in ("JobFlowId", "Steps") if k in params]
    if "ClusterId" in params:
        request["JobFlowId"] = params["ClusterId"]
    if "Step" in params:
        request["Steps"] = [params["Step"]]
    step = params.get("Step", {}).get("HadoopJarStep", {})
    strings = [step.get("Jar", ""), step.get("MainClass", ""), *step.get("Args", [])]
    if sum(len(s) for s in strings if isinstance(s, str)) > 10240:
        problems.append("Step.HadoopJarStep: its strings exceed 10240 characters in total (AddJobFlowSteps)")
    return request, problems


def _terminate_cluster(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    request = {k: v for k, v in params.items() if k != "ClusterId"}
    if "ClusterId" in params:
        request["JobFlowIds"] = [params["ClusterId"]]
    return request, [f"{k}: not a field of terminateCluster" for k in ("JobFlowIds",) if k in params]


_OPTIMISED = {
    "elasticmapreduce:createCluster": ApiCall("emr", "RunJobFlow", _create_cluster),
    "elasticmapreduce:addStep": ApiCall("emr", "AddJobFlowSteps", _add_step),
    "elasticmapreduce:terminateCluster": ApiCall("emr", "TerminateJobFlows", _terminate_cluster),
    "sagemaker:createTrainingJob": ApiCall("sagemaker", "CreateTrainingJob", _same),
    "sagemaker:createProcessingJob": ApiCall("sagemaker", "CreateProcessingJob", _same),
}


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


def api_call(resource: str) -> ApiCall:
    """The API behind a Task's ``Resource`` (``arn:aws:states:::SERVICE:ACTION[.sync]``)."""
    integration = resource.split(":::", 1)[-1].removesuffix(".sync").removesuffix(".waitForTaskToken")
    if integration.startswith("aws-sdk:"):
        _, service, action = integration.split(":")
        model = _session().get_service_model(service)
        names = {name[0].lower() + name[1:]: name for name in model.operation_names}
        if action not in names:
            raise AssertionError(f"{resource}: {service} has no SDK action {action!r}")
        return ApiCall(service, names[action], _same)
    if integration not in _OPTIMISED:
        raise AssertionError(f"{resource}: no botocore mapping for this integration; add it to _OPTIMISED")
    return _OPTIMISED[integration]


def operation_model(call: ApiCall) -> OperationModel:
    return _session().get_service_model(call.service).operation_model(call.operation)


# Java patterns in the models that Python's engines read otherwise: a surrogate pair range means
# "any supplementary character".
_JAVA_TO_PYTHON = (("\\uD800\\uDC00-\\uDBFF\\uDFFF", "\\U00010000-\\U0010FFFF"),)


@functools.cache
def _pattern(source: str) -> regex.Pattern:
    for java, python in _JAVA_TO_PYTHON:
        source = source.replace(java, python)
    return regex.compile(source)


def shape_problems(value: Any, shape: Shape, path: str = "") -> list[str]:
    """The enum, length, range and pattern rules of ``shape`` (and its members) that ``value`` breaks."""
    where = path or shape.name
    meta = shape.metadata
    problems = []
    enum = getattr(shape, "enum", None)  # only string shapes carry one
    if enum and value not in enum:
        problems.append(f"{where}: {value!r} is not one of {', '.join(enum)}")
    size = len(value) if isinstance(value, str | list | dict) else None
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    measured = size if size is not None else number
    if measured is not None and "min" in meta and measured < meta["min"]:
        problems.append(f"{where}: {measured} is below the minimum {meta['min']}")
    if measured is not None and "max" in meta and measured > meta["max"]:
        problems.append(f"{where}: {measured} is above the maximum {meta['max']}")
    if isinstance(value, str) and "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
        problems.append(f"{where}: {value!r} does not match the pattern {meta['pattern']}")
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                problems += shape_problems(item, shape.members[key], f"{path}.{key}" if path else key)
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            problems += shape_problems(item, shape.member, f"{where}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            problems += shape_problems(key, shape.key, f"{where} key {key!r}")
            problems += shape_problems(item, shape.value, f"{where}[{key!r}]")
    return problems


def request_problems(resource: str, params: dict[str, Any]) -> list[str]:
    """Everything AWS would reject in ``params`` sent by a Task state whose Resource is ``resource``."""
    call = api_call(resource)
    request, problems = call.to_request(params)
    shape = operation_model(call).input_shape
    try:
        validate_parameters(request, shape)
    except ParamValidationError as exc:
        problems += [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
    return problems + shape_problems(request, shape)
