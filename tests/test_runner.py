"""The local runner: the same arguments as the cloud, finished steps skipped, container mode refused cleanly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from jobs.cli import main as cxr
from jobs.contracts import sagemaker_env
from jobs.contracts.sagemaker_env import DATASET_CHANNEL, EVALUATION_OUTPUT_DIR
from jobs.experiment.schema import ModelRun, load_experiment, parse_experiment
from jobs.plan import containers, runner
from jobs.plan.pipeline_input import etl_arguments_of, state_machine_input
from tests.cdk_support import synthesize
from tests.sagemaker_local import map_items, resolve, state, task_request

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.json"))


def _by_role(args: list[str], places: dict[str, str]) -> list[str]:
    """Each argument whose value is one of ``places`` (or a file inside one) with that place's role instead:
    a whole value is replaced, never a substring of another."""
    out = []
    for arg in args:
        head, sep, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
        for place, role in sorted(places.items(), key=lambda item: -len(item[0])):
            if value == place or value.startswith(place.rstrip("/") + "/"):
                value = role + value[len(place.rstrip("/")) :]
                break
        out.append(f"{head}{sep}{value}")
    return out


def _mounted_roles(request: dict, roles_by_uri: dict[str, str]) -> dict[str, str]:
    """A processing request's LocalPaths by the role of the S3 URI mounted there (the definition's own)."""
    inputs = [(i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"]) for i in request["ProcessingInputs"]]
    outputs = [
        (o["S3Output"]["S3Uri"], o["S3Output"]["LocalPath"])
        for o in request["ProcessingOutputConfig"]["Outputs"]
    ]
    return {local: roles_by_uri[uri.rstrip("/")] for uri, local in inputs + outputs}


def _app_arguments(request: dict) -> list[str]:
    """The ``cxr`` subcommand the job's container runs and its arguments: the image's ``evaluate`` program
    is ``cxr evaluate`` (pyproject's scripts), ``cxr`` takes the subcommand as its first argument."""
    app = request["AppSpecification"]
    program, *rest = app["ContainerEntrypoint"]
    return [*([] if program == "cxr" else [program]), *rest, *app.get("ContainerArguments", [])]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_step_gets_the_same_arguments_locally_and_in_the_synthesized_cloud_role_by_role(path, tmp_path):
    """Local places are where the README says a run writes; cloud places are where the synthesized state
    machine mounts each S3 URI of the execution input. Both sides are read back by role and compared."""
    template = synthesize().template
    exp = load_experiment(path)
    exp = exp.model_copy(update={"training": exp.training.model_copy(update={"seeds": 2})})  # seeds too
    runs = tmp_path / "runs"
    raw = tmp_path / "raw"
    local = {s.name: s.command[3:] for s in runner.plan(exp, runner.LocalLayout(runs), raw)}
    payload = state_machine_input(
        exp, raw_uri="s3://raw", datasets_uri="s3://ds", artifacts_uri="s3://art", run_id="20260101-000000"
    )
    experiment_dir = runs / "experiments" / exp.name
    local_places = {str(raw): "RAW", str(runs / "datasets" / exp.dataset_key()): "DATASET"}
    cloud_uris = {"s3://raw": "RAW", payload["dataset"]["uri"]: "DATASET"}
    for external in payload["externals"]:
        name = external["name"]
        local_places[str(runs / "datasets" / exp.external_dataset_key(name))] = f"EXT-{name}"
        cloud_uris[external["dataset"]["uri"]] = f"EXT-{name}"
    assert _by_role(local["etl"], local_places) == _by_role(["etl", *etl_arguments_of(payload)], cloud_uris)
    for external in payload["externals"]:
        cloud = ["etl", *external["etl"]["stepArguments"][1:]]
        assert _by_role(local[f"etl external {external['name']}"], local_places) == _by_role(
            cloud, cloud_uris
        )
    if payload["externals"]:
        audit = task_request(template, "AuditData", payload)
        cloud_places = _mounted_roles(audit, {**cloud_uris, payload["audit"]["uri"]: "AUDIT"})
        local_audit = _by_role(
            local["audit-data"], {**local_places, str(experiment_dir / "audit-data"): "AUDIT"}
        )
        assert local_audit == _by_role(_app_arguments(audit), cloud_places)
    seen = []
    for item in map_items(template, payload):
        model, seed = item["item"]["model"], item["item"]["seed"]
        seen.append((model, seed))
        model_dir = experiment_dir / "models" / model / f"seed-{seed}"
        training = resolve(state(template, "Train")["Parameters"], item)
        (channel,) = [c for c in training["InputDataConfig"] if c["ChannelName"] == DATASET_CHANNEL]
        assert channel["DataSource"]["S3DataSource"]["S3Uri"].rstrip("/") == payload["dataset"]["uri"]
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in sorted(training["HyperParameters"].items())]
        places = {**local_places, str(model_dir): "MODEL"}
        assert _by_role(local[f"train {model} seed {seed}"], places) == [
            "train",
            "--data=DATASET",
            "--model-dir=MODEL",
            *flags,
        ]
        assert training["HyperParameters"]["seed"] == str(seed)
        evaluation = task_request(
            template, "Evaluate", {**item, "training": {"modelArtifact": "s3://art/model.tar.gz"}}
        )
        roles = {**cloud_uris, "s3://art/model.tar.gz": "MODEL", item["item"]["evaluationUri"]: "OUT"}
        places[str(experiment_dir / "evaluations" / model / f"seed-{seed}")] = "OUT"
        assert _by_role(local[f"evaluate {model} seed {seed}"], places) == _by_role(
            _app_arguments(evaluation), _mounted_roles(evaluation, roles)
        )
    assert seen == [(m, s) for m in exp.training.models for s in (1, 2)]
    report = task_request(template, "Report", payload)
    manifest = f"s3://{payload['dataset']['bucket']}/{payload['dataset']['manifestKey']}"
    roles = {
        **cloud_uris,
        manifest: "DATASET",
        payload["report"]["evaluationsUri"]: "EVALUATIONS",
        payload["report"]["uri"]: "OUT",
    }
    places = {
        **local_places,
        str(experiment_dir / "evaluations"): "EVALUATIONS",
        str(experiment_dir / "report"): "OUT",
    }
    assert _by_role(local["report"], places) == _by_role(
        _app_arguments(report), _mounted_roles(report, roles)
    )


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
    steps = containers.container_plan(exp, layout, tmp_path)
    assert steps[0].command[:2] == ["docker", "build"] and steps[0].done_marker is None
    run = ModelRun("small_cnn", 1)
    train = next(s for s in steps if s.name == "train small_cnn seed 1")
    assert train.command[:5] == ["docker", "run", "--rm", "--network", "none"]
    assert f"{layout.dataset(exp)}:/opt/ml/input/data/dataset:ro" in train.command
    assert f"{layout.model(exp, run)}:/opt/ml/model" in train.command
    image_at = train.command.index(containers.IMAGE)
    assert train.command[image_at + 1] == "train" and "--model=small_cnn" in train.command
    assert not any(a.startswith(("--data=", "--model-dir=")) for a in train.command)
    evaluate = next(s for s in steps if s.name == "evaluate small_cnn seed 1")
    image_at = evaluate.command.index(containers.IMAGE)
    arguments = evaluate.command[image_at + 1 :]
    assert arguments[:4] == [
        "evaluate",
        "--model-dir=/opt/ml/processing/model",
        "--data=/opt/ml/processing/dataset",
        "--output=/opt/ml/processing/evaluation",
    ]
    assert "--external=hannover=/opt/ml/processing/external/hannover" in arguments
    assert f"{layout.evaluation(exp, run)}:{EVALUATION_OUTPUT_DIR}" in evaluate.command
    assert (
        f"{layout.external_dataset(exp, 'hannover')}:/opt/ml/processing/external/hannover:ro"
        in evaluate.command
    )
    # the other steps keep their local commands
    assert next(s for s in steps if s.name == "report").command[3] == "report"


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
    assert names.index("audit-data") < names.index("train small_cnn seed 1")
    evaluate = steps["evaluate small_cnn seed 1"].command
    assert f"--external=other-hospital={external}" in evaluate
    in_docker = next(
        s for s in containers.container_plan(exp, layout, tmp_path) if s.name == "evaluate small_cnn seed 1"
    )
    inside = f"{sagemaker_env.EVALUATION_EXTERNAL_DIR}/other-hospital"
    assert f"{external}:{inside}:ro" in in_docker.command
    assert f"--external=other-hospital={inside}" in in_docker.command


