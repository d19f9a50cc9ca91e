"""Checkpoints for managed spot training: the compiled model plus where the run stands, after every epoch.

A restarted job finds them (SageMaker restores /opt/ml/checkpoints from S3) and continues from the same
stage and epoch with the optimizer state it had. A checkpoint of another model, task, dataset or schedule
is refused with a message rather than silently trained on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras

from jobs.atomic import replace_atomically, write_text_atomically
from jobs.experiment.schema import Stage
from jobs.training.errors import TrainingError
from jobs.training.schedules import Progress

MODEL_FILE = "model.keras"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    model_path: Path
    progress: Progress
    history: list[dict]


def save_checkpoint(
    directory: Path,
    model: keras.Model,
    identity: dict,
    stages: tuple[Stage, ...],
    progress: Progress,
    history: list[dict],
) -> None:
    """Model first, then the state that points at it, each replaced atomically."""
    replace_atomically(directory / MODEL_FILE, model.save)
    state = {
        "identity": identity,
        "stages": [s.model_dump() for s in stages],
        "progress": asdict(progress),
        "history": history,
    }
    write_text_atomically(directory / STATE_FILE, json.dumps(state, indent=2))


def find_checkpoint(directory: Path | None, identity: dict, stages: tuple[Stage, ...]) -> Checkpoint | None:
    """The checkpoint to resume from, None for a fresh start, or an error when it belongs to another run."""
    if directory is None or not (directory / STATE_FILE).exists():
        return None
    state_file = directory / STATE_FILE
    state = json.loads(state_file.read_text())
    differs = {k: (state["identity"].get(k), v) for k, v in identity.items() if state["identity"].get(k) != v}
    if differs:
        detail = ", ".join(f"{k}: checkpoint {old!r} vs now {new!r}" for k, (old, new) in differs.items())
        raise TrainingError(
            f"{state_file}: the checkpoint was written by another training run ({detail}); "
            "use an empty checkpoint directory (a new checkpoint S3 URI) for this run"
        )
    progress = Progress(**state["progress"])
    done = [Stage(**s) for s in state["stages"][: progress.stage + 1]]
    same = [(s.learning_rate, s.trainable) for s in done] == [
        (s.learning_rate, s.trainable) for s in stages[: len(done)]
    ]
    if not same:
        raise TrainingError(
            f"{state_file}: the checkpoint's first {len(done)} stage(s) {state['stages'][: len(done)]}"
            " differ from the schedule's (learning rate or trainable); resume with the same "
            "schedule (more epochs or more stages are fine) or use an empty checkpoint directory"
        )
    return Checkpoint(directory / MODEL_FILE, progress, state["history"])


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves after each epoch of one stage (after the reporter has appended the epoch's history)."""

    def __init__(
        self,
        directory: Path,
        identity: dict,
        stages: tuple[Stage, ...],
        stage_index: int,
        history: list[dict],
    ):
        super().__init__()
        self.directory, self.identity, self.stages = directory, identity, stages
        self.stage_index, self.history = stage_index, history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        save_checkpoint(
            self.directory,
            self.model,
            self.identity,
            self.stages,
            Progress(self.stage_index, epoch + 1),
            self.history,
        )
