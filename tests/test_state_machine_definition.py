"""The state machine definition: failure paths, the Map over models, and a snapshot against accidental change.

Update the snapshot after an intended change with
``CXR_UPDATE_SNAPSHOTS=1 pytest tests/test_state_machine_definition.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cdk_support import all_states, normalised_definition, synthesize

SNAPSHOT = Path(__file__).parent / "snapshots" / "state_machine.json"


@pytest.fixture(scope="module")
def machine() -> dict:
    return normalised_definition(synthesize().template)


@pytest.fixture(scope="module")
def states(machine) -> dict:
    return all_states(machine["States"])


def _emr_tasks(states: dict) -> dict:
    return {n: s for n, s in states.items() if s["Type"] == "Task" and ":elasticmapreduce:" in s["Resource"]}


def _enclosing(states: dict, name: str) -> dict:
    """The state that catches for ``name``: the Map holding it (a Catch cannot leave a Map), else itself."""
    for state in states.values():
        if name in (state.get("ItemProcessor") or {}).get("States", {}):
            return state
    return states[name]


def test_every_emr_task_after_creation_catches_all_into_termination(states):
    """Each EMR task but creation and termination catches States.ALL into TerminateClusterAfterFailure,
    itself or through the Map it runs in (the external sets' steps)."""
    working = {
        n: s
        for n, s in _emr_tasks(states).items()
        if n != "CreateCluster" and "terminateCluster" not in s["Resource"]
    }
    assert {"RunEtlStep", "RunExternalEtlStep"} <= set(working)
    for name in working:
        catches = _enclosing(states, name).get("Catch", [])
        assert [c["Next"] for c in catches if "States.ALL" in c["ErrorEquals"]] == [
            "TerminateClusterAfterFailure"
        ], name
    assert "Catch" not in states["RunExternalEtlStep"] and states["RunExternalEtlSteps"]["Type"] == "Map"


def test_termination_after_failure_ends_in_a_fail_state(states):
    """Terminate-after-failure continues to EtlFailed; a failing termination fails the run loudly too."""
    terminate = states["TerminateClusterAfterFailure"]
    assert states[terminate["Next"]]["Type"] == "Fail"
    for name in ("TerminateCluster", "TerminateClusterAfterFailure"):
        (catch,) = states[name]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and states[catch["Next"]]["Type"] == "Fail"


def test_cluster_creation_failure_fails_without_a_step(states):
    """CreateCluster catches everything into a Fail state (EMR terminates a cluster that fails to start)."""
    (catch,) = states["CreateCluster"]["Catch"]
    assert states[catch["Next"]]["Type"] == "Fail"


def test_every_emr_and_sagemaker_task_retries_transient_errors(states):
    """Throttling and service errors are retried with exponential backoff."""
    tasks = {
        n: s
        for n, s in states.items()
        if s["Type"] == "Task" and (":sagemaker:" in s["Resource"] or ":elasticmapreduce:" in s["Resource"])
    }
    assert len(tasks) == 11  # with the audit, the external ETL steps and CreateModelCard
    for name, state in tasks.items():
        (retry,) = state["Retry"]
        assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 2, name
        assert any("Exception" in e for e in retry["ErrorEquals"]), name


def test_models_run_in_a_map_with_the_context_concurrency(states):
    """One Map item per model (ItemsPath $.models), at most modelConcurrency at once, train then evaluate."""
    mapped = states["TrainAndEvaluateModels"]
    from tests.cdk_support import cdk_context

    concurrency = cdk_context()["modelConcurrency"]
    assert (
        mapped["Type"] == "Map"
        and mapped["ItemsPath"] == "$.models"
        and mapped["MaxConcurrency"] == concurrency
    )
    processor = mapped["ItemProcessor"]
    assert processor["StartAt"] == "Train" and processor["States"]["Train"]["Next"] == "EvaluateInputs"
    assert processor["States"]["EvaluateInputs"]["Next"] == "Evaluate"
    assert mapped["Next"] == "Report"


def test_each_evaluation_is_followed_by_its_model_card_whose_failure_is_kept_not_fatal(states):
    """Evaluate -> ReadModelCard -> CreateModelCard (a Draft card, KMS-encrypted); both catch everything into
    the item's outcome, which the Map collects as $.modelCards."""
    processor = states["TrainAndEvaluateModels"]["ItemProcessor"]["States"]
    assert processor["Evaluate"]["Next"] == "ReadModelCard"
    assert processor["ReadModelCard"]["Next"] == "CreateModelCard"
    create = processor["CreateModelCard"]
    assert (
        create["Parameters"]["ModelCardStatus"] == "Draft"
        and create["Parameters"]["SecurityConfig"]["KmsKeyId"]
    )
    for name in ("ReadModelCard", "CreateModelCard"):
        (catch,) = processor[name]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "ModelCardOutcome", name
    assert processor["ModelCardOutcome"]["Type"] == "Pass" and processor["ModelCardOutcome"]["End"]
    assert states["TrainAndEvaluateModels"]["ResultPath"] == "$.modelCards"


def test_input_is_validated_before_anything_starts(machine, states):
    """The first state is the input Choice; every path to a task goes through the per-model validation Map."""
    assert machine["StartAt"] == "ValidateInput"
    assert states["ValidateInput"]["Default"] == "ValidateModels"
    assert states["ValidateModels"]["Next"] == "ValidateExternals"
    assert states["ValidateExternals"]["Next"] == "FindDataset"


def test_data_audit_runs_before_any_training_and_only_with_external_sets(states):
    """Both ways from the ETL decision reach training through ExternalSets?, which audits when
    ``$.externals`` has an element; a failing audit fails the run."""
    assert states["TerminateCluster"]["Next"] == "ExternalSets?"
    assert [c["Next"] for c in states["DatasetsExist?"]["Choices"]] == ["ExternalSets?"]
    (audit_rule,) = states["ExternalSets?"]["Choices"]
    assert audit_rule == {"Variable": "$.externals[0]", "IsPresent": True, "Next": "AuditData"}
    assert states["ExternalSets?"]["Default"] == states["AuditData"]["Next"] == "TrainAndEvaluateModels"
    (catch,) = states["AuditData"]["Catch"]
    assert states[catch["Next"]]["Type"] == "Fail"


def test_definition_matches_the_snapshot(machine):
    """The whole definition (asset hashes normalised) equals tests/snapshots/state_machine.json."""
    text = json.dumps(machine, indent=1, sort_keys=True) + "\n"
    if os.environ.get("CXR_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), "no snapshot yet: run with CXR_UPDATE_SNAPSHOTS=1 once and commit it"
    assert text == SNAPSHOT.read_text(), (
        "the state machine changed; if intended, rerun with CXR_UPDATE_SNAPSHOTS=1 "
        "and commit tests/snapshots/state_machine.json"
    )


def test_aws_sdk_sagemaker_tasks_retry_and_catch_by_their_sdk_error_names(states):
    """An aws-sdk task's errors are "<ServiceName>.<ErrorName>" (Step Functions' AWS SDK integration docs),
    so a throttled CreateModelCard or CreateModelPackage is "SageMaker.ThrottlingException" and a bare
    "ThrottlingException" never matches; both catch everything (a card or registration never fails the run)."""
    sdk = {n: s for n, s in states.items() if s["Type"] == "Task" and ":aws-sdk:sagemaker:" in s["Resource"]}
    assert set(sdk) == {"CreateModelCard", "RegisterModel"}
    for name, state in sdk.items():
        errors = [e for retry in state["Retry"] for e in retry["ErrorEquals"]]
        assert "SageMaker.ThrottlingException" in errors, name
        assert all(e.startswith("SageMaker.") for e in errors), (name, errors)
        assert [c["ErrorEquals"] for c in state["Catch"]] == [["States.ALL"]], name
