"""The tf.data input pipeline: streams the ETL's Parquet record batches, never the whole split.

Memory is bounded by the shuffle buffer (uint8 images) plus a few batches in flight, whatever the
dataset's size. Scaling to [0, 1] is the reader's x / 255 (``jobs.dataset.to_float``), done on batches.
"""

from __future__ import annotations

import tensorflow as tf

from jobs.dataset import Dataset
from jobs.tasks import task_targets
from jobs.training.randomness import EpochSeeds

READ_ROWS = 64


def _examples(ds: Dataset, split: str, task: str) -> tf.data.Dataset:
    height, width, channels = ds.image_shape

    def generate():
        for batch in ds.batches(split, batch_rows=READ_ROWS):
            yield batch["image"], task_targets(task, batch["label_index"])

    signature = (tf.TensorSpec((None, height, width, channels), tf.uint8), tf.TensorSpec((None,), tf.int64))
    examples = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
    # The manifest's count makes the length known, so Keras knows the steps per epoch.
    return examples.apply(tf.data.experimental.assert_cardinality(ds.count(split)))


def _to_float(images: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32) / 255.0, targets


def training_dataset(
    ds: Dataset,
    task: str,
    batch_size: int,
    seeds: EpochSeeds,
    shuffle_buffer: int,
    rotation_degrees: float,
    max_steps: int = 0,
) -> tf.data.Dataset:
    """Shuffled, batched, rotated within +-degrees, prefetched; each epoch's draws come from ``seeds``.

    The shuffle's seed is read when an epoch's iterator opens (inside ``flat_map``), after
    ``EpochSeeds.on_epoch_begin`` has set it.
    """
    examples = _examples(ds, "train", task)
    data = (
        tf.data.Dataset.range(1)
        .flat_map(
            lambda _: examples.shuffle(
                shuffle_buffer, seed=seeds.shuffle_seed.read_value(), reshuffle_each_iteration=False
            )
        )
        .apply(tf.data.experimental.assert_cardinality(ds.count("train")))
        .batch(batch_size)
        .map(_to_float)
    )
    if rotation_degrees > 0:
        import keras

        rotate = keras.layers.RandomRotation(rotation_degrees / 360.0, fill_mode="nearest")

        def rotated(images: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            change = rotate.get_random_transformation(images, training=True, seed=seeds.rotation)
            return rotate.transform_images(images, change, training=True), targets

        data = data.map(rotated)
    if max_steps:
        data = data.take(max_steps)
    return data.prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(
    ds: Dataset, split: str, task: str, batch_size: int, max_steps: int = 0
) -> tf.data.Dataset:
    """In file order, no augmentation: validation during training."""
    data = _examples(ds, split, task).batch(batch_size).map(_to_float)
    if max_steps:
        data = data.take(max_steps)
    return data.prefetch(tf.data.AUTOTUNE)
