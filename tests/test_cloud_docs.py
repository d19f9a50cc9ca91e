"""docs/cloud.md against the code: the context table and every command-line flag it names."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from infra.settings import PipelineSettings
from jobs.cli import main as cxr
from jobs.experiment.schema import Experiment, load_experiment, parse_experiment
from jobs.plan.pipeline_input import state_machine_input

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "cloud.md").read_text()
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# Flags of other tools the page quotes (cdk, pip, the AWS CLI, docker), not of this project's code.
OTHER_TOOLS = {
    "--quiet",
    "--only-binary",
    "--require-hashes",
    "--service-code",
    "--quota-code",
    "--desired-value",
    "--format",
    # The AWS CLI commands of the tear-down section.
    "--model-package-group-name",
    "--model-package-name",
    "--query",
    "--output",
    "--bucket",
    "--log-group-name",
    "--key-id",
    "--pending-window-in-days",
    "--model-card-name",
    "--name-contains",
    "--training-job-name",
    "--processing-job-name",
}
CXR_COMMANDS = ("run", "upload-data", "stage-weights", "preflight", "start", "status", "results", "predict")


def _context_table() -> dict[str, str]:
    header = DOC.index("| key | default | meaning |")
    rows = {}
    for line in DOC[header:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        key, default = (cell.strip().strip("`") for cell in line.strip("|").split("|")[:2])
        rows[key] = default
    return rows


def _value(cell: str):
    """A table cell as cdk.json writes it: JSON (numbers, true/false, "") or a bare string."""
    try:
        return json.loads(cell)
    except json.JSONDecodeError:
        return cell


def test_context_table_lists_every_setting_with_its_cdk_json_default():
    """One row per PipelineSettings field, in order, each default exactly cdk.json's value."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    table = _context_table()
    assert list(table) == [f.name for f in fields(PipelineSettings)]
    for key, default in table.items():
        assert _value(default) == context[key], key


def _experiments() -> list[Experiment]:
    """Every shipped experiment, and the first one with an external test set added."""
    shipped = [load_experiment(path) for path in sorted((ROOT / "experiments").glob("*.json"))]
    raw = shipped[0].model_dump(mode="json")
    raw["evaluation"]["external"] = [{"name": "b", "sources": [{"kind": "folders", "uri": "b"}]}]
    return [*shipped, parse_experiment(raw)]


def _code_flags(capsys) -> set[str]:
    """Flags the cloud input carries and those every cxr command accepts."""
    flags: set[str] = set()
    for exp in _experiments():
        payload = state_machine_input(
            exp, raw_uri="s3://r", datasets_uri="s3://d", artifacts_uri="s3://a", run_id="x1"
        )
        arguments = (
            payload["etl"]["stepArguments"]
            + [a for e in payload["externals"] for a in e["etl"]["stepArguments"]]
            + payload["audit"]["arguments"]
            + payload["evaluation"]["arguments"]
            + payload["report"]["arguments"]
        )
        flags |= {a.split("=")[0] for a in arguments if a.startswith("--")}
    for command in CXR_COMMANDS:
        with pytest.raises(SystemExit):
            cxr([command, "--help"])
        flags |= set(FLAG.findall(capsys.readouterr().out))
    return flags


def test_every_flag_the_page_names_exists_in_the_code(capsys):
    """A flag in docs/cloud.md is one an entry point gets from the cloud input or a cxr command accepts."""
    unknown = set(FLAG.findall(DOC)) - _code_flags(capsys) - OTHER_TOOLS
    assert not unknown, f"docs/cloud.md names flags the code does not have: {sorted(unknown)}"
