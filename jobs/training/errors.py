"""The one exception type of training: a problem with a clear fix, reported in the failure file."""


class TrainingError(ValueError):
    """Bad hyperparameters, data, weights or checkpoints; the message names the field and the fix."""
