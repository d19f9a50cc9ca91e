"""Test helpers: synthesize the stack with cdk.json's context, and read its state machine definition back."""

from __future__ import annotations

import atexit
import functools
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HASH = re.compile(r"\b[0-9a-f]{64}\b")


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context (the deployed defaults) with test overrides."""
    return {**json.loads((ROOT / "cdk.json").read_text())["context"], **overrides}


# The context switches that change the Task states' parameters or the template, all on at once (one more
# synth instead of four): managed spot, jobs in the VPC, network isolation, EMR in-transit TLS.
# The changed context the stack and prediction tests share (synthesize caches by context: one synth).
VARIANT = {
    "emrCoreInstanceCount": "3",
    "useSpot": "true",
    "networkIsolation": True,
    "trainingInVpc": True,
    "trainingInstanceType": "ml.g5.2xlarge",
    "etlStepTimeoutMinutes": "45",
}

SWITCHES_ON = {
    "useSpot": True,
    "trainingInVpc": True,
    "networkIsolation": True,
    "emrInTransitCertificatesUri": "s3://cxr-certificates-123456789012/emr-tls.zip",
}


@dataclass
class Synthesized:
    stack: Any
    template: dict[str, Any]
    outdir: Path


@functools.cache
def synthesize(*, nag: bool = True, **overrides: Any) -> Synthesized:
    """One synth of the real app's stack (with cdk-nag and its acknowledgements when ``nag``), cached per
    process: a synth takes 10-50 s, so every test module shares it.

    A finding that is not acknowledged makes the synth raise, naming it.
    """
    import aws_cdk as cdk

    from infra.nag import acknowledge_findings, add_nag_checks
    from infra.stack import CxrPipelineStack

    outdir = Path(tempfile.mkdtemp(prefix="cxr-cdk-"))
    atexit.register(shutil.rmtree, outdir, True)
    app = cdk.App(context=cdk_context(**overrides), outdir=str(outdir))
    stack = CxrPipelineStack(app, "CxrPipeline")
    if nag:
        acknowledge_findings(stack)
        add_nag_checks(app)
    assembly = app.synth()
    return Synthesized(stack, assembly.get_stack_by_name("CxrPipeline").template, outdir)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _placeholder(part: Any) -> str:
    if isinstance(part, str):
        return part
    if "Ref" in part:
        return f"<Ref:{part['Ref']}>"
    if "Fn::GetAtt" in part:
        return f"<GetAtt:{'.'.join(part['Fn::GetAtt'])}>"
    if "Fn::Sub" in part:
        return part["Fn::Sub"].replace("${", "<").replace("}", ">")
    raise AssertionError(f"unexpected token in the definition: {part}")


def definition_text(template: dict[str, Any]) -> str:
    """The state machine's DefinitionString with every CloudFormation token as a readable placeholder."""
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    body = machine["Properties"]["DefinitionString"]
    if isinstance(body, str):
        return body
    separator, parts = body["Fn::Join"]
    return separator.join(_placeholder(p) for p in parts)


def definition(template: dict[str, Any]) -> dict[str, Any]:
    return json.loads(definition_text(template))


_PSEUDO = {
    "<Ref:AWS::Partition>": "aws",
    "<AWS::Region>": "us-east-1",
    "<AWS::AccountId>": "123456789012",
    "<AWS::URLSuffix>": "amazonaws.com",
}
_TOKEN = re.compile(r"<(Ref|GetAtt):([A-Za-z0-9]+)(?:\.Arn)?>")


def executable_definition(template: dict[str, Any]) -> dict[str, Any]:
    """The definition with made-up account values for the tokens, as moto can run it."""
    text = definition_text(template)
    for token, value in _PSEUDO.items():
        text = text.replace(token, value)
    return json.loads(
        _TOKEN.sub(
            lambda m: (
                f"arn:aws:iam::123456789012:role/{m.group(2)}"
                if m.group(1) == "GetAtt"
                else m.group(2).lower()
            ),
            text,
        )
    )


def normalised_definition(template: dict[str, Any]) -> dict[str, Any]:
    """The definition with asset hashes replaced, for the snapshot."""
    return json.loads(HASH.sub("<hash>", definition_text(template)))


def all_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, including those inside Map/Parallel states, by name."""
    found = {}
    for name, state in states.items():
        found[name] = state
        processors = [state.get("ItemProcessor") or state.get("Iterator")] + state.get("Branches", [])
        for processor in filter(None, processors):
            found.update(all_states(processor["States"]))
    return found
