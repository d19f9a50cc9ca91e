"""The SageMaker training container contract: the one module that knows the /opt/ml paths.

SageMaker writes hyperparameters (string values) to ``input/config/hyperparameters.json``, copies each
data channel to ``input/data/<channel>`` (also announced as ``SM_CHANNEL_<CHANNEL>``), uploads
``model/`` when the job ends, reads ``output/failure`` as the failure reason, and syncs ``checkpoints/``
with S3 for managed spot training. Tests and local runs point ``CXR_OPT_ML`` (or ``root``) at a temporary
tree of the same shape, which is exactly what a local ``docker run -v ...:/opt/ml`` sees.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jobs.plan.locations import Ref, joined

DEFAULT_ROOT = "/opt/ml"
ROOT_VARIABLE = "CXR_OPT_ML"
DATASET_CHANNEL = "dataset"  # the training job's input channel holding the ETL output (manifest.json + data/)
WEIGHTS_CHANNEL = "weights"  # staged backbone weights (`cxr stage-weights`), for network-isolated jobs

# Inside the image; relative parts below are under DEFAULT_ROOT (or a test's root).
CONFIG_DIR = "input/config"
HYPERPARAMETERS_FILE = f"{CONFIG_DIR}/hyperparameters.json"
INPUT_DATA_CONFIG_FILE = f"{CONFIG_DIR}/inputdataconfig.json"
RESOURCE_CONFIG_FILE = f"{CONFIG_DIR}/resourceconfig.json"
DATA_DIR = "input/data"
MODEL_DIR = "model"
OUTPUT_DATA_DIR = "output/data"
FAILURE_FILE = "output/failure"
CHECKPOINT_DIR = "checkpoints"
# TensorBoardOutputConfig's default LocalPath, synced to its S3OutputPath while the job runs.
TENSORBOARD_DIR = "output/tensorboard"
TENSORBOARD_LOCAL_PATH = f"{DEFAULT_ROOT}/{TENSORBOARD_DIR}"

# Where SageMaker Processing mounts inputs and collects outputs (the state machine's LocalPaths).
PROCESSING_ROOT = f"{DEFAULT_ROOT}/processing"
EVALUATION_MODEL_DIR = f"{PROCESSING_ROOT}/model"
EVALUATION_DATASET_DIR = f"{PROCESSING_ROOT}/dataset"
EVALUATION_OUTPUT_DIR = f"{PROCESSING_ROOT}/evaluation"
EVALUATION_EXTERNAL_DIR = f"{PROCESSING_ROOT}/external"  # one folder per external test set
AUDIT_OUTPUT_DIR = (
    f"{PROCESSING_ROOT}/audit"  # `cxr audit-data --json` of the dataset against the external sets
)
REPORT_EVALUATIONS_DIR = f"{PROCESSING_ROOT}/evaluations"
REPORT_DATASET_DIR = f"{PROCESSING_ROOT}/dataset"
REPORT_OUTPUT_DIR = f"{PROCESSING_ROOT}/report"


# SageMaker's NVIDIA GPU instance families: ml.p2 to ml.p6 and ml.g4dn to ml.g6e (ml.trn/ml.inf are not GPUs).
_GPU_INSTANCE = re.compile(r"^ml\.[pg]\d")


def channel_dir(name: str, root: str = DEFAULT_ROOT) -> str:
    """Where SageMaker puts a training channel (``root`` differs only for a local tree of that shape)."""
    return f"{root}/{DATA_DIR}/{name}"


def external_dir(name: str) -> str:
    """Where the evaluation and the data audit find external test set ``name``."""
    return f"{EVALUATION_EXTERNAL_DIR}/{name}"


# Where each role of an experiment's plan (jobs.plan.locations) is inside a job: the mount table shared by the
# local container runner and the state machine's input.
TRAINING_PATHS = {"dataset": channel_dir(DATASET_CHANNEL), "model": f"{DEFAULT_ROOT}/{MODEL_DIR}"}
PROCESSING_PATHS = {
    "dataset": EVALUATION_DATASET_DIR,
    "model": EVALUATION_MODEL_DIR,
    "evaluation": EVALUATION_OUTPUT_DIR,
    "audit": AUDIT_OUTPUT_DIR,
    "evaluations": REPORT_EVALUATIONS_DIR,
    "report": REPORT_OUTPUT_DIR,
}


def training_path(ref: Ref) -> str:
    """Where a training job finds a role (its dataset channel, its model folder)."""
    return joined(TRAINING_PATHS[ref.role], ref.path)


def processing_path(ref: Ref) -> str:
    """Where a processing job (evaluation, audit, report) finds a role; each job sees one model and one
    evaluation, so their names do not appear in the path, external sets' do."""
    folder = external_dir(ref.name) if ref.role == "external" else PROCESSING_PATHS[ref.role]
    return joined(folder, ref.path)


