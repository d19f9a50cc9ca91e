"""TensorBoard logs of a training run: Keras' own callback, one learning curve across the schedule's stages.

On SageMaker the logs go to TensorBoardOutputConfig's LocalPath (``jobs.contracts.sagemaker_env.TENSORBOARD_DIR``),
which SageMaker syncs to S3 for the console's TensorBoard; locally beside the model (``cxr tensorboard``).
Only epoch scalars are written (no graph, histograms or profile): a few kB per run, and nothing that
touches the weights or the random state, so a run's numbers are the same with or without the logs.
"""

from __future__ import annotations

from pathlib import Path

import keras

from jobs.experiment.schema import Stage


class StageTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback whose step is the epoch across all stages: each stage is a fit() of
    its own, whose epochs restart at 0 and would draw over the stage before."""

    def __init__(self, log_dir: Path, stages: tuple[Stage, ...], stage_index: int):
        super().__init__(
            log_dir=str(log_dir), histogram_freq=0, write_graph=False, update_freq="epoch", profile_batch=0
        )
        self.offset = sum(stage.epochs for stage in stages[:stage_index])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(self.offset + epoch, logs)


def clear_event_files(log_dir: Path) -> None:
    """Removes the event files an earlier run left (only those: the folder may be the user's)."""
    for events in log_dir.glob("*/events.out.tfevents.*"):
        events.unlink()


def tensorboard_callbacks(
    log_dir: Path | None, stages: tuple[Stage, ...], stage_index: int
) -> list[keras.callbacks.Callback]:
    """The callback for stage ``stage_index``, or none when logging is off (``log_dir`` None)."""
    return [] if log_dir is None else [StageTensorBoard(log_dir, stages, stage_index)]
