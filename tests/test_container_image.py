"""The real image, run the way SageMaker runs what the synthesized state machine asks for (needs Docker).

The image is built from containers/Dockerfile on the local CPU base (containers/build-base.sh); the jobs
are the demo experiment's CreateTrainingJob/CreateProcessingJob requests, resolved from the definition.
Deselect with ``-m "not container"``; without an engine they are skipped in one line.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from jobs.cloud.stage_weights import INDEX
from jobs.contracts import sagemaker_env
from jobs.contracts.sagemaker_env import WEIGHTS_CHANNEL
from jobs.experiment.schema import parse_experiment
from jobs.plan import containers
from jobs.plan.pipeline_input import state_machine_input
from tests.cdk_support import ROOT, synthesize
from tests.sagemaker_local import (
    BASE_IMAGE,
    ENGINE,
    STOP_GRACE_S,
    TrainingJob,
    docker,
    map_items,
    model_artifact,
    pack_model,
    processing_run,
    resolve,
    start_engine,
    state,
    task_request,
)

MODEL = "small_cnn"
S3 = {"raw_uri": "s3://raw", "datasets_uri": "s3://datasets", "artifacts_uri": "s3://artifacts"}


@pytest.fixture(scope="module")
def image() -> str:
    """The project image on the local base, built once (Docker's cache makes a rebuild take seconds)."""
    started, host = start_engine()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DOCKER_HOST", host)
            env.setenv("DOCKER_BUILDKIT", "0")
            build = {"check": True, "timeout": 1200, "stdout": subprocess.DEVNULL}
            subprocess.run([str(ROOT / "containers" / "build-base.sh"), BASE_IMAGE], **build)
            subprocess.run(containers.build_command(BASE_IMAGE), **build)
            yield containers.IMAGE
    finally:
        if started:
            subprocess.run([str(ENGINE), "stop"], check=False)


@pytest.fixture(scope="module")
def job(small_dataset, tmp_path_factory):
    """The demo's execution input, the Map item of the small CNN, and S3 as local folders."""
    template = synthesize().template
    # The demo with the one model these tests train: the report job then expects exactly its evaluation.
    demo = json.loads((ROOT / "experiments" / "demo.json").read_text())
    demo["training"]["models"] = [MODEL]
    demo["training"]["seeds"] = 1
    # An external test set, mounted as the definition says (the demo's own ones when it has some).
    demo["evaluation"]["external"] = demo["evaluation"].get("external") or [
        {"name": "other-hospital", "sources": [{"kind": "folders", "uri": "other-hospital"}]}
    ]
    payload = state_machine_input(parse_experiment(demo), run_id="r1", **S3)
    (item,) = [i for i in map_items(template, payload) if i["item"]["model"] == MODEL]
    training = resolve(state(template, "Train")["Parameters"], item)
    s3_root = tmp_path_factory.mktemp("s3")
    # The weights prefix as `cxr stage-weights` leaves it when no backbone file is staged (the demo's
    # models start from random weights): its index only.
    weights = s3_root / "weights"
    weights.mkdir()
    (weights / INDEX).write_text(json.dumps({"keras_notop": {}}))
    (weights_channel,) = [c for c in training["InputDataConfig"] if c["ChannelName"] == WEIGHTS_CHANNEL]
    s3 = {
        payload["dataset"]["uri"]: small_dataset,
        training["CheckpointConfig"]["S3Uri"]: s3_root / "checkpoints",
        weights_channel["DataSource"]["S3DataSource"]["S3Uri"]: weights,
    }
    # Each external set's ETL output: the sample's test split under a manifest of its own (so it leaks).
    from tests.contract_models import external_copy  # imports Keras: only when the tests run

    for external in payload["externals"]:
        s3[external["dataset"]["uri"]] = external_copy(small_dataset, s3_root / external["name"])
    return template, payload, item, training, s3


def _train(image: str, request: dict, s3: dict, root: Path, name: str) -> tuple[int, str, TrainingJob]:
    local = TrainingJob(request, root, s3)
    local.prepare()
    docker("rm", "-f", name, check=False)
    done = docker(*local.run_arguments(image, name), check=False)
    docker("rm", "-f", name, check=False)
    return done.returncode, done.stdout + done.stderr, local


def _history(root: Path) -> list[dict]:
    return json.loads((root / sagemaker_env.MODEL_DIR / "history.json").read_text())["epochs"]


@pytest.fixture(scope="module")
def trained(image, job, tmp_path_factory):
    """One uninterrupted training job, as the state machine starts it."""
    root = tmp_path_factory.mktemp("opt-ml")
    _, _, _, training, s3 = job
    code, log, _ = _train(image, training, s3, root, "cxr-test-train")
    assert code == 0, log[-3000:]
    return root, log


@pytest.mark.container
@pytest.mark.slow
def test_training_job_writes_the_model_and_the_defined_metrics(trained, job):
    """`docker run IMAGE train` with the definition's hyperparameters and channel: model files, and each
    MetricDefinitions regex matches once per epoch of the schedule."""
    root, log = trained
    _, _, item, training, _ = job
    assert {p.name for p in (root / sagemaker_env.MODEL_DIR).iterdir()} >= {
        "model.keras",
        "history.json",
        "config.json",
    }
    assert not (root / sagemaker_env.FAILURE_FILE).exists()
    epochs = sum(stage["epochs"] for stage in json.loads(item["item"]["hyperparameters"]["schedule"]))
    for metric in training["AlgorithmSpecification"]["MetricDefinitions"]:
        values = re.findall(metric["Regex"], log)
        assert len(values) == epochs, f"{metric['Name']}: {len(values)} lines for {epochs} epochs"
        assert all(0 <= float(v) < 100 for v in values)
    assert len(_history(root)) == epochs


@pytest.mark.container
@pytest.mark.slow
def test_bad_hyperparameters_fail_with_a_reason_and_a_non_zero_exit(image, job, tmp_path):
    _, _, _, training, s3 = job
    bad = {**training, "HyperParameters": {**training["HyperParameters"], "batch_size": "sixteen"}}
    code, _, _ = _train(image, bad, s3, tmp_path, "cxr-test-bad")
    assert code != 0
    failure = (tmp_path / sagemaker_env.FAILURE_FILE).read_text()
    assert "batch_size" in failure and "sixteen" in failure


@pytest.mark.container
@pytest.mark.slow
def test_evaluation_and_report_run_as_the_processing_jobs_ask(image, trained, job, tmp_path):
    """The synthesized Evaluate and Report requests: entry point, arguments and LocalPaths as defined."""
    template, payload, item, training, s3 = job
    root, _ = trained
    artifact = model_artifact(training)
    s3 = {**s3, artifact: pack_model(root / sagemaker_env.MODEL_DIR, tmp_path / "artifact")}
    evaluation = task_request(template, "Evaluate", {**item, "training": {"modelArtifact": artifact}})
    s3[item["item"]["evaluationUri"]] = tmp_path / "evaluation" / MODEL
    docker(*processing_run(evaluation, image, s3))
    metrics = json.loads((tmp_path / "evaluation" / MODEL / "metrics.json").read_text())
    assert metrics["model"] == MODEL and 0 <= metrics["test"]["report"]["accuracy"] <= 1
    assert set(metrics["external"]) == {e["name"] for e in payload["externals"]}

    report = resolve(state(template, "Report")["Parameters"], payload)
    manifest_uri = next(
        i["S3Input"]["S3Uri"] for i in report["ProcessingInputs"] if i["InputName"] == "manifest"
    )
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "manifest.json").write_bytes(
        (s3[payload["dataset"]["uri"]] / "manifest.json").read_bytes()
    )
    s3.update(
        {payload["report"]["evaluationsUri"]: tmp_path / "evaluation", manifest_uri: tmp_path / "manifest"}
    )
    s3[payload["report"]["uri"]] = tmp_path / "report"
    docker(*processing_run(report, image, s3))
    assert (tmp_path / "report" / "report.html").exists()
    assert [m["model"] for m in json.loads((tmp_path / "report" / "report.json").read_text())["models"]] == [
        MODEL
    ]


