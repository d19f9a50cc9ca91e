"""Test-only: run the synthesized state machine in moto with mocked EMR and SageMaker task results.

moto 5.2.5 interprets state machines (Map, Choice, Catch, Retry, aws-sdk tasks against its own mocks)
but refuses the optimised `.sync` EMR and SageMaker integrations and never hands its interpreter the
Step Functions Local-style mock test case it supports. Two patches (see shared/ENGINEERING.md) fix
both; a third lets a mocked task fail for chosen Map items only (moto picks mocks by retry count); a fourth
gives an ``aws-sdk`` task's streamed ``Body`` (S3 GetObject) as the string Step Functions returns, where
moto's interpreter hands the stream object on.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_unsupported,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.mocking.mock_config import (
    MockedResponseReturn,
    MockedResponseThrow,
    MockTestCase,
    StateMockedResponses,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/cxr-test-state-machine"


@dataclass
class Mocks:
    """Per state: the result it returns or the (error, cause) it throws; ``fail_items``: chosen Map items;
    ``throws_once``: the (error, cause) a state throws on its first attempt, before its retry returns."""

    returns: dict[str, Any] = field(default_factory=dict)
    throws: dict[str, tuple[str, str]] = field(default_factory=dict)
    fail_items: dict[str, tuple[str, set[str], str, str]] = field(default_factory=dict)
    throws_once: dict[str, tuple[str, str]] = field(default_factory=dict)

    def test_case(self) -> MockTestCase:
        responses = [
            StateMockedResponses(name, f"{name}Return", self._attempts(name, payload))
            for name, payload in self.returns.items()
        ]
        responses += [
            StateMockedResponses(name, f"{name}Throw", [MockedResponseThrow(0, 0, error, cause)])
            for name, (error, cause) in self.throws.items()
        ]
        return MockTestCase("cxr", "test", responses)

    def _attempts(self, name: str, payload: Any) -> list:
        """moto picks a state's mocked response by its retry count."""
        if name not in self.throws_once:
            return [MockedResponseReturn(0, 0, payload)]
        error, cause = self.throws_once[name]
        return [MockedResponseThrow(0, 0, error, cause), MockedResponseReturn(1, 1, payload)]


@contextlib.contextmanager
def mocked_tasks(monkeypatch: pytest.MonkeyPatch, mocks: Mocks) -> Iterator[None]:
    monkeypatch.setattr(
        state_task_service_unsupported,
        "_SUPPORTED_INTEGRATION_PATTERNS",
        {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync},
    )
    original_init = ExecutionWorker.__init__

    def init_with_mocks(self, *args, **kwargs):
        kwargs["mock_test_case"] = kwargs.get("mock_test_case") or mocks.test_case()
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(ExecutionWorker, "__init__", init_with_mocks)
    original_response = Environment.get_current_mocked_response

    def response_per_item(self):
        rule = mocks.fail_items.get(self.next_state_name)
        if rule:
            path, values, error, cause = rule
            value = self.states.get_input()
            for key in path.split("."):
                value = value[key]
            if value in values:
                return MockedResponseThrow(0, 0, error, cause)
        return original_response(self)

    monkeypatch.setattr(Environment, "get_current_mocked_response", response_per_item)
    original_sdk_task = StateTaskServiceAwsSdk._eval_service_task

    def body_as_string(self, env, *args, **kwargs):
        original_sdk_task(self, env, *args, **kwargs)
        response = env.stack[-1]
        if hasattr(response.get("Body"), "read"):
            response["Body"] = response["Body"].read().decode()

    monkeypatch.setattr(StateTaskServiceAwsSdk, "_eval_service_task", body_as_string)
    yield


@dataclass(frozen=True)
class TaskCall:
    """The Parameters one Task state evaluated (JSONPaths and intrinsic functions resolved)."""

    state: str
    resource: str
    parameters: dict[str, Any]


@contextlib.contextmanager
def recorded_task_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[TaskCall]]:
    """Records every Task state's evaluated Parameters, before moto drops any it does not support."""
    calls: list[TaskCall] = []
    original = StateTask._eval_parameters

    def recording(self, env):
        if self.parargs is not None:
            # moto's eval does nothing in a frame it does not count as running: then nothing was pushed, and a
            # pop would record the state's input as its parameters.
            depth = len(env.stack)
            self.parargs.eval(env=env)
            if len(env.stack) > depth:
                calls.append(TaskCall(self.name, self.resource.resource_arn, copy.deepcopy(env.stack.pop())))
        return original(self, env)

    monkeypatch.setattr(StateTask, "_eval_parameters", recording)
    yield calls


@dataclass
class Run:
    status: str
    entered: list[str]
    error: str | None
    cause: str | None
    output: Any


def run_execution(
    sfn_client, definition: dict[str, Any], payload: dict[str, Any], *, timeout_s: float = 60
) -> Run:
    """Creates the state machine in moto, runs one execution to its end, returns the states it entered."""
    machine = sfn_client.create_state_machine(name="cxr", definition=json.dumps(definition), roleArn=ROLE_ARN)
    arn = sfn_client.start_execution(
        stateMachineArn=machine["stateMachineArn"], name="cxr-test-run", input=json.dumps(payload)
    )["executionArn"]
    deadline = time.monotonic() + timeout_s
    while (described := sfn_client.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish in time"
        time.sleep(0.05)
    events = sfn_client.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    output = json.loads(described["output"]) if described.get("output") else None
    return Run(described["status"], entered, described.get("error"), described.get("cause"), output)


def quick_retries(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with every Retry waiting 1 s (moto sleeps the real intervals, 30 s and more). Which
    errors are retried, and how often, is unchanged."""
    copied = copy.deepcopy(definition)

    def walk(states: dict[str, Any]) -> None:
        for state in states.values():
            for retrier in state.get("Retry", []):
                retrier["IntervalSeconds"] = 1
            walk((state.get("ItemProcessor") or state.get("Iterator") or {}).get("States", {}))

    walk(copied["States"])
    return copied


def one_item_at_a_time(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with every Map running one item at a time: moto runs a Map's items in threads, and
    recorded calls should not depend on how they interleave. Task parameters are unchanged."""
    copied = copy.deepcopy(definition)

    def walk(states: dict[str, Any]) -> None:
        for state in states.values():
            if state.get("Type") == "Map":
                state["MaxConcurrency"] = 1
                walk((state.get("ItemProcessor") or state.get("Iterator") or {}).get("States", {}))

    walk(copied["States"])
    return copied
