"""checkov on the synthesized templates; every accepted finding is named, with its reason, in
infra/checkov-skips.yaml. checkov runs from its own venv (.venv-checkov): its pins conflict with ours."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.cdk_support import ROOT, SWITCHES_ON, synthesize

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIPS = ROOT / "infra" / "checkov-skips.yaml"
STATE_MACHINE_POLICY = ("CKV_AWS_111", "AWS::IAM::Policy.PipelineStateMachineRoleDefaultPolicy")
_HASH = re.compile(r"[0-9A-F]{8}$")


def _key(finding: dict) -> tuple[str, str]:
    return finding["check_id"], _HASH.sub("", finding["resource"])


@pytest.fixture(scope="module")
def findings() -> dict[tuple[str, str], list[str]]:
    """checkov's failed checks on both templates, by (check, resource without hash): the templates' names."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make setup` (installs requirements-checkov.txt)")
    templates = [synthesize().outdir, synthesize(nag=False, **SWITCHES_ON).outdir]
    files = [str(d / "CxrPipeline.template.json") for d in templates]
    result = subprocess.run(
        [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--quiet", "-o", "json"]
        + [arg for f in files for arg in ("-f", f)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports), [r["summary"] for r in reports]
    assert sum(r["summary"]["passed"] for r in reports) > 50, "checkov ran almost no check"
    found: dict[tuple[str, str], list[str]] = {}
    for report in reports:
        for finding in report["results"]["failed_checks"]:
            found.setdefault(_key(finding), []).append(finding["file_path"])
    return found


def _skips() -> dict[tuple[str, str], str]:
    return {(s["check"], s["resource"]): s["reason"] for s in yaml.safe_load(SKIPS.read_text())}


def test_every_skip_is_named_and_justified():
    """Each entry names one check on one resource and says why in a sentence or more."""
    for (check, resource), reason in _skips().items():
        assert re.fullmatch(r"CKV2?_AWS_\d+", check) and "::" in resource, (check, resource)
        assert len(reason) > 60, f"{SKIPS}: {check} on {resource} needs a real reason"


def test_checkov_finds_nothing_unexplained(findings):
    """Every failed check is one infra/checkov-skips.yaml accepts."""
    unexplained = {k: v for k, v in findings.items() if k not in _skips()}
    assert unexplained == {}, f"new checkov findings: fix them or justify them in {SKIPS}"


def test_no_skip_is_stale(findings):
    """A skip whose finding is gone is removed, so the file lists only what is accepted today."""
    assert [k for k in _skips() if k not in findings] == []


def test_state_machine_role_writes_only_with_constraints(findings):
    """CKV_AWS_111: no unconditioned write on "*" (TerminateJobFlows is scoped by the project tag)."""
    assert STATE_MACHINE_POLICY not in findings
