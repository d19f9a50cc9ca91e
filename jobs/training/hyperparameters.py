"""Training hyperparameters: the string dict SageMaker passes (or the same keys as ``--key=value`` flags).

The shared fields are validated by the experiment schema itself (``jobs.experiment.schema.TrainingConfig``), so a
value the experiment file accepts is exactly a value training accepts. Everything is checked here, before
any data is read or any model is built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobs.experiment.schema import BUILTIN_SCHEDULES, Stage, TrainingConfig
from jobs.training.errors import TrainingError

REQUIRED = ("model", "task")
# The experiment's training fields, one model at a time: the schema owns the keys.
# A job trains one model with one seed: the lists of models and seeds are the plan's, not the job's.
SHARED = ("model", *(name for name in TrainingConfig.model_fields if name not in ("models", "seeds")))


class RunOptions(BaseModel):
    """Training-only knobs that are not part of an experiment (model shape, input pipeline, test limits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dense_units: int = Field(256, gt=0, description="units of the head's hidden dense layer")
    shuffle_buffer: int = Field(1024, gt=0, description="images held for shuffling (bounds memory)")
    cache_mb: int = Field(
        2048,
        ge=0,
        description="keep the training split's pixels in memory after the first epoch when they take at "
        "most this many MiB (uint8); a larger split is streamed from the files every epoch. 0 = always stream",
    )
    max_steps_per_epoch: int = Field(
        0, ge=0, description="0 = whole split; >0 caps train and validation steps"
    )
    dataset_uri: str = Field("", description="where the data channel came from (s3://...), for config.json")


@dataclass(frozen=True)
class Hyperparameters:
    model: str
    config: TrainingConfig
    options: RunOptions
    raw: dict[str, str]

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self.config.stages()


def _schedule(value: str) -> str | list:
    """A builtin schedule name, or a JSON list of {epochs, learning_rate, trainable} stages."""
    if value in BUILTIN_SCHEDULES:
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise TrainingError(
            f"hyperparameter 'schedule': {value!r} is neither a builtin schedule "
            f"({', '.join(sorted(BUILTIN_SCHEDULES))}) nor a JSON list of "
            '{"epochs", "learning_rate", "trainable"} stages'
        ) from None
    return parsed


def _field_name(loc: tuple) -> str:
    head, *rest = loc
    if head == "models":
        return "'model'"
    if head == "schedule" and len(rest) >= 3:  # ("schedule", "list[Stage]", index, field)
        return f"'schedule' stage {rest[1]} field '{rest[2]}'"
    return f"'{head}'"


def _problems(exc: ValidationError, schedule_is_list: bool) -> str:
    """One line per bad field; for a list schedule, the union's 'not a builtin name' branch is noise."""
    errors = [err for err in exc.errors() if not (schedule_is_list and err["loc"][:2] == ("schedule", "str"))]
    return "; ".join(
        f"hyperparameter {_field_name(err['loc'])}: {err['msg']} (got {err.get('input')!r})" for err in errors
    )


def parse_hyperparameters(raw: dict[str, str]) -> Hyperparameters:
    """Validates every hyperparameter; errors name the key, the value and what is allowed."""
    raw = {key: value for key, value in raw.items() if not key.startswith("sagemaker_")}
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        raise TrainingError(
            f"missing hyperparameter(s) {missing}: pass them in hyperparameters.json or as "
            "--model=... --task=... (see jobs.experiment.arguments.training_hyperparameters)"
        )
    options_keys = set(RunOptions.model_fields)
    unknown = sorted(set(raw) - set(SHARED) - options_keys)
    if unknown:
        raise TrainingError(
            f"unknown hyperparameter(s) {unknown}; known: {sorted(set(SHARED) | options_keys)}"
        )
    shared = {key: value for key, value in raw.items() if key in SHARED and key != "model"}
    if "schedule" in shared:
        shared["schedule"] = _schedule(shared["schedule"])
    if shared.get("early_stopping_patience") == "0":
        shared["early_stopping_patience"] = None
    try:
        config = TrainingConfig.model_validate({**shared, "models": [raw["model"]]})
        options = RunOptions.model_validate({k: v for k, v in raw.items() if k in options_keys})
    except ValidationError as exc:
        raise TrainingError(_problems(exc, isinstance(shared.get("schedule"), list))) from None
    return Hyperparameters(model=raw["model"], config=config, options=options, raw=dict(raw))