def test_a_step_log_keeps_everything_and_the_console_leaves_out_tensorflows_and_sparks_chatter(
    tmp_path, capfd
):
    chatter = (  # as TensorFlow 2.21 writes them on this machine's CPU
        "E0000 00:00:1796593045.199234    4315 node_def_util.cc:682] NodeDef mentions attribute "
        "use_unbounded_threadpool which is not in the op definition\n"
        "I0000 00:00:1796606514.406229    7131 cpu_feature_guard.cc:227] This TensorFlow binary is optimized "
        "to use available CPU instructions in performance-critical operations.\n"
        "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, "
        "rebuild TensorFlow with the appropriate compiler flags.\n"
        "WARNING: Using incubator modules: jdk.incubator.vector\n"
        "Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties\n"
        'Setting default log level to "WARN".\n'
        "To adjust logging level use sc.setLogLevel(newLevel). For SparkR, use setLogLevel(newLevel).\n"
        "26/12/07 01:05:33 WARN Utils: Your hostname, vm, resolves to a loopback address: 127.0.0.1; using "
        "192.0.2.2 instead (on interface eth0)\n"
        "26/12/07 01:05:33 WARN Utils: Set SPARK_LOCAL_IP if you need to bind to another address\n"
        "26/12/07 02:19:58 WARN NativeCodeLoader: Unable to load native-hadoop library for your platform... "
        "using builtin-java classes where applicable\n"
        "26/12/07 02:19:59 WARN Utils: Service 'SparkUI' could not bind on port 4040. Attempting port 4041."
    )
    script = f"import sys; print('epoch 1/2'); print({chatter!r}, file=sys.stderr); print('real error', file=sys.stderr)"
    log = tmp_path / "logs" / "step.log"
    step = runner.Step("noisy", [sys.executable, "-c", script], tmp_path / "never", "k", log)
    assert runner.run_steps([step], force=False, echo=lambda line: None)
    console = capfd.readouterr()
    assert "epoch 1/2" in console.out and "real error" in console.err
    assert "NodeDef" not in console.out + console.err
    assert "TensorFlow" not in console.out + console.err
    assert "WARN" not in console.out + console.err and "log level" not in console.out + console.err
    kept = log.read_text()
    assert "epoch 1/2" in kept and "NodeDef mentions attribute" in kept and "real error" in kept
    assert "rebuild TensorFlow with the appropriate compiler flags" in kept


