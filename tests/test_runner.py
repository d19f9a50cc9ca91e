"""The local runner: the same arguments as the cloud, finished steps skipped, container mode refused cleanly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from jobs import containers, runner, sagemaker_env
from jobs.cli import main as cxr
from jobs.experiment import evaluation_arguments, hyperparameters_to_argv, load_experiment, parse_experiment
from jobs.pipeline_input import (
    EVALUATION_DATASET_DIR,
    EVALUATION_MODEL_DIR,
    EVALUATION_OUTPUT_DIR,
    REPORT_DATASET_DIR,
    REPORT_EVALUATIONS_DIR,
    REPORT_OUTPUT_DIR,
    etl_arguments_of,
    state_machine_input,
)

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.json"))


def _without_locations(args: list[str], locations: dict[str, str]) -> list[str]:
    """Arguments with each place replaced by its role, so local and cloud runs can be compared."""
    out = []
    for arg in args:
        for place, role in locations.items():
            arg = arg.replace(place, role)
        out.append(arg)
    return out


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_local_and_cloud_runs_give_the_entry_points_the_same_arguments(path, tmp_path):
    exp = load_experiment(path)
    layout = runner.LocalLayout(tmp_path)
    steps = {s.name: s.command[4:] for s in runner.plan(exp, layout, tmp_path / "raw")}
    cloud = state_machine_input(
        exp, raw_uri="s3://raw", datasets_uri="s3://ds", artifacts_uri="s3://art", run_id="20260101-000000"
    )
    dataset_local, dataset_cloud = str(layout.dataset(exp)), cloud["dataset"]["uri"]
    local_etl = _without_locations(steps["etl"], {str(tmp_path / "raw"): "RAW", dataset_local: "DATASET"})
    cloud_etl = _without_locations(etl_arguments_of(cloud), {"s3://raw": "RAW", dataset_cloud: "DATASET"})
    assert local_etl == cloud_etl
    external_local = {
        str(layout.external_dataset(exp, e.name)): f"EXT-{e.name}" for e in exp.evaluation.external
    }
    external_cloud = {sagemaker_env.external_dir(e.name): f"EXT-{e.name}" for e in exp.evaluation.external}
    for external in cloud["externals"]:
        name = external["name"]
        local = {str(tmp_path / "raw"): "RAW", str(layout.external_dataset(exp, name)): "OUT"}
        remote = {"s3://raw": "RAW", external["dataset"]["uri"]: "OUT"}
        assert _without_locations(steps[f"etl external {name}"], local) == _without_locations(
            external["etl"]["stepArguments"][1:], remote
        )
    for model, item in zip(exp.training.models, cloud["models"], strict=True):
        local_train = [a for a in steps[f"train {model}"] if not a.startswith(("--data=", "--model-dir="))]
        assert local_train == hyperparameters_to_argv(item["hyperparameters"])
        local_eval = _without_locations(
            steps[f"evaluate {model}"],
            {
                str(layout.model(exp, model)): "MODEL",
                dataset_local: "DATASET",
                str(layout.evaluation(exp, model)): "OUT",
                **external_local,
            },
        )
        cloud_eval = _without_locations(
            cloud["evaluation"]["arguments"],
            {
                EVALUATION_MODEL_DIR: "MODEL",
                EVALUATION_DATASET_DIR: "DATASET",
                EVALUATION_OUTPUT_DIR: "OUT",
                **external_cloud,
            },
        )
        assert local_eval == cloud_eval
    local_report = _without_locations(
        steps["report"],
        {
            str(layout.experiment(exp) / "evaluations"): "EVALUATIONS",
            dataset_local: "DATASET",
            str(layout.report(exp)): "OUT",
        },
    )
    cloud_report = _without_locations(
        cloud["report"]["arguments"][1:],
        {REPORT_EVALUATIONS_DIR: "EVALUATIONS", REPORT_DATASET_DIR: "DATASET", REPORT_OUTPUT_DIR: "OUT"},
    )
    assert local_report == cloud_report


def _touch_step(tmp_path: Path, name: str, key: str) -> runner.Step:
    marker = tmp_path / name / "done"
    command = [
        sys.executable,
        "-c",
        f"import pathlib; p = pathlib.Path({str(marker)!r}); "
        "p.parent.mkdir(parents=True, exist_ok=True); p.write_text(str(int(p.exists() and p.read_text() or 0) + 1))",
    ]
    return runner.Step(name, command, marker, key)


def test_finished_steps_are_skipped_until_their_key_changes(tmp_path):
    steps = [_touch_step(tmp_path, "a", "k1"), _touch_step(tmp_path, "b", "k1")]
    lines: list[str] = []
    assert runner.run_steps(steps, force=False, echo=lines.append)
    assert runner.run_steps(steps, force=False, echo=lines.append)
    assert sum("skipped" in line for line in lines) == 2
    assert (tmp_path / "a" / "done").read_text() == "1"
    changed = [_touch_step(tmp_path, "a", "k2"), steps[1]]
    assert runner.run_steps(changed, force=False, echo=lines.append)
    assert (tmp_path / "a" / "done").read_text() == "2" and (tmp_path / "b" / "done").read_text() == "1"
    assert runner.run_steps(changed, force=True, echo=lines.append)
    assert (tmp_path / "b" / "done").read_text() == "2"


def test_a_failed_step_stops_the_run_and_says_so(tmp_path):
    failing = runner.Step("broken", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "never", "k")
    after = _touch_step(tmp_path, "after", "k")
    lines: list[str] = []
    assert not runner.run_steps([failing, after], force=False, echo=lines.append)
    assert "FAILED with exit code 3" in lines[-1]
    assert not (tmp_path / "after" / "done").exists()


def test_container_mode_without_a_docker_engine_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(
        containers, "docker_problem", lambda: "no Docker engine is running (`docker info` failed)"
    )
    assert cxr(["run", "demo", "--local", "--container"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no Docker engine" in err


def test_container_steps_mount_the_opt_ml_contract(tmp_path):
    """Training reads the dataset channel SageMaker would mount; evaluation gets the processing paths."""
    exp = load_experiment(ROOT / "experiments" / "demo.json")
    layout = runner.LocalLayout(tmp_path)
    steps = containers.in_container(runner.plan(exp, layout, tmp_path))
    assert steps[0].command[:2] == ["docker", "build"]
    train = next(s for s in steps if s.name == "train small_cnn")
    assert train.command[:5] == ["docker", "run", "--rm", "--network", "none"]
    channel = sagemaker_env.channel_dir(sagemaker_env.DATASET_CHANNEL)
    assert f"{layout.dataset(exp)}:{channel}:ro" in train.command
    assert (
        f"{layout.model(exp, 'small_cnn')}:{sagemaker_env.DEFAULT_ROOT}/{sagemaker_env.MODEL_DIR}"
        in train.command
    )
    assert "--model=small_cnn" in train.command and not any(a.startswith("--data=") for a in train.command)
    evaluate = next(s for s in steps if s.name == "evaluate small_cnn")
    image_at = evaluate.command.index(containers.IMAGE)
    assert evaluate.command[image_at + 1 :] == [
        "evaluate",
        *evaluation_arguments(
            exp,
            model_dir=EVALUATION_MODEL_DIR,
            data=EVALUATION_DATASET_DIR,
            output=EVALUATION_OUTPUT_DIR,
            externals={
                e.name: f"{sagemaker_env.EVALUATION_EXTERNAL_DIR}/{e.name}" for e in exp.evaluation.external
            },
        ),
    ]
    assert f"{layout.evaluation(exp, 'small_cnn')}:{EVALUATION_OUTPUT_DIR}" in evaluate.command


def test_an_unknown_experiment_is_named(capsys):
    assert cxr(["run", "no-such-experiment", "--local"]) == 2
    assert "no such experiment file" in capsys.readouterr().err


def test_external_test_sets_get_a_test_only_etl_an_audit_and_reach_the_evaluation(tmp_path):
    raw = json.loads((ROOT / "experiments" / "demo.json").read_text())
    raw["evaluation"]["external"] = [
        {"name": "other-hospital", "sources": [{"kind": "folders", "uri": "/x/h2"}]}
    ]
    exp = parse_experiment(raw)
    layout = runner.LocalLayout(tmp_path)
    steps = {s.name: s for s in runner.plan(exp, layout, tmp_path)}
    etl = steps["etl external other-hospital"].command
    external = layout.external_dataset(exp, "other-hospital")
    assert "--test-only" in etl and "--source=folders=/x/h2" in etl and f"--output={external}" in etl
    assert external != layout.dataset(exp)
    assert steps["audit-data"].command[4:6] == [str(layout.dataset(exp)), f"--against={external}"]
    names = list(steps)
    assert names.index("audit-data") < names.index("train small_cnn")
    evaluate = steps["evaluate small_cnn"].command
    assert f"--external=other-hospital={external}" in evaluate
    in_docker = next(
        s for s in containers.in_container(list(steps.values())) if s.name == "evaluate small_cnn"
    )
    inside = f"{sagemaker_env.EVALUATION_EXTERNAL_DIR}/other-hospital"
    assert f"{external}:{inside}:ro" in in_docker.command
    assert f"--external=other-hospital={inside}" in in_docker.command
