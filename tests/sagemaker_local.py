"""Test-only: play SageMaker and Step Functions on this machine with the real image and a Docker engine.

The synthesized state machine's task parameters are resolved against a real execution input (the Map's
ItemSelector included), then turned into what SageMaker makes of them: the /opt/ml/input/config files,
the channel and processing folders mounted where the definition says, and ``docker run`` of the image.
S3 is a dict of URI -> local folder. Nothing here is hand-written from the definition: change a channel
name, a LocalPath or the entry point there and these runs change with it.
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
from moto.stepfunctions.parser.asl.utils.json_path import extract_json

from jobs.contracts import sagemaker_env
from jobs.plan.pipeline_input import _lookup
from tests.cdk_support import ROOT, all_states, definition

ENGINE = ROOT / "containers" / "engine.sh"
BASE_IMAGE = "cxr-base:cpu"
STOP_GRACE_S = 120  # SageMaker sends SIGTERM, then SIGKILL 120 s later (StopTrainingJob, spot interruption)
_FORMAT = re.compile(r"^States\.Format\('([^']*)',\s*(.+)\)$")


def state(template: dict[str, Any], name: str) -> dict[str, Any]:
    return all_states(definition(template)["States"])[name]


def _value(path: str, document: Any, context: dict[str, Any]) -> Any:
    if path.startswith("$$."):
        return _lookup(context, "$" + path[2:])
    formatted = _FORMAT.match(path)
    if formatted:
        template, arguments = formatted.groups()
        values = [str(_value(a.strip(), document, context)) for a in arguments.split(",")]
        return template.replace("{}", "%s") % tuple(values)
    if "[*]" in path:  # a list selected or flattened, as Step Functions' JSONPath does
        return extract_json(path, document)
    return _lookup(document, path)


def resolve(parameters: Any, document: Any, context: dict[str, Any] | None = None) -> Any:
    """Step Functions' Parameters/ItemSelector: every ``key.$`` replaced by the value its path selects."""
    if isinstance(parameters, list):
        return [resolve(p, document, context) for p in parameters]
    if not isinstance(parameters, dict):
        return parameters
    out = {}
    for key, value in parameters.items():
        if key.endswith(".$"):
            out[key[:-2]] = _value(value, document, context or {})
        else:
            out[key] = resolve(value, document, context)
    return out


def task_request(template: dict[str, Any], name: str, document: dict[str, Any]) -> dict[str, Any]:
    """Task ``name``'s resolved Parameters, after the Pass states that lead to it put their results in
    place (``EvaluateInputs`` before ``Evaluate``)."""
    states = all_states(definition(template)["States"])
    document = json.loads(json.dumps(document))
    for before in [n for n, s in states.items() if s.get("Next") == name and s["Type"] == "Pass"]:
        pass_state = states[before]
        *parents, last = pass_state["ResultPath"][2:].split(".")
        target = document
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = resolve(pass_state["Parameters"], document)
    return resolve(states[name]["Parameters"], document)