@pytest.mark.container
@pytest.mark.slow
def test_data_audit_job_reports_the_leaking_external_set_and_fails(image, job, tmp_path):
    """The synthesized AuditData request on the dataset and an external set copied from its test split:
    `cxr audit-data` finds the shared images, writes its report and exits 1 (the job fails)."""
    template, payload, _, _, s3 = job
    audit = task_request(template, "AuditData", payload)
    s3 = {**s3, payload["audit"]["uri"]: tmp_path / "audit"}
    done = docker(*processing_run(audit, image, s3), check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "LEAK" in done.stdout and "verdict: LEAKS" in done.stdout
    report = json.loads((tmp_path / "audit" / "audit.json").read_text())
    mounted = [i["S3Input"]["LocalPath"] for i in audit["ProcessingInputs"]]
    assert [other["dataset"] for other in report["against"]] == mounted[1:]
    assert all(other["same_bytes"] or other["near_duplicates"] for other in report["against"])


@pytest.mark.container
@pytest.mark.slow
def test_spot_interruption_resumes_to_the_same_history(image, trained, job, tmp_path):
    """`docker stop` (SIGTERM, then SIGKILL after SageMaker's grace) mid-training: the job stops in time
    with its last epoch checkpointed; the rerun resumes there and ends as the uninterrupted run did."""
    _, _, _, training, s3 = job
    uninterrupted, _ = trained
    s3 = {**s3, training["CheckpointConfig"]["S3Uri"]: tmp_path / "checkpoints"}
    local = TrainingJob(training, tmp_path / "opt-ml", s3)
    local.prepare()
    name = "cxr-test-spot"
    docker("rm", "-f", name, check=False)
    docker("run", "-d", *local.run_arguments(image, name)[1:])
    state_file = local.checkpoints / "state.json"
    deadline = time.monotonic() + 300
    while not state_file.exists():
        assert time.monotonic() < deadline, docker("logs", name).stderr[-2000:]
        time.sleep(0.2)
    asked = time.monotonic()
    docker("stop", "-t", str(STOP_GRACE_S), name, timeout=STOP_GRACE_S + 30)
    stopped_in = time.monotonic() - asked
    exit_code = int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout)
    docker("rm", "-f", name)
    assert stopped_in < 30, (
        f"SIGTERM took {stopped_in:.0f} s to stop the job (SageMaker kills at {STOP_GRACE_S} s)"
    )
    assert exit_code != 0 and not (local.root / sagemaker_env.MODEL_DIR / "history.json").exists()
    done_before = json.loads(state_file.read_text())["progress"]

    code, log, _ = _train(image, training, s3, local.root, name)
    assert code == 0, log[-3000:]
    assert "resuming from" in log and done_before["epochs_done"] >= 1
    assert _history(tmp_path / "opt-ml") == _history(uninterrupted)
