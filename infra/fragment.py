"""A state-machine fragment that only has to say where it starts and where it ends."""

from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn


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
