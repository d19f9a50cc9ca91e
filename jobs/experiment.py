"""The experiment: one validated description of a run, shared by the local runner and the cloud.

Every entry point gets its arguments from here (``etl_arguments``, ``training_hyperparameters``,
``evaluation_arguments``, ``report_arguments``), so a local run and a Step Functions execution cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.etl.labels import CLASSES, canonical_label

MODEL_NAMES = ("resnet50", "densenet121", "vgg19", "inceptionv3", "small_cnn")
TASKS = ("binary", "multiclass")
ModelName = Literal["resnet50", "densenet121", "vgg19", "inceptionv3", "small_cnn"]
Task = Literal["binary", "multiclass"]


class ExperimentError(ValueError):
    """An experiment file that cannot be used; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """A raw data source in its own layout: ``cohen``, ``nih`` or ``folders`` (one folder per class)."""

    kind: Literal["cohen", "nih", "folders"]
    uri: str = Field(
        min_length=1,
        description="local folder or s3:// prefix; relative paths resolve "
        "against the sample folder given to the local runner",
    )


class EtlConfig(_Strict):
    sources: list[Source] = Field(min_length=1)
    image_size: int = Field(224, ge=32, le=1024)
    view: str = "PA"
    modality: str = "X-ray"
    covid_finding: str = Field("COVID-19", description="Cohen finding substring that marks COVID-19")
    pneumonia_finding: str = Field("Pneumonia", description="NIH label that marks pneumonia")
    normal_finding: str = Field("No Finding", description="NIH label that marks a normal image")
    caps: dict[str, int] = Field(
        default_factory=dict,
        description="per-class image caps, e.g. the "
        "paper's {'COVID-19': 196, 'Pneumonia': 500, 'Normal': 500}",
    )
    adults_only: bool = False
    min_images_per_class: int = Field(10, ge=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 20200627

    @field_validator("caps")
    @classmethod
    def _known_classes(cls, caps: dict[str, int]) -> dict[str, int]:
        unknown = [name for name in caps if canonical_label(name) is None]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown}; caps take {list(CLASSES)}")
        if any(n < 1 for n in caps.values()):
            raise ValueError("caps must be positive")
        return {canonical_label(name): n for name, n in caps.items()}


class Stage(_Strict):
    """One training stage: which layers learn, for how long, how fast."""

    epochs: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    trainable: Literal["head", "all"]


BUILTIN_SCHEDULES: dict[str, tuple[Stage, ...]] = {
    # The paper: 30 epochs with the backbone frozen at 1e-3, then 30 epochs of all layers at 1e-5.
    "paper-two-phase": (
        Stage(epochs=30, learning_rate=1e-3, trainable="head"),
        Stage(epochs=30, learning_rate=1e-5, trainable="all"),
    ),
    # The paper's further DenseNet121 run.
    "densenet121-three-stage": (
        Stage(epochs=10, learning_rate=1e-3, trainable="head"),
        Stage(epochs=100, learning_rate=1e-4, trainable="all"),
        Stage(epochs=100, learning_rate=1e-5, trainable="all"),
    ),
}


class TrainingConfig(_Strict):
    task: Task
    models: list[ModelName] = Field(min_length=1)
    schedule: str | list[Stage] = "paper-two-phase"
    batch_size: int = Field(3, gt=0)
    weights: str = Field(
        "imagenet", description="'imagenet', 'none', or a path / s3:// URI of a weights file"
    )
    normalisation: Literal["backbone", "paper"] = "backbone"
    rotation_degrees: float = Field(15.0, ge=0, le=180)
    class_weights: Literal["none", "balanced"] = "none"
    early_stopping_patience: int | None = Field(None, gt=0)
    dropout: float = Field(0.5, ge=0, lt=1)
    seed: int = 1

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[str]) -> list[str]:
        if len(set(models)) != len(models):
            raise ValueError("each model may be listed once")
        return models

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, schedule: str | list[Stage]) -> str | list[Stage]:
        if isinstance(schedule, str) and schedule not in BUILTIN_SCHEDULES:
            raise ValueError(
                f"unknown schedule {schedule!r}; use one of {sorted(BUILTIN_SCHEDULES)} "
                "or a list of {epochs, learning_rate, trainable} stages"
            )
        if isinstance(schedule, list) and not schedule:
            raise ValueError("the schedule needs at least one stage")
        return schedule

    def stages(self) -> tuple[Stage, ...]:
        if isinstance(self.schedule, str):
            return BUILTIN_SCHEDULES[self.schedule]
        return tuple(self.schedule)


class EvaluationConfig(_Strict):
    bootstrap_samples: int = Field(1000, ge=0)
    gradcam_examples: int = Field(2, ge=0, description="correct and wrong examples per class")
    external_tests: list[Source] = Field(
        default_factory=list,
        description="extra test sets, each run through the same ETL and reported beside the split",
    )
    operating_rule: str = Field(
        "youden",
        pattern=r"^(youden|target_sensitivity:(0?\.\d*[1-9]\d*|1(\.0*)?))$",
        description="how the COVID-19 threshold is chosen on the validation split: 'youden' or "
        "'target_sensitivity:S' with 0 < S <= 1; test and external sets use it unchanged",
    )


