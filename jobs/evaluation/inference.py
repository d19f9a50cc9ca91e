"""Model outputs for many arrays of images, traced once.

``model.predict`` traces its graph again for each new model and for each new size of a last partial
batch; on a 2-core CPU one DenseNet121 trace takes about 10 s, and an evaluation predicts a dozen sets
(validation, test, lungs hidden, lungs only, external sets, features for the source probe). One
``tf.function`` with an unknown batch size per model serves them all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jobs.data.reader import to_float


def batched_outputs(model, batch_size: int = 32) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 images (N, H, W, C) -> the model's outputs at inference (float64), ``batch_size`` at a time."""
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape[1:])

    @tf.function(input_signature=[tf.TensorSpec((None, *shape), tf.float32)])
    def forward(images: tf.Tensor) -> tf.Tensor:
        return model(images, training=False)

    def outputs(images: np.ndarray) -> np.ndarray:
        parts = [
            forward(to_float(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)
        ]
        if not parts:
            return np.zeros((0, *model.outputs[0].shape[1:]), dtype=np.float64)
        return np.concatenate(parts).astype(np.float64)

    return outputs
