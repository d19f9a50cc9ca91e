"""The tf.data input pipeline: Parquet files read in parallel, pixels kept uint8 until a batch is formed.

Per image the CPU only copies bytes: record batches come out of Arrow as zero-copy uint8 arrays, files are
read by parallel interleave, and the cast to float [0, 1] (the reader's x / 255, as ``jobs.data.reader.to_float``)
runs once per batch in a parallel map. The rotation is not here: it is a layer of the model
(``jobs.training.models``), so on the training instance it runs on the GPUs beside the model.

A training split whose pixels fit ``cache_bytes`` is kept in memory after the first epoch; a larger one is
streamed, and memory is then bounded by the shuffle buffer (uint8 images) plus a few batches in flight.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from jobs.contracts.tasks import task_targets
from jobs.data.reader import Dataset
from jobs.training.randomness import EpochSeeds

READ_ROWS = 64
READERS = 4  # files open at once; Arrow decompresses each on its own threads too


def split_bytes(ds: Dataset, split: str) -> int:
    """The split's pixels in memory, as uint8."""
    return ds.count(split) * int(np.prod(ds.image_shape))


def record_batches(ds: Dataset, split: str, task: str) -> tf.data.Dataset:
    """(uint8 images, targets) in record batches of up to READ_ROWS rows, files interleaved in a fixed order."""
    fragments = ds.fragments(split)

    def read(index: int):
        for batch in ds.fragment_batches(fragments[index], ("image", "label_index"), READ_ROWS):
            yield batch["image"], task_targets(task, batch["label_index"])

    signature = (tf.TensorSpec((None, *ds.image_shape), tf.uint8), tf.TensorSpec((None,), tf.int64))
    return tf.data.Dataset.range(len(fragments)).interleave(
        lambda index: tf.data.Dataset.from_generator(read, args=(index,), output_signature=signature),
        cycle_length=max(1, min(len(fragments), READERS)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,  # seeded runs see the same order
    )


def _to_float(images: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32) / 255.0, targets


def _finish(examples: tf.data.Dataset, count: int, batch_size: int, max_steps: int) -> tf.data.Dataset:
    # The manifest's count makes the length known, so Keras knows the steps per epoch.
    data = (
        examples.apply(tf.data.experimental.assert_cardinality(count))
        .batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .map(_to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    )
    if max_steps:
        data = data.take(max_steps)
    return data.prefetch(tf.data.AUTOTUNE)


def training_dataset(
    ds: Dataset,
    task: str,
    batch_size: int,
    seeds: EpochSeeds,
    shuffle_buffer: int,
    cache_bytes: int,
    max_steps: int = 0,
) -> tf.data.Dataset:
    """Shuffled (a new order each epoch, drawn from ``seeds``), batched, scaled to [0, 1], prefetched.

    Cached or streamed, an epoch yields the same images in the same order: the cache sits before the
    shuffle, whose seed is read when an epoch's iterator opens (inside ``flat_map``), after
    ``EpochSeeds.on_epoch_begin`` has set it. A capped epoch (``max_steps``) never reads the whole
    split, so it is always streamed.
    """
    examples = record_batches(ds, "train", task).unbatch()
    if not max_steps and split_bytes(ds, "train") <= cache_bytes:
        examples = examples.cache()  # single images: later epochs skip reading and slicing alike
    shuffled = tf.data.Dataset.range(1).flat_map(
        lambda _: examples.shuffle(
            shuffle_buffer, seed=seeds.shuffle_seed.read_value(), reshuffle_each_iteration=False
        )
    )
    return _finish(shuffled, ds.count("train"), batch_size, max_steps)


def evaluation_dataset(
    ds: Dataset, split: str, task: str, batch_size: int, max_steps: int = 0
) -> tf.data.Dataset:
    """In a fixed order, no augmentation: validation during training."""
    return _finish(record_batches(ds, split, task).unbatch(), ds.count(split), batch_size, max_steps)
