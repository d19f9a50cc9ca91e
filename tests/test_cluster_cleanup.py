"""An execution that is stopped, times out or fails leaves no cluster: the rule's pattern and the function."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from moto.events.models import EventPattern

from infra.resources.cleanup.terminate_clusters import EXECUTION_TAG, handler
from tests.cdk_support import all_states, definition, resources, synthesize

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:cxr"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:cxr:paper-binary-20260101-000000"


def _event(status: str, machine: str = MACHINE) -> dict:
    return {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"status": status, "stateMachineArn": machine, "executionArn": EXECUTION},
    }


@pytest.fixture(scope="module")
def pattern() -> EventPattern:
    """The synthesized rule's pattern, with the state machine's ARN token resolved."""
    template = synthesize().template
    (rule,) = resources(template, "AWS::Events::Rule").values()
    (machine_id,) = resources(template, "AWS::StepFunctions::StateMachine")
    text = json.dumps(rule["Properties"]["EventPattern"]).replace(
        json.dumps({"Ref": machine_id}), f'"{MACHINE}"'
    )
    return EventPattern.load(text)


@pytest.mark.parametrize("status", ["ABORTED", "TIMED_OUT", "FAILED"])
def test_rule_fires_when_this_state_machine_ends_badly(pattern, status):
    """ABORTED, TIMED_OUT and FAILED executions of the pipeline's state machine reach the function."""
    assert pattern.matches_event(_event(status))


@pytest.mark.parametrize(
    "event",
    [_event("SUCCEEDED"), _event("RUNNING"), _event("ABORTED", machine=MACHINE + "-other")],
    ids=["succeeded", "running", "other-machine"],
)
def test_rule_ignores_other_events(pattern, event):
    """A successful or running execution, or another state machine's, triggers nothing."""
    assert not pattern.matches_event(event)


def test_clusters_carry_the_execution_tag_the_function_looks_for():
    """CreateCluster tags each cluster with its execution's ARN ($$.Execution.Id)."""
    states = all_states(definition(synthesize().template)["States"])
    tags = states["CreateCluster"]["Parameters"]["Tags"]
    assert {"Key": EXECUTION_TAG, "Value.$": "$$.Execution.Id"} in tags


def _cluster(emr, name: str, execution: str | None) -> str:
    tags = [{"Key": "project", "Value": "cxr-pipeline"}]
    if execution:
        tags.append({"Key": EXECUTION_TAG, "Value": execution})
    return emr.run_job_flow(
        Name=name,
        ReleaseLabel="emr-5.32.0",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "SlaveInstanceType": "m5.xlarge",
            "InstanceCount": 1,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Tags=tags,
    )["JobFlowId"]


@pytest.fixture
def emr(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("emr", region_name="us-east-1")


def _state(emr, cluster: str) -> str:
    return emr.describe_cluster(ClusterId=cluster)["Cluster"]["Status"]["State"]


def test_aborted_execution_terminates_only_its_own_cluster(emr):
    """Of three running clusters, only the one tagged with the aborted execution is terminated."""
    own = _cluster(emr, "cxr-etl-paper-binary-20260101-000000", EXECUTION)
    other_run = _cluster(emr, "cxr-etl-paper-binary-20260102-000000", EXECUTION.replace("0101", "0102"))
    someone_elses = _cluster(emr, "analytics", EXECUTION)
    assert handler(_event("ABORTED"), emr=emr) == {"terminated": [own]}
    assert _state(emr, own) == "TERMINATED"
    assert _state(emr, other_run) != "TERMINATED" and _state(emr, someone_elses) != "TERMINATED"


def test_succeeded_event_terminates_nothing(emr):
    """The function does nothing for a status that needs no cleanup, even if invoked."""
    own = _cluster(emr, "cxr-etl-paper-binary-20260101-000000", EXECUTION)
    assert handler(_event("SUCCEEDED"), emr=emr)["terminated"] == []
    assert _state(emr, own) != "TERMINATED"
