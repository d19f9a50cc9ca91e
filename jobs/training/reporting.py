"""Per-epoch output: progress and METRIC lines on stdout (SageMaker metric definitions), history.json."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import keras

from jobs.atomic import write_text_atomically
from jobs.contracts.metric_lines import format_metric_line
from jobs.experiment.schema import Stage

LOG = logging.getLogger(__name__)

# Keras log key -> metric line name (the names SageMaker's metric definitions match, jobs.contracts.metric_lines).
LOG_KEYS = {
    "loss": "train_loss",
    "accuracy": "train_accuracy",
    "val_loss": "val_loss",
    "val_accuracy": "val_accuracy",
}


def epoch_lines(stage_index: int, stages: tuple[Stage, ...], epoch: int, logs: dict[str, float]) -> list[str]:
    stage = stages[stage_index]
    lines = [
        f"epoch {epoch + 1}/{stage.epochs} stage {stage_index + 1}/{len(stages)} "
        f"(trainable={stage.trainable}, learning_rate={stage.learning_rate:g})"
    ]
    # A diverged (NaN) loss still shows in the progress line and history.json; SageMaker cannot plot it.
    lines += [
        format_metric_line(name, float(logs[key]))
        for key, name in LOG_KEYS.items()
        if key in logs and math.isfinite(float(logs[key]))
    ]
    return lines


def history_entry(stage_index: int, epoch: int, logs: dict[str, float]) -> dict:
    return {
        "stage": stage_index,
        "epoch": epoch,
        **{key: float(logs[key]) for key in LOG_KEYS if key in logs},
    }


def history_document(stages: tuple[Stage, ...], epochs: list[dict]) -> dict:
    return {"stages": [stage.model_dump() for stage in stages], "epochs": epochs}


def write_json(path: Path, payload: dict) -> None:
    write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


class EpochReporter(keras.callbacks.Callback):
    """Prints each epoch's lines and appends its history entry (the list is shared with the caller)."""

    def __init__(self, stage_index: int, stages: tuple[Stage, ...], history: list[dict]):
        super().__init__()
        self.stage_index, self.stages, self.history = stage_index, stages, history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        for line in epoch_lines(self.stage_index, self.stages, epoch, logs):
            LOG.info(line)
        self.history.append(history_entry(self.stage_index, epoch, logs))