class ContainerContractError(ValueError):
    """The /opt/ml tree is not as SageMaker writes it (e.g. malformed hyperparameters.json)."""


@dataclass(frozen=True)
class SageMakerEnv:
    root: Path
    environ: Mapping[str, str]

    @property
    def hyperparameters_file(self) -> Path:
        return self.root / HYPERPARAMETERS_FILE

    @property
    def model_dir(self) -> Path:
        return Path(self.environ.get("SM_MODEL_DIR", self.root / MODEL_DIR))

    @property
    def failure_file(self) -> Path:
        return self.root / FAILURE_FILE

    @property
    def checkpoint_dir(self) -> Path | None:
        """``checkpoints/`` only when the job configured it (SageMaker creates it then), else None."""
        path = self.root / CHECKPOINT_DIR
        return path if path.is_dir() else None

    def tensorboard_dir(self, model_dir: Path) -> Path:
        """Where Keras' TensorBoard logs go: SageMaker's TensorBoard path in a job's tree (``output/``
        exists there), else ``tensorboard/`` beside the model files, so a local run keeps them."""
        output = self.root / "output"
        return self.root / TENSORBOARD_DIR if output.is_dir() else model_dir / "tensorboard"

    @property
    def instance_type(self) -> str | None:
        """The job's instance type, from ``resourceconfig.json``'s ``current_instance_type`` (None outside
        SageMaker; SageMaker local mode writes "local")."""
        try:
            config = json.loads((self.root / RESOURCE_CONFIG_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        value = config.get("current_instance_type") if isinstance(config, dict) else None
        return value if isinstance(value, str) else None

    def gpus_expected(self) -> str | None:
        """Why this host should have GPUs (a GPU instance type, or ``SM_NUM_GPUS`` > 0 as SageMaker's
        toolkits announce it), or None: then training without a GPU is a failure, not a fallback."""
        announced = self.environ.get("SM_NUM_GPUS", "")
        if announced.isdigit() and int(announced) > 0:
            return f"SM_NUM_GPUS={announced}"
        instance_type = self.instance_type
        if instance_type and _GPU_INSTANCE.match(instance_type):
            return f"instance type {instance_type}"
        return None

    def channel(self, name: str) -> Path | None:
        """A data channel's local folder, or None when the job has no such channel."""
        announced = self.environ.get(f"SM_CHANNEL_{name.upper()}")
        path = Path(announced) if announced else Path(channel_dir(name, str(self.root)))
        return path if path.exists() else None

    def hyperparameters(self) -> dict[str, str]:
        """The job's hyperparameters as strings; an absent file means none (a local run with flags)."""
        path = self.hyperparameters_file
        if not path.exists():
            return {}
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ContainerContractError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(raw, dict):
            raise ContainerContractError(f"{path}: expected a JSON object of name -> string value")
        return {str(key): _as_string(value) for key, value in raw.items()}

    def write_failure(self, message: str) -> Path | None:
        """Leaves the reason where SageMaker shows it; a plain local run without the tree skips it."""
        if not self.root.is_dir():
            return None
        self.failure_file.parent.mkdir(parents=True, exist_ok=True)
        self.failure_file.write_text(message)
        return self.failure_file


def _as_string(value: object) -> str:
    """SageMaker passes strings; the Python SDK JSON-encodes them once more ('"resnet50"'): undo that."""
    if not isinstance(value, str):
        return json.dumps(value)
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def from_environ(environ: Mapping[str, str] | None = None, root: str | Path | None = None) -> SageMakerEnv:
    environ = os.environ if environ is None else environ
    return SageMakerEnv(root=Path(root or environ.get(ROOT_VARIABLE, DEFAULT_ROOT)), environ=environ)
