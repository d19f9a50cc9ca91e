"""``train``: the SageMaker training entry point, also ``cxr train`` on one machine.

Hyperparameters come from /opt/ml/input/config/hyperparameters.json and/or ``--key=value`` flags (flags
win); ``--data``, ``--model-dir``, ``--checkpoint-dir`` and ``--channel`` override the container's paths.
Everything is validated before training; a failure's reason goes to the failure file and the exit is 1.
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.atomic import NotWritableError, check_writable
from jobs.console import configure_logging
from jobs.contracts import sagemaker_env
from jobs.data.reader import DatasetError, open_dataset
from jobs.training.class_balance import class_counts
from jobs.training.errors import TrainingError
from jobs.training.hyperparameters import parse_hyperparameters

if TYPE_CHECKING:
    import keras

PATH_FLAGS = ("data", "model_dir", "checkpoint_dir", "channel", "tensorboard_dir")
NO_TENSORBOARD = "none"  # --tensorboard-dir=none: no TensorBoard logs
USAGE = (
    "usage: train [--data=DATASET] [--model-dir=DIR] [--checkpoint-dir=DIR] [--channel=NAME] "
    "[--tensorboard-dir=DIR|none] [--HYPERPARAMETER=VALUE ...]\n"
    "  hyperparameters: see jobs.experiment.arguments.training_hyperparameters (e.g. --model=resnet50 --task=binary)"
)

LOG = logging.getLogger(__name__)


def split_argv(argv: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``--key=value`` flags -> (path flags, hyperparameters); dashes in keys become underscores."""
    paths: dict[str, str] = {}
    hyperparameters: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not (key.startswith("--") and sep):
            raise TrainingError(f"argument {arg!r}: expected --key=value.\n{USAGE}")
        key = key[2:].replace("-", "_")
        (paths if key in PATH_FLAGS else hyperparameters)[key] = value
    return paths, hyperparameters


class Stopped(Exception):
    """SIGTERM: SageMaker stops the job (spot interruption, StopTrainingJob, timeout)."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped()


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    env = sagemaker_env.from_environ()
    # As PID 1 of a container the default action of SIGTERM is ignored, so the job would run on until
    # SageMaker's SIGKILL; stop at once instead: every finished epoch is already in the checkpoint.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        run(argv, env)
    except Stopped:
        LOG.error("training stopped by SIGTERM; a rerun resumes from the last checkpoint")
        return 128 + signal.SIGTERM
    except (TrainingError, DatasetError, NotWritableError, sagemaker_env.ContainerContractError) as exc:
        return _fail(env, str(exc), 1)
    except Exception as exc:  # any other failure must still reach SageMaker's failure file
        return _fail(env, f"unexpected error: {exc!r}\n{traceback.format_exc()}", 2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _fail(env: sagemaker_env.SageMakerEnv, message: str, code: int) -> int:
    LOG.error(f"training failed: {message}")
    env.write_failure(message)
    return code


def _dataset_location(paths: dict[str, str], env: sagemaker_env.SageMakerEnv) -> str:
    if "data" in paths:
        return paths["data"]
    channel = paths.get("channel", sagemaker_env.DATASET_CHANNEL)
    local = env.channel(channel)
    if local is None:
        raise TrainingError(
            f"no data: the training job has no '{channel}' channel ({sagemaker_env.channel_dir(channel, str(env.root))} "
            f"and SM_CHANNEL_{channel.upper()} are absent); give the job a '{channel}' input "
            "channel holding the ETL output, or pass --data=PATH_OR_S3_URI"
        )
    return str(local)


def run(argv: list[str], env: sagemaker_env.SageMakerEnv) -> keras.Model:
    """Validate everything (hyperparameters, data, checkpoint, weights), then train and write the outputs."""
    paths, flags = split_argv(argv)
    hp = parse_hyperparameters({**env.hyperparameters(), **flags})
    data_uri = _dataset_location(paths, env)
    ds = open_dataset(data_uri)
    ds.verify(("train", "validation"))
    for split in ("train", "validation"):
        class_counts(ds, hp.config.task, split)
    model_dir = Path(paths.get("model_dir") or env.model_dir)
    check_writable(model_dir, "--model-dir")

    from jobs.training import trainer  # TensorFlow loads only once the cheap checks have passed

    return trainer.train(
        hp,
        ds,
        data_uri,
        model_dir=model_dir,
        checkpoint_dir=_checkpoint_dir(paths, env),
        weights_dir=env.channel(sagemaker_env.WEIGHTS_CHANNEL),
        gpus_expected=env.gpus_expected(),
        tensorboard_dir=_tensorboard_dir(paths, env, model_dir),
    )


def _tensorboard_dir(paths: dict[str, str], env: sagemaker_env.SageMakerEnv, model_dir: Path) -> Path | None:
    chosen = paths.get("tensorboard_dir")
    if chosen == NO_TENSORBOARD:
        return None
    return Path(chosen) if chosen else env.tensorboard_dir(model_dir)


def _checkpoint_dir(paths: dict[str, str], env: sagemaker_env.SageMakerEnv) -> Path | None:
    return Path(paths["checkpoint_dir"]) if "checkpoint_dir" in paths else env.checkpoint_dir


if __name__ == "__main__":
    sys.exit(main())
