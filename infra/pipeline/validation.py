"""The first states of the pipeline: the input rules of jobs.plan.pipeline_input as Choice states.

A bad input fails here, with the rule's message, before any cluster or job starts. The rules are the
same objects ``validate_state_machine_input`` checks in Python, so both give the same verdict.
"""

from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.pipeline.fragment import Fragment
from jobs.plan.pipeline_input import EXTERNAL_RULES, INPUT_RULES, MODEL_RULES, InputRule

INVALID_INPUT = "InvalidInput"


def rule_condition(rule: InputRule) -> sfn.Condition:
    """True when the value at ``rule.path`` passes the rule (callers check presence first)."""
    if rule.kind == "present":
        return sfn.Condition.is_present(rule.path)
    if rule.kind == "equals":
        value = rule.values[0]
        if isinstance(value, str):
            return sfn.Condition.string_equals(rule.path, value)
        return sfn.Condition.and_(
            sfn.Condition.is_numeric(rule.path), sfn.Condition.number_equals(rule.path, value)
        )
    is_string = sfn.Condition.is_string(rule.path)
    if rule.kind == "one_of":
        return sfn.Condition.and_(
            is_string, sfn.Condition.or_(*[sfn.Condition.string_equals(rule.path, v) for v in rule.values])
        )
    if rule.kind == "matches":
        return sfn.Condition.and_(is_string, sfn.Condition.string_matches(rule.path, rule.values[0]))
    return is_string


def rules_choice(scope: Construct, state_id: str, rules: tuple[InputRule, ...], prefix: str) -> sfn.Choice:
    """One Choice: rules in order, each broken rule to its own Fail state; the caller sets ``.otherwise``."""
    choice = sfn.Choice(scope, state_id)
    for rule in rules:
        fail = sfn.Fail(scope, f"{prefix}{rule.name}", error=INVALID_INPUT, cause=rule.message)
        # Presence first: a later comparison on a missing path would be a runtime error, not a message.
        choice.when(sfn.Condition.not_(sfn.Condition.is_present(rule.path)), fail)
        choice.when(sfn.Condition.not_(rule_condition(rule)), fail)
    return choice


class ValidateInput(Fragment):
    """Checks the execution input, then every element of ``models`` and of ``externals`` (Maps that
    start nothing)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        check_input = rules_choice(self, "ValidateInput", INPUT_RULES, "Invalid")
        each_model = self._each(MODEL_RULES, "models", "Model")
        each_external = self._each(EXTERNAL_RULES, "externals", "External")
        check_input.otherwise(each_model.next(each_external))
        self.bounds(check_input, [each_external])

    def _each(self, rules: tuple[InputRule, ...], field: str, kind: str) -> sfn.Map:
        check = rules_choice(self, f"Validate{kind}", rules, f"Invalid{kind}")
        check.otherwise(sfn.Pass(self, f"{kind}Valid"))
        each = sfn.Map(self, f"Validate{kind}s", items_path=f"$.{field}", result_path=sfn.JsonPath.DISCARD)
        return each.item_processor(check)
