"""The synthesized definition checked by the Amazon States Language validator published on npm (asl-validator,
pinned in package.json): states, transitions, JSONPaths and payload templates as the ASL spec defines them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.aws_models import deployed_definition_text
from tests.cdk_support import ROOT, SWITCHES_ON, synthesize

VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"


def _validate(definition_file: Path) -> subprocess.CompletedProcess:
    if not VALIDATOR.exists():
        pytest.fail(
            f"{VALIDATOR} is missing: run `make setup` (npm ci installs asl-validator from package.json)"
        )
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(definition_file)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("overrides", [{}, SWITCHES_ON], ids=["cdk.json", "spot+vpc+isolation+tls"])
def test_definition_is_valid_asl(tmp_path, overrides):
    """asl-validator accepts the deployed definition (with its ARN and path checks on)."""
    synth = synthesize(nag=False, **overrides) if overrides else synthesize()
    path = tmp_path / "definition.json"
    path.write_text(deployed_definition_text(synth.template))
    result = _validate(path)
    assert result.returncode == 0 and "is valid" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(StartAt="NoSuchState"), "MISSING_TRANSITION_TARGET"),
        (
            lambda d: d["States"]["FindDataset"]["Parameters"].update({"Bucket.$": "dataset.bucket"}),
            "Bucket.$",
        ),
    ],
    ids=["missing-state", "bad-jsonpath"],
)
def test_validator_rejects_a_broken_definition(tmp_path, change, expected):
    """Negative control: a transition to a missing state, a malformed JSONPath."""
    definition = json.loads(deployed_definition_text(synthesize().template))
    change(definition)
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(definition))
    result = _validate(path)
    report = result.stdout + result.stderr
    assert result.returncode != 0 and expected in report, report
