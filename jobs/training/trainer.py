"""One training run: devices, model (built or resumed), the schedule's stages, and the outputs.

Outputs in the model directory (the CONTRACT with evaluation): model.keras, history.json, config.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf

from jobs.atomic import replace_atomically
from jobs.contracts.tasks import task_classes
from jobs.data.reader import Dataset
from jobs.experiment import provenance
from jobs.training.batchnorm import recalibrate
from jobs.training.checkpoints import EpochCheckpoint, find_checkpoint, save_checkpoint
from jobs.training.class_balance import balanced_class_weights, class_counts
from jobs.training.hardware import HardwarePlan, detect_hardware, global_batch_size, make_strategy
from jobs.training.hyperparameters import Hyperparameters
from jobs.training.inputs import evaluation_dataset, training_dataset
from jobs.training.models import ModelSpec, build_model, effective_weights
from jobs.training.randomness import EpochSeeds
from jobs.training.reporting import EpochReporter, history_document, write_json
from jobs.training.schedules import Progress, configure_stage, start_position
from jobs.training.tensorboard import clear_event_files, tensorboard_callbacks
from jobs.training.weights import imagenet_unavailable, resolve_weights

LOG = logging.getLogger(__name__)


def resolved_config(
    hp: Hyperparameters, weights: str, image_shape: tuple[int, int, int], fingerprint: str, data_uri: str
) -> dict:
    """config.json of the CONTRACT: what the evaluation needs to use the model."""
    return {
        "model": hp.model,
        "seed": hp.config.seed,
        "task": hp.config.task,
        "classes": list(task_classes(hp.config.task)),
        "image_shape": list(image_shape),
        "normalisation": hp.config.normalisation,
        "weights": weights,
        "hyperparameters": hp.raw,
        "dataset_fingerprint": fingerprint,
        "dataset_uri": hp.options.dataset_uri or data_uri,
    }


def run_identity(hp: Hyperparameters, ds: Dataset) -> dict:
    """What a checkpoint must share with this run to be resumed by it."""
    return {
        "model": hp.model,
        "task": hp.config.task,
        "dataset_fingerprint": ds.fingerprint,
        "normalisation": hp.config.normalisation,
        "dense_units": hp.options.dense_units,
        "rotation_degrees": hp.config.rotation_degrees,  # the rotation is a layer of the saved model
    }


def _build(hp: Hyperparameters, ds: Dataset, weights: str, weights_dir: Path | None) -> keras.Model:
    spec = ModelSpec(
        name=hp.model,
        num_classes=len(task_classes(hp.config.task)),
        image_shape=ds.image_shape,
        normalisation=hp.config.normalisation,
        dropout=hp.config.dropout,
        dense_units=hp.options.dense_units,
        rotation_degrees=hp.config.rotation_degrees,
        seed=hp.config.seed,
    )
    local = resolve_weights(weights, hp.model, staged_dir=weights_dir)
    try:
        return build_model(spec, local)
    except Exception as exc:
        if local == "imagenet":
            raise imagenet_unavailable(hp.model, exc) from exc
        raise


def train(
    hp: Hyperparameters,
    ds: Dataset,
    data_uri: str,
    model_dir: Path,
    checkpoint_dir: Path | None,
    weights_dir: Path | None = None,
    gpus_expected: str | None = None,
    tensorboard_dir: Path | None = None,
) -> keras.Model:
    """Trains through the schedule (resuming a matching checkpoint), writes the outputs, returns the model.

    ``gpus_expected`` says why the host has GPUs (``SageMakerEnv.gpus_expected``): none visible then fails.
    ``tensorboard_dir`` receives Keras' TensorBoard logs (None: no logs).
    """
    stages, config = hp.stages, hp.config
    identity = run_identity(hp, ds)
    checkpoint = find_checkpoint(checkpoint_dir, identity, stages)
    if tensorboard_dir is not None and checkpoint is None:  # a fresh run: no curve of an earlier run
        clear_event_files(tensorboard_dir)
    weights = effective_weights(hp.model, config.weights)

    plan, strategy, batch = _seeded_hardware(config.seed, config.batch_size, gpus_expected, ds)
    with strategy.scope():
        model = (
            keras.models.load_model(checkpoint.model_path)
            if checkpoint
            else _build(hp, ds, weights, weights_dir)
        )

    seeds = EpochSeeds(config.seed)
    train_data, val_data, class_weight = _inputs(hp, ds, batch, seeds)

    history = list(checkpoint.history) if checkpoint else []
    position = start_position(stages, checkpoint.progress if checkpoint else None)
    if checkpoint:
        LOG.info(
            "resuming from %s at stage %d epoch %d", checkpoint_dir, position.stage + 1, position.epoch + 1
        )
    for index in range(position.stage, len(stages)):
        initial_epoch = position.epoch if index == position.stage else 0
        if initial_epoch == 0:  # a stage starts; resumed mid-stage, the model keeps its optimizer state
            # the stage before, when this process trained it (then its compiled step may be reused)
            previous = stages[index - 1] if index > position.stage else None
            with strategy.scope():
                configure_stage(model, stages[index], previous)
        stopper = (
            keras.callbacks.EarlyStopping(patience=config.early_stopping_patience, restore_best_weights=True)
            if config.early_stopping_patience
            else None
        )
        callbacks = [
            seeds.for_stage(index),
            EpochReporter(index, stages, history),
            *tensorboard_callbacks(tensorboard_dir, stages, index),
            *([stopper] if stopper else []),
            *(
                [EpochCheckpoint(checkpoint_dir, identity, stages, index, history)]
                if checkpoint_dir is not None
                else []
            ),
        ]
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=stages[index].epochs,
            initial_epoch=initial_epoch,
            class_weight=class_weight,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,  # the pipeline shuffles
        )
        if checkpoint_dir is not None:  # again after fit: early stopping may have restored the best weights
            done = history[-1]["epoch"] + 1 if history and history[-1]["stage"] == index else initial_epoch
            save_checkpoint(
                checkpoint_dir,
                model,
                identity,
                stages,
                Progress(index, done, stopped_early=bool(stopper and stopper.stopped_epoch)),
                history,
            )

    if weights == "none":
        images = evaluation_dataset(ds, "train", config.task, batch).map(lambda x, _: x)
        layers = recalibrate(model, images)
        LOG.info("BatchNorm statistics of %d layers recomputed with the final weights", layers)

    # Atomic: a run killed while saving leaves the previous model (or none), never a truncated one.
    replace_atomically(model_dir / "model.keras", model.save)
    write_json(model_dir / "history.json", history_document(stages, history))
    config_document = resolved_config(hp, weights, ds.image_shape, ds.fingerprint, data_uri)
    write_json(
        model_dir / "config.json", config_document | {"provenance": provenance.machine(plan.deterministic)}
    )
    LOG.info("model, history and config written to %s", model_dir)
    return model


def _inputs(
    hp: Hyperparameters, ds: Dataset, batch: int, seeds: EpochSeeds
) -> tuple[tf.data.Dataset, tf.data.Dataset, dict[int, float] | None]:
    """The training and validation pipelines and the class weights (None: unweighted)."""
    config, steps = hp.config, hp.options.max_steps_per_epoch
    train_data = training_dataset(
        ds, config.task, batch, seeds, hp.options.shuffle_buffer, hp.options.cache_mb * 2**20, steps
    )
    val_data = evaluation_dataset(ds, "validation", config.task, batch, steps)
    class_weight = (
        balanced_class_weights(class_counts(ds, config.task, "train"))
        if config.class_weights == "balanced"
        else None
    )
    return train_data, val_data, class_weight


def _seeded_hardware(
    seed: int, batch_size: int, gpus_expected: str | None, ds: Dataset
) -> tuple[HardwarePlan, tf.distribute.Strategy, int]:
    """The devices, seeded before anything draws a random number: the plan, its strategy, the global batch."""
    plan = detect_hardware(gpus_expected)
    keras.utils.set_random_seed(seed)
    if plan.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(plan)
    batch = global_batch_size(batch_size, strategy)
    LOG.info(
        "devices: %s, replicas %d, global batch %d, mixed precision %s, image shape %s",
        list(plan.devices) or ["cpu"],
        strategy.num_replicas_in_sync,
        batch,
        plan.mixed_precision,
        ds.image_shape,
    )
    return plan, strategy, batch
