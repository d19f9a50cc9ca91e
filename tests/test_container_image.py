"""The real image, run the way SageMaker runs what the synthesized state machine asks for (needs Docker).

The image is built from containers/Dockerfile on the local CPU base (containers/build-base.sh); the jobs
are the demo experiment's CreateTrainingJob/CreateProcessingJob requests, resolved from the definition.
Deselect with ``-m "not container"``; without an engine they are skipped in one line.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from jobs.contracts import sagemaker_env
from tests.sagemaker_local import (
    MODEL,
    STOP_GRACE_S,
    TrainingJob,
    docker,
    history,
    model_artifact,
    pack_model,
    processing_run,
    resolve,
    run_training,
    state,
    task_request,
)


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
    # the emulated tree has output/, as SageMaker's does: the logs go where TensorBoardOutputConfig reads
    assert (root / sagemaker_env.TENSORBOARD_DIR / "train").is_dir()
    assert training["TensorBoardOutputConfig"]["LocalPath"] == sagemaker_env.TENSORBOARD_LOCAL_PATH
    epochs = sum(stage["epochs"] for stage in json.loads(item["item"]["hyperparameters"]["schedule"]))
    for metric in training["AlgorithmSpecification"]["MetricDefinitions"]:
        values = re.findall(metric["Regex"], log)
        assert len(values) == epochs, f"{metric['Name']}: {len(values)} lines for {epochs} epochs"
        assert all(0 <= float(v) < 100 for v in values)
    assert len(history(root)) == epochs


@pytest.mark.container
@pytest.mark.slow
def test_bad_hyperparameters_fail_with_a_reason_and_a_non_zero_exit(image, job, tmp_path):
    _, _, _, training, s3 = job
    bad = {**training, "HyperParameters": {**training["HyperParameters"], "batch_size": "sixteen"}}
    code, _, _ = run_training(image, bad, s3, tmp_path, "cxr-test-bad")
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

    code, log, _ = run_training(image, training, s3, local.root, name)
    assert code == 0, log[-3000:]
    assert "resuming from" in log and done_before["epochs_done"] >= 1
    assert history(tmp_path / "opt-ml") == history(uninterrupted)
