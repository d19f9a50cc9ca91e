"""A state-machine fragment that only has to say where it starts and where it ends."""

from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct


class Fragment(sfn.StateMachineFragment):
    """Subclasses build their states, then call ``self.bounds(start, ends)``."""

    def bounds(self, start: sfn.State, ends: list[sfn.INextable]) -> None:
        self._start = start
        self._ends = ends

    @property
    def start_state(self) -> sfn.State:
        return self._start

    @property
    def end_states(self) -> list[sfn.INextable]:
        return self._ends


def fail_with_cause(scope: Construct, error: str, message: str, *values: str) -> sfn.Fail:
    """A Fail state ``error`` whose cause is ``message`` with each ``{}`` filled from ``values``: a
    ``$...`` path is read from the state's input, anything else is inserted as is."""
    return sfn.Fail(
        scope,
        error,
        error=error,
        cause_path=sfn.JsonPath.format(
            message, *[sfn.JsonPath.string_at(v) if v.startswith("$") else v for v in values]
        ),
    )
