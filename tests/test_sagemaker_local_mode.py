"""The image judged by AWS's own implementation of the container contract: the SageMaker Python SDK's
local mode (``sagemaker.core.local``, in .venv-sagemaker), fed the synthesized CreateTrainingJob and
CreateProcessingJob requests.

Only what local mode has to differ in is changed: S3 URIs become file:// URIs of the same folders our
emulation mounts, the instance type is "local", the image is the one built here. The SDK then writes the
config files, mounts the channels, runs ``docker-compose up``, packs model.tar.gz and output.tar.gz.
The checks are those of tests/test_container_image.py, plus: the same history as our emulation's run, the
config files our emulation writes carry every key local mode writes with the same JSON type, and the
TensorBoard logs in output/. The SDK runs in a network namespace of its own (no network at all) and the
containers with ``network_mode: none`` (see tests/sagemaker_sdk_job.py for why and how).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobs.contracts import sagemaker_env
from tests.cdk_support import ROOT
from tests.sagemaker_local import MODEL, TrainingJob, history, model_artifact, task_request

SDK_PYTHON = ROOT / ".venv-sagemaker" / "bin" / "python"
DRIVER = ROOT / "tests" / "sagemaker_sdk_job.py"


def sdk_problem() -> str | None:
    """Why local mode cannot run here (None when it can)."""
    if not SDK_PYTHON.exists():
        return f"no {SDK_PYTHON.parent.parent.name} (make setup makes it from requirements-sagemaker.txt)"
    if shutil.which("docker-compose") is None:
        return "docker-compose is missing (Debian: apt-get install docker-compose)"
    return None


@pytest.fixture(scope="module")
def sdk(request) -> str:
    """The image to run through local mode (checked first: no build when the SDK cannot run)."""
    problem = sdk_problem()
    if problem:
        pytest.skip(f"SageMaker local-mode tests skipped: {problem}")
    return request.getfixturevalue("image")


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()


@dataclass
class LocalModeRun:
    """One job through the SDK: its exit code, the log it streamed, its Describe answer, and what it wrote."""

    code: int
    log: str
    describe: dict[str, Any]
    seen: Path  # the compose file and /opt/ml config files, kept by the driver's compose shim


def run_local_mode(operation: str, request: dict[str, Any], work: Path) -> LocalModeRun:
    """The SDK's LocalSagemakerClient on one request, in its own network namespace when root can make one."""
    work.mkdir(parents=True, exist_ok=True)
    job = work / "job.json"
    job.write_text(json.dumps({"operation": operation, "request": request, "work": str(work)}))
    command = [str(SDK_PYTHON), str(DRIVER), str(job)]
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "--net", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    answer = work / "describe.json"  # absent when the driver stopped before the SDK ran (its log says why)
    describe = json.loads(answer.read_text()) if answer.exists() else {"error": "no describe.json"}
    return LocalModeRun(done.returncode, done.stdout + done.stderr, describe, work / "seen")


def local_training_request(training: dict[str, Any], image: str, s3: dict[str, Path], out: Path) -> dict:
    """The synthesized CreateTrainingJob, made local: file:// channels, instance type "local"."""
    request = json.loads(json.dumps(training))
    request["AlgorithmSpecification"]["TrainingImage"] = image
    request["ResourceConfig"]["InstanceType"] = "local"
    for channel in request["InputDataConfig"]:
        source = channel["DataSource"]["S3DataSource"]
        source["S3Uri"] = file_uri(s3[source["S3Uri"]])
    request["OutputDataConfig"]["S3OutputPath"] = file_uri(out)
    return request


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def sdk_trained(sdk, job, tmp_path_factory):
    """The demo's small CNN training job through local mode."""
    _, _, _, training, s3 = job
    work = tmp_path_factory.mktemp("local-mode-train")
    request = local_training_request(training, sdk, s3, work / "s3-output")
    run = run_local_mode("CreateTrainingJob", request, work)
    assert run.code == 0, run.log[-3000:] + json.dumps(run.describe)
    return run, work / "s3-output"


