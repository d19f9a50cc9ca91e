"""Every random draw of one epoch (shuffle order, rotations, dropout) starts from a seed of (seed, stage,
epoch), so a job resumed at any epoch from its checkpoint repeats what an uninterrupted run would draw.

Seed generators are not part of a saved model, and tf.data's reshuffling counts the iterations of its
own process: without this, a spot-interrupted job resumed with other shuffles and another history.
"""

from __future__ import annotations

import keras
import tensorflow as tf

_SEED_STATE = "seed_generator_state"  # the name Keras gives every SeedGenerator's state variable


def epoch_seed(seed: int, stage: int, epoch: int) -> int:
    """A distinct 31-bit seed per (seed, stage, epoch) for schedules of under 1000 epochs per stage."""
    return (seed * 1_000_003 + stage * 1_000 + epoch) % 2**31


class EpochSeeds(keras.callbacks.Callback):
    """Reseeds the input pipeline's shuffle (``shuffle_seed``) and the model's own seed generators (its
    rotation layer, dropout) at each epoch's start, before Keras opens that epoch's iterator."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed, self.stage = seed, 0
        self.shuffle_seed = tf.Variable(epoch_seed(seed, 0, 0), dtype=tf.int64, trainable=False)

    def for_stage(self, stage: int) -> EpochSeeds:
        self.stage = stage
        return self

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        value = epoch_seed(self.seed, self.stage, epoch)
        self.shuffle_seed.assign(value)
        states = [v for v in self.model.variables if v.name == _SEED_STATE]
        for index, state in enumerate(states, 1):
            state.assign([value, index])