def _rendezvous_step(tmp_path: Path, name: str, other: str, after: tuple[str, ...] = ()) -> runner.Step:
    """Writes its flag, then waits (up to 60 s) for ``other``'s: it can only finish alongside that step."""
    script = (
        "import pathlib, sys, time; d = pathlib.Path(sys.argv[1]); (d / sys.argv[2]).write_text('x');"
        "end = time.time() + 60\n"
        "while not (d / sys.argv[3]).exists():\n"
        "    time.sleep(0.05)\n"
        "    if time.time() > end: sys.exit(4)\n"
        "(d / (sys.argv[2] + '.done')).write_text('x')"
    )
    command = [sys.executable, "-c", script, str(tmp_path), name, other]
    return runner.Step(name, command, tmp_path / f"{name}.done", "k", after=after)


def test_independent_steps_run_side_by_side_and_a_step_waits_for_what_it_reads(tmp_path):
    both = [_rendezvous_step(tmp_path, "a", "b"), _rendezvous_step(tmp_path, "b", "a")]
    lines: list[str] = []
    assert runner.run_steps(both, force=False, echo=lines.append, workers=2), lines
    # c reads a's output: it starts after a finished, so a's flag is there and c returns at once
    later = _rendezvous_step(tmp_path, "c", "a.done", after=("a",))
    lines.clear()
    assert runner.run_steps([*both, later], force=True, echo=lines.append, workers=2), lines
    assert lines.index("[1/3] a: running") < lines.index("[3/3] c: running")
    assert any(line.startswith("[1/3] a: finished") for line in lines[: lines.index("[3/3] c: running")])