@pytest.mark.container
@pytest.mark.slow
def test_training_job_through_the_sdk_packs_the_model_and_prints_the_defined_metrics(sdk_trained, job):
    """model.tar.gz as SageMaker packs /opt/ml/model, each MetricDefinitions regex once per epoch, and the
    TensorBoard logs in /opt/ml/output (output.tar.gz here; synced to TensorBoardOutputConfig on AWS)."""
    run, out = sdk_trained
    _, _, item, training, _ = job
    assert run.describe["TrainingJobStatus"] == "Completed"
    artifact = Path(run.describe["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("file://"))
    assert artifact == out / "model.tar.gz"
    assert set(members(artifact)) >= {"model.keras", "history.json", "config.json"}
    epochs = sum(stage["epochs"] for stage in json.loads(item["item"]["hyperparameters"]["schedule"]))
    for metric in training["AlgorithmSpecification"]["MetricDefinitions"]:
        values = re.findall(metric["Regex"], run.log)
        assert len(values) == epochs, f"{metric['Name']}: {len(values)} lines for {epochs} epochs"
    output = members(out / "output.tar.gz")
    tensorboard = sagemaker_env.TENSORBOARD_DIR.removeprefix("output/")
    assert training["TensorBoardOutputConfig"]["LocalPath"] == sagemaker_env.TENSORBOARD_LOCAL_PATH
    assert {name.split("/")[1] for name in output if name.startswith(tensorboard + "/")} == {
        "train",
        "validation",
    }
    assert "failure" not in output


@pytest.mark.container
@pytest.mark.slow
def test_sdk_and_our_emulation_train_the_same_model(sdk_trained, trained, tmp_path):
    """The same image, request and data through AWS's local mode and through tests/sagemaker_local.py: the
    same epochs, bit for bit (seeded, CPU)."""
    _, out = sdk_trained
    emulated_root, _ = trained
    with tarfile.open(out / "model.tar.gz") as tar:
        tar.extractall(tmp_path / sagemaker_env.MODEL_DIR, filter="data")
    assert history(tmp_path) == history(emulated_root)


@pytest.mark.container
@pytest.mark.slow
def test_our_emulation_writes_every_config_key_local_mode_writes(sdk_trained, job, tmp_path):
    """hyperparameters.json identical (all strings); resourceconfig.json and inputdataconfig.json: every key
    local mode writes is in ours with the same JSON type, and the channels are the same."""
    run, _ = sdk_trained
    _, _, _, training, s3 = job
    ours = TrainingJob(training, tmp_path / "opt-ml", s3)
    ours.prepare()
    seen = run.seen / "opt-ml-input" / "config"

    def read(root: Path, name: str) -> dict:
        return json.loads((root / name).read_text())

    sdk_hyperparameters = read(seen, "hyperparameters.json")
    assert sdk_hyperparameters == read(ours.root, sagemaker_env.HYPERPARAMETERS_FILE)
    assert all(isinstance(v, str) for v in sdk_hyperparameters.values())
    for name, file in (
        ("resourceconfig.json", sagemaker_env.RESOURCE_CONFIG_FILE),
        ("inputdataconfig.json", sagemaker_env.INPUT_DATA_CONFIG_FILE),
    ):
        sdk_config, our_config = read(seen, name), read(ours.root, file)
        assert set(sdk_config) <= set(our_config), name
        for key, value in sdk_config.items():
            assert type(our_config[key]) is type(value), f"{name}: {key}"
            if isinstance(value, dict):
                assert set(value) <= set(our_config[key]), f"{name}: {key}"
    assert read(seen, "resourceconfig.json")["current_instance_type"] == "local"


@pytest.mark.container
@pytest.mark.slow
def test_bad_hyperparameters_fail_the_sdk_job_with_the_reason_in_the_failure_file(sdk, job, tmp_path):
    """A non-zero exit fails the job; local mode only says the exit code, the reason is /opt/ml/output/failure
    (SageMaker's FailureReason), which local mode packs into output.tar.gz."""
    _, _, _, training, s3 = job
    bad = {**training, "HyperParameters": {**training["HyperParameters"], "batch_size": "sixteen"}}
    run = run_local_mode(
        "CreateTrainingJob", local_training_request(bad, sdk, s3, tmp_path / "out"), tmp_path
    )
    assert run.code == 1
    assert re.search(r"exited with code: [1-9]", run.describe["error"]), run.describe
    failure = members(tmp_path / "out" / "output.tar.gz")["failure"].decode()
    assert "batch_size" in failure and "sixteen" in failure


@pytest.mark.container
@pytest.mark.slow
def test_evaluation_processing_job_through_the_sdk(sdk, sdk_trained, job, tmp_path):
    """The synthesized Evaluate request on the SDK's own model.tar.gz: metrics.json as our emulation checks
    it, and the processing config files SageMaker writes."""
    template, payload, item, training, s3 = job
    _, out = sdk_trained
    artifact = model_artifact(training)
    request = task_request(template, "Evaluate", {**item, "training": {"modelArtifact": artifact}})
    model_folder = tmp_path / "model"
    model_folder.mkdir()
    shutil.copy(out / "model.tar.gz", model_folder)  # the one object the S3 URI names
    places = {**s3, artifact: model_folder, item["item"]["evaluationUri"]: tmp_path / "evaluation"}
    request["AppSpecification"]["ImageUri"] = sdk
    request["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "local"
    for entry in request["ProcessingInputs"]:
        entry["S3Input"]["S3Uri"] = file_uri(places[entry["S3Input"]["S3Uri"]])
    for entry in request["ProcessingOutputConfig"]["Outputs"]:
        entry["S3Output"]["S3Uri"] = file_uri(places[entry["S3Output"]["S3Uri"]])
    (tmp_path / "evaluation").mkdir()
    processed = run_local_mode("CreateProcessingJob", request, tmp_path / "work")
    assert processed.code == 0, processed.log[-3000:] + json.dumps(processed.describe)
    assert processed.describe["ProcessingJobStatus"] == "Completed"
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert metrics["model"] == MODEL and 0 <= metrics["test"]["report"]["accuracy"] <= 1
    assert set(metrics["external"]) == {e["name"] for e in payload["externals"]}
    config = processed.seen / "opt-ml-config"
    job_config = json.loads((config / "processingjobconfig.json").read_text())
    assert (
        job_config["AppSpecification"]["ContainerArguments"]
        == request["AppSpecification"]["ContainerArguments"]
    )
    assert json.loads((config / "resourceconfig.json").read_text())["current_instance_type"] == "local"