def map_items(template: dict[str, Any], payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The documents the TrainAndEvaluateModels Map hands each iteration (its ItemSelector applied)."""
    selector = state(template, "TrainAndEvaluateModels")["ItemSelector"]
    return [resolve(selector, payload, {"Map": {"Item": {"Value": m}}}) for m in payload["models"]]


def model_artifact(training: dict[str, Any]) -> str:
    """Where SageMaker uploads /opt/ml/model as model.tar.gz (DescribeTrainingJob's S3ModelArtifacts)."""
    output = training["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return f"{output}/{training['TrainingJobName']}/output/model.tar.gz"


def pack_model(model_dir: Path, s3_folder: Path) -> Path:
    """SageMaker's upload of /opt/ml/model: one model.tar.gz of the folder's contents."""
    s3_folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(s3_folder / "model.tar.gz", "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return s3_folder


def docker(*arguments: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(arguments[:3])} ... failed:\n{done.stderr[-3000:]}")
    return done


MODEL = "small_cnn"  # the demo's model these tests train
LOCAL_INSTANCE_TYPE = "ml.m5.xlarge"  # what the emulated training host announces (a CPU type)


@dataclass
class TrainingJob:
    """One CreateTrainingJob request made local: the /opt/ml tree and the ``docker run`` of it."""

    request: dict[str, Any]
    root: Path
    s3: dict[str, Path]

    def prepare(self) -> None:
        config = self.root / sagemaker_env.CONFIG_DIR
        config.mkdir(parents=True, exist_ok=True)
        hyperparameters = self.request["HyperParameters"]
        non_strings = {k: v for k, v in hyperparameters.items() if not isinstance(v, str)}
        assert not non_strings, f"CreateTrainingJob takes string hyperparameters only: {non_strings}"
        (self.root / sagemaker_env.HYPERPARAMETERS_FILE).write_text(json.dumps(hyperparameters))
        channels = {
            c["ChannelName"]: {
                "TrainingInputMode": self.request["AlgorithmSpecification"]["TrainingInputMode"],
                "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                "RecordWrapperType": "None",
            }
            for c in self.request["InputDataConfig"]
        }
        (self.root / sagemaker_env.INPUT_DATA_CONFIG_FILE).write_text(json.dumps(channels))
        assert self.request["ResourceConfig"]["InstanceType"].startswith("ml.")
        # The job runs here on the CPU: the request's GPU type (ml.p3.8xlarge) would rightly make the entry
        # refuse to train without a GPU, so the emulated host announces the CPU instance it is.
        (self.root / sagemaker_env.RESOURCE_CONFIG_FILE).write_text(
            json.dumps(
                {
                    "current_host": "algo-1",
                    "hosts": ["algo-1"],
                    "current_instance_type": LOCAL_INSTANCE_TYPE,
                    "network_interface_name": "eth0",
                }
            )
        )
        for folder in (sagemaker_env.MODEL_DIR, sagemaker_env.OUTPUT_DATA_DIR):  # SageMaker makes output/data
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        if "CheckpointConfig" in self.request:
            self.checkpoints.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoints(self) -> Path:
        """Kept across reruns, as SageMaker restores the checkpoint S3 URI into /opt/ml/checkpoints."""
        return self.s3[self.request["CheckpointConfig"]["S3Uri"]]

    def run_arguments(self, image: str, name: str) -> list[str]:
        mounts = ["-v", f"{self.root}:{sagemaker_env.DEFAULT_ROOT}"]
        for channel in self.request["InputDataConfig"]:
            local = self.s3[channel["DataSource"]["S3DataSource"]["S3Uri"]]
            mounts += ["-v", f"{local}:{sagemaker_env.channel_dir(channel['ChannelName'])}:ro"]
        if "CheckpointConfig" in self.request:
            mounts += [
                "-v",
                f"{self.checkpoints}:{sagemaker_env.DEFAULT_ROOT}/{sagemaker_env.CHECKPOINT_DIR}",
            ]
        return ["run", "--name", name, "--network", "none", *mounts, image, "train"]


def run_training(image: str, request: dict, s3: dict, root: Path, name: str) -> tuple[int, str, TrainingJob]:
    """One emulated training job to its end: (exit code, log, the job)."""
    local = TrainingJob(request, root, s3)
    local.prepare()
    docker("rm", "-f", name, check=False)
    done = docker(*local.run_arguments(image, name), check=False)
    docker("rm", "-f", name, check=False)
    return done.returncode, done.stdout + done.stderr, local


def history(root: Path) -> list[dict]:
    """The epochs of the history.json a training job left in its model folder."""
    return json.loads((root / sagemaker_env.MODEL_DIR / "history.json").read_text())["epochs"]


def processing_run(request: dict[str, Any], image: str, s3: dict[str, Path]) -> list[str]:
    """``docker run`` for a CreateProcessingJob: its inputs and outputs mounted at their LocalPaths, the
    AppSpecification's entry point and arguments."""
    mounts = []
    for item in request["ProcessingInputs"]:
        mounts += ["-v", f"{s3[item['S3Input']['S3Uri']]}:{item['S3Input']['LocalPath']}:ro"]
    for item in request["ProcessingOutputConfig"]["Outputs"]:
        local = s3[item["S3Output"]["S3Uri"]]
        local.mkdir(parents=True, exist_ok=True)
        mounts += ["-v", f"{local}:{item['S3Output']['LocalPath']}"]
    app = request["AppSpecification"]
    entrypoint, *first = app["ContainerEntrypoint"]
    return [
        "run",
        "--rm",
        "--network",
        "none",
        *mounts,
        "--entrypoint",
        entrypoint,
        image,
        *first,
        *app["ContainerArguments"],
    ]


def engine_problem() -> str | None:
    """Why no engine can be had, without starting one (collection must stay free of side effects)."""
    if subprocess.run([str(ENGINE), "status"], capture_output=True).returncode == 0:
        return None
    if os.geteuid() != 0:
        return "no Docker engine answers and only root can start one (containers/engine.sh start)"
    if not (shutil.which("dockerd") or shutil.which("apt-get")):
        return "no Docker engine answers, and neither dockerd nor apt-get (to install docker.io) is here"
    return None


def start_engine() -> tuple[bool, str]:
    """(started here, DOCKER_HOST); skips the module in one line when no engine can be had."""
    before = subprocess.run([str(ENGINE), "status"], capture_output=True)
    started = subprocess.run([str(ENGINE), "start"], capture_output=True, text=True)
    if started.returncode != 0:
        reason = (started.stderr.strip().splitlines() or ["engine.sh start failed"])[-1]
        pytest.skip(f"container tests skipped: no Docker engine could be started ({reason})")
    host = re.search(r"DOCKER_HOST=(\S+)", started.stdout)
    assert host, f"engine.sh start printed no DOCKER_HOST: {started.stdout!r}"
    return before.returncode != 0, host.group(1)