class Experiment(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    description: str = ""
    paper_reference: Literal["binary", "multiclass", "densenet121-three-stage"] | None = None
    etl: EtlConfig
    training: TrainingConfig
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _paper_reference_matches_task(self) -> Experiment:
        if self.paper_reference in TASKS and self.paper_reference != self.training.task:
            raise ValueError(f"paper_reference {self.paper_reference!r} needs task {self.paper_reference!r}")
        return self

    def dataset_key(self) -> str:
        """Names the ETL output: same sources and settings, same key, so a finished ETL is reused."""
        return _digest(self.etl.model_dump(mode="json"))

    def model_key(self, model: str) -> str:
        """Names one model's training output: the dataset plus everything that changes training."""
        return _digest({"dataset": self.dataset_key(), "hp": training_hyperparameters(self, model)})

    def evaluation_key(self, model: str) -> str:
        return _digest(
            {"model": self.model_key(model), "evaluation": self.evaluation.model_dump(mode="json")}
        )

    def report_key(self) -> str:
        """Changes with any model's evaluation, and with the experiment's name or paper reference."""
        return _digest(
            {
                "evaluations": [self.evaluation_key(m) for m in self.training.models],
                "name": self.name,
                "paper": self.paper_reference,
            }
        )


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_experiment(path: str | Path) -> Experiment:
    """Reads and validates an experiment file; errors name the file and each bad field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such experiment file (see experiments/ for examples)") from None
    except json.JSONDecodeError as exc:
        raise ExperimentError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    return parse_experiment(raw, origin=str(path))


def parse_experiment(raw: object, origin: str = "experiment") -> Experiment:
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(top level)'}': {err['msg']}"
            for err in exc.errors()
        )
        raise ExperimentError(f"{origin}: {problems}") from None


def source_uris(exp: Experiment, data_root: str) -> list[str]:
    """Each ETL source's URI: absolute ones (``s3://...``, ``/path``) as written, relative ones under
    ``data_root`` (locally the sample or download folder; in AWS the raw-data bucket)."""
    return [
        src.uri.rstrip("/") if is_absolute_uri(src.uri) else f"{data_root.rstrip('/')}/{src.uri.strip('/')}"
        for src in exp.etl.sources
    ]


def is_absolute_uri(uri: str) -> bool:
    return "://" in uri or uri.startswith("/")


def etl_arguments(exp: Experiment, source_uris: list[str], output_uri: str) -> list[str]:
    """Arguments of ``cxr etl`` (and of the EMR spark-submit step) for this experiment."""
    etl = exp.etl
    args = [f"--source={src.kind}={uri}" for src, uri in zip(etl.sources, source_uris, strict=True)]
    args += [
        f"--output={output_uri}",
        f"--image-size={etl.image_size}",
        f"--view={etl.view}",
        f"--modality={etl.modality}",
        f"--covid-finding={etl.covid_finding}",
        f"--pneumonia-finding={etl.pneumonia_finding}",
        f"--normal-finding={etl.normal_finding}",
        f"--min-images-per-class={etl.min_images_per_class}",
        f"--test-fraction={etl.test_fraction}",
        f"--validation-fraction={etl.validation_fraction}",
        f"--seed={etl.seed}",
    ]
    args += [f"--cap={label}={n}" for label, n in sorted(etl.caps.items())]
    if etl.adults_only:
        args.append("--adults-only")
    return args


def training_hyperparameters(exp: Experiment, model: str) -> dict[str, str]:
    """SageMaker hyperparameters (string values) of one model; ``train`` takes the same as ``--key value``."""
    t = exp.training
    return {
        "model": model,
        "task": t.task,
        "schedule": json.dumps([s.model_dump() for s in t.stages()]),
        "batch_size": str(t.batch_size),
        "weights": t.weights,
        "normalisation": t.normalisation,
        "rotation_degrees": str(t.rotation_degrees),
        "class_weights": t.class_weights,
        "early_stopping_patience": str(t.early_stopping_patience or 0),
        "dropout": str(t.dropout),
        "seed": str(t.seed),
    }


def hyperparameters_to_argv(hyperparameters: dict[str, str]) -> list[str]:
    return [f"--{key.replace('_', '-')}={value}" for key, value in sorted(hyperparameters.items())]


def evaluation_arguments(exp: Experiment, *, model_dir: str, data: str, output: str) -> list[str]:
    """Arguments of ``evaluate`` (``cxr evaluate``): local paths here, the job's mount points in the cloud."""
    ev = exp.evaluation
    return [
        f"--model-dir={model_dir}",
        f"--data={data}",
        f"--output={output}",
        f"--bootstrap-samples={ev.bootstrap_samples}",
        f"--gradcam-examples={ev.gradcam_examples}",
        f"--operating-rule={ev.operating_rule}",
    ]


def report_arguments(exp: Experiment, *, evaluations: str, dataset: str, output: str) -> list[str]:
    """Arguments of ``cxr report``: a folder of per-model evaluations, the dataset (for its manifest)."""
    args = [evaluations, f"--output={output}", f"--manifest={dataset}", f"--experiment-name={exp.name}"]
    if exp.paper_reference:
        args.append(f"--paper-reference={exp.paper_reference}")
    return args
