"""The experiment: one validated description of a run, shared by the local runner and the cloud.

Validated on load with errors that name the file and field; every entry point's arguments are built from it
by ``jobs.experiment.arguments``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from jobs.etl.defaults import PAPER as ETL_DEFAULTS
from jobs.etl.labels import CLASSES, canonical_label
from jobs.etl.settings import OUTPUT_VERSION, split_fractions_problem
from jobs.etl.sources import KIND_NAMES, LABELLED_KIND_NAMES
from jobs.evaluation.paper_figures import PAPER_EXPERIMENTS
from jobs.evaluation.source_report import SET_KINDS

# The one list of model names; jobs.training.models builds each (a test keeps the two in step).
MODEL_NAMES = ("resnet50", "densenet121", "vgg19", "inceptionv3", "small_cnn")
TASKS = ("binary", "multiclass")
# More repeats belong in a sweep of their own; 20 already multiplies every training job's cost by 20.
MAX_SEEDS = 20
ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]  # a tuple subscript is the same Literal
Task = Literal[TASKS]  # type: ignore[valid-type]


class ExperimentError(ValueError):
    """An experiment file that cannot be used; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MetadataFilter = dict[str, str | list[str]]


class Source(_Strict):
    """A raw data source in its own layout: ``cohen``, ``nih`` or ``folders`` (one folder per class)."""

    kind: Literal[KIND_NAMES]  # type: ignore[valid-type]  # one table of kinds: jobs.etl.sources.KINDS
    uri: str = Field(
        min_length=1,
        description="local folder or s3:// prefix; relative paths resolve "
        "against the sample folder given to the local runner",
    )
    include: MetadataFilter = Field(
        default_factory=dict,
        description="keep only rows whose metadata column contains the text (case-insensitive; a list "
        "is any-of; several columns must all match), e.g. {'location': 'Hannover'}",
    )
    exclude: MetadataFilter = Field(
        default_factory=dict,
        description="drop rows whose metadata column contains the text, e.g. {'location': 'Hannover'} "
        "to hold one hospital out for an external test set",
    )

    @field_validator("include", "exclude")
    @classmethod
    def _texts(cls, rules: MetadataFilter) -> dict[str, list[str]]:
        """One form, ``{column: [text, ...]}``, so a text and a one-item list give the same dataset key."""
        texts = {column: [value] if isinstance(value, str) else value for column, value in rules.items()}
        bad = [c for c, values in texts.items() if not c.strip() or "=" in c or not values]
        bad += [c for c, values in texts.items() for v in values if not v.strip()]
        if bad:
            raise ValueError(
                f"column(s) {sorted(set(bad))}: a filter is {{column: text or [texts]}} with a column "
                "name without '=' and non-empty texts"
            )
        return texts

    @model_validator(mode="after")
    def _filters_need_metadata(self) -> Source:
        if (self.include or self.exclude) and self.kind not in LABELLED_KIND_NAMES:
            raise ValueError(
                f"a {self.kind!r} source has no metadata columns to filter on (include/exclude); "
                f"filters work on {list(LABELLED_KIND_NAMES)}"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_empty_filters(self, handler) -> dict:
        """An unfiltered source serialises as before filters existed, so its dataset key is unchanged."""
        data = handler(self)
        for mode in ("include", "exclude"):
            if not data.get(mode):
                data.pop(mode, None)
        return data

    def filter_arguments(self) -> list[str]:
        """``cxr etl``'s ``--include/--exclude COLUMN=TEXT`` flags, given right after this ``--source``."""
        return [
            f"--{mode}={column}={text}"
            for mode, rules in (("include", self.include), ("exclude", self.exclude))
            for column, texts in sorted(rules.items())
            for text in texts
        ]


class LabelRule(_Strict):
    """Maps a finding of one source to a class (``cxr etl --label KIND:FINDING=CLASS``); rules are
    tried in order, first match wins, and a source with rules no longer uses the paper's mapping."""

    source: Literal[LABELLED_KIND_NAMES]  # type: ignore[valid-type]
    finding: str = Field(min_length=1, description="Cohen: substring of 'finding'; NIH: one of its labels")
    label: str

    @field_validator("label")
    @classmethod
    def _known_class(cls, label: str) -> str:
        if canonical_label(label) is None:
            raise ValueError(f"unknown class {label!r}; use one of {list(CLASSES)}")
        return canonical_label(label)


class EtlConfig(_Strict):
    sources: list[Source] = Field(min_length=1)
    image_size: int = Field(ETL_DEFAULTS["image_size"], ge=32, le=1024)
    view: str = ETL_DEFAULTS["view"]
    modality: str = ETL_DEFAULTS["modality"]
    covid_finding: str = Field(
        ETL_DEFAULTS["covid_finding"], description="Cohen finding substring that marks COVID-19"
    )
    pneumonia_finding: str = Field(
        ETL_DEFAULTS["pneumonia_finding"], description="NIH label that marks pneumonia"
    )
    normal_finding: str = Field(
        ETL_DEFAULTS["normal_finding"], description="NIH label that marks a normal image"
    )
    caps: dict[str, int] = Field(
        default_factory=dict,
        description="per-class image caps, e.g. the "
        "paper's {'COVID-19': 196, 'Pneumonia': 500, 'Normal': 500}",
    )
    label_rules: list[LabelRule] = Field(
        default_factory=list, description="per-source finding -> class rules; empty keeps the paper's"
    )
    adults_only: bool = False
    min_images_per_class: int = Field(ETL_DEFAULTS["min_images_per_class"], ge=1)
    test_fraction: float = Field(ETL_DEFAULTS["test_fraction"], gt=0, lt=1)
    validation_fraction: float = Field(ETL_DEFAULTS["validation_fraction"], ge=0, lt=1)
    seed: int = ETL_DEFAULTS["seed"]

    @model_validator(mode="after")
    def _leaves_a_training_split(self) -> EtlConfig:
        problem = split_fractions_problem(self.test_fraction, self.validation_fraction)
        if problem:
            raise ValueError(problem)
        return self

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
    seed: int = Field(1, ge=0, description="the training seed; with a count of seeds, the first one")
    seeds: int | list[int] = Field(
        1,
        description="repeats: a count N (seeds seed, seed+1, ..., seed+N-1) or the list of seeds; every "
        "model is trained and evaluated once per seed, and the report reads across them",
    )

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

    @field_validator("seeds")
    @classmethod
    def _usable_seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and not 1 <= seeds <= MAX_SEEDS:
            raise ValueError(f"a count of seeds must be 1 to {MAX_SEEDS}, got {seeds}")
        distinct = isinstance(seeds, list) and len(set(seeds)) == len(seeds) and min(seeds, default=0) >= 0
        if isinstance(seeds, list) and not (1 <= len(seeds) <= MAX_SEEDS and distinct):
            raise ValueError(f"a list of seeds holds 1 to {MAX_SEEDS} distinct non-negative integers")
        return seeds

    def stages(self) -> tuple[Stage, ...]:
        if isinstance(self.schedule, str):
            return BUILTIN_SCHEDULES[self.schedule]
        return tuple(self.schedule)

    def seed_list(self) -> tuple[int, ...]:
        """The seeds every model is trained with, in order."""
        if isinstance(self.seeds, list):
            return tuple(self.seeds)
        return tuple(range(self.seed, self.seed + self.seeds))


@dataclass(frozen=True)
class ModelRun:
    """One model trained with one seed: the unit that is trained, evaluated and registered."""

    model: str
    seed: int

    @property
    def folder(self) -> str:
        """Its folder under models/ and evaluations/ (locally and in S3)."""
        return f"{self.model}/seed-{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.model} seed {self.seed}"

    @property
    def slug(self) -> str:
        """For AWS names ([a-z0-9-]): ``densenet121-s3``."""
        return f"{self.model.replace('_', '-')}-s{self.seed}"


class ExternalTest(_Strict):
    """A test-only dataset from other sources (another hospital): never trained on, one class allowed."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$")
    sources: list[Source] = Field(min_length=1)
    label_rules: list[LabelRule] | None = Field(
        None,
        description="this set's finding -> class rules (e.g. Cohen's other pneumonias -> Pneumonia for a "
        "within-source set); absent: the experiment's",
    )
    kind: Literal[SET_KINDS] | None = Field(  # type: ignore[valid-type]
        None,
        description="how the report names the set: 'external' (another hospital or collection) or "
        "'within-source' (its classes share one source, so the source cannot separate them); absent: "
        "within-source when two or more classes all come from one source, else external",
    )


class EvaluationConfig(_Strict):
    bootstrap_samples: int = Field(1000, ge=0)
    gradcam_examples: int = Field(2, ge=0, description="correct and wrong examples per class")
    external: list[ExternalTest] = Field(
        default_factory=list,
        description="external test sets: each goes through the experiment's ETL settings as a "
        "test-only dataset and is reported beside the internal test split",
    )
    operating_rule: str = Field(
        "youden",
        pattern=r"^(youden|target_sensitivity:(0?\.\d*[1-9]\d*|1(\.0*)?))$",
        description="how the COVID-19 threshold is chosen on the validation split: 'youden' or "
        "'target_sensitivity:S' with 0 < S <= 1; test and external sets use it unchanged",
    )

    @field_validator("external")
    @classmethod
    def _unique_names(cls, external: list[ExternalTest]) -> list[ExternalTest]:
        names = [e.name for e in external]
        if len(set(names)) != len(names):
            raise ValueError(f"each external test set needs its own name, got {names}")
        return external


# Beyond these a value is almost surely a typo (1e6 for 1e-6); ``allow_unusual`` says it is meant.
USUAL_LIMITS = {"learning_rate": 1.0, "epochs": 1000, "batch_size": 1024}


class Experiment(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    description: str = ""
    paper_reference: Literal[PAPER_EXPERIMENTS] | None = None  # type: ignore[valid-type]
    allow_unusual: bool = Field(
        False, description=f"accept values beyond the usual limits {USUAL_LIMITS} (training only)"
    )
    etl: EtlConfig
    training: TrainingConfig
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _usual_values(self) -> Experiment:
        if self.allow_unusual:
            return self
        values = [("training.batch_size", "batch_size", self.training.batch_size)]
        for number, stage in enumerate(self.training.stages()):
            values += [
                (f"training.schedule.{number}.learning_rate", "learning_rate", stage.learning_rate),
                (f"training.schedule.{number}.epochs", "epochs", stage.epochs),
            ]
        unusual = [f"{where} = {value:g}" for where, key, value in values if value > USUAL_LIMITS[key]]
        if unusual:
            raise ValueError(
                f"unusual value(s) {', '.join(unusual)} (limits {USUAL_LIMITS}); fix them, or set "
                '"allow_unusual": true in the experiment if they are meant'
            )
        return self

    @model_validator(mode="after")
    def _paper_reference_matches_task(self) -> Experiment:
        if self.paper_reference in TASKS and self.paper_reference != self.training.task:
            raise ValueError(f"paper_reference {self.paper_reference!r} needs task {self.paper_reference!r}")
        return self

    def digest(self) -> str:
        """The whole experiment: two files with the same name but other settings differ here."""
        return _digest(self.model_dump(mode="json"))

    def dataset_key(self) -> str:
        """Names the ETL output: same sources and settings, same key, so a finished ETL is reused."""
        return _digest({"etl": self.etl.model_dump(mode="json"), "etl_output": OUTPUT_VERSION})

    def external_etl(self, name: str) -> EtlConfig:
        """The ETL settings of external test set ``name``: the experiment's, with its sources (and label
        rules, when it has its own) and no caps."""
        external = {e.name: e for e in self.evaluation.external}[name]
        rules = self.etl.label_rules if external.label_rules is None else external.label_rules
        return self.etl.model_copy(update={"sources": external.sources, "caps": {}, "label_rules": rules})

    def external_dataset_key(self, name: str) -> str:
        return _digest(
            {
                "etl": self.external_etl(name).model_dump(mode="json"),
                "etl_output": OUTPUT_VERSION,
                "test_only": True,
            }
        )

    def runs(self) -> list[ModelRun]:
        """Every model with every seed, model by model."""
        return [ModelRun(m, seed) for m in self.training.models for seed in self.training.seed_list()]

    def model_key(self, model: str, seed: int) -> str:
        """Names one trained model: the dataset plus everything that changes training, its seed included."""
        from jobs.experiment.arguments import training_hyperparameters  # the builders import this module

        return _digest({"dataset": self.dataset_key(), "hp": training_hyperparameters(self, model, seed)})

    def evaluation_key(self, model: str, seed: int) -> str:
        return _digest(
            {"model": self.model_key(model, seed), "evaluation": self.evaluation.model_dump(mode="json")}
        )

    def report_key(self) -> str:
        """Changes with any run's evaluation, and with the experiment's name or paper reference."""
        return _digest(
            {
                "evaluations": [self.evaluation_key(r.model, r.seed) for r in self.runs()],
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
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such experiment file (see experiments/ for examples)") from None
    except IsADirectoryError:
        raise ExperimentError(f"{path}: a folder, not an experiment file; give one .json file") from None
    except UnicodeDecodeError as exc:
        raise ExperimentError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); an experiment is a JSON text file"
        ) from None
    except json.JSONDecodeError as exc:
        raise ExperimentError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    return parse_experiment(raw, origin=str(path))


def parse_experiment(raw: object, origin: str = "experiment") -> Experiment:
    try:
        # Strict: JSON's true is not a batch size of 1, nor "3" an epoch count.
        return Experiment.model_validate(raw, strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(top level)'}': {err['msg']}"
            for err in exc.errors()
        )
        raise ExperimentError(f"{origin}: {problems}") from None
