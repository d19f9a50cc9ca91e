"""BatchNorm of randomly initialised networks: a faster moving average while training, and exact
statistics of the final weights afterwards.

While weights change, BatchNorm's moving averages trail them; a short run from random init ends with
statistics of earlier weights, and inference then normalises wrongly (the demo's DenseNet121 answered
COVID-19 for every image). Recomputing them once with the final weights ("precise BatchNorm", Wu and
Johnson 2021) removes that lag; pretrained networks keep ImageNet's statistics and skip both steps.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

# Keras' default 0.99 averages over ~100 steps starting from mean 0, variance 1; the demo trains ~20 steps
# an epoch, so validation during training would see statistics far from the data's.
RANDOM_INIT_MOMENTUM = 0.9


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of ``model``, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += batchnorm_layers(layer)
    return found


def set_momentum(model: keras.Model, momentum: float) -> None:
    """Every BatchNorm layer averages with ``momentum`` (saved with the model)."""
    for layer in batchnorm_layers(model):
        layer.momentum = momentum


def recalibrate(model: keras.Model, batches: Iterable) -> int:
    """Sets each trainable BatchNorm's moving mean and variance to the average of its batch statistics over
    ``batches`` (images only), computed with the current weights; returns the number of layers set.

    Batch k is averaged in with momentum k / (k + 1), which makes the moving value the exact mean.
    Only BatchNorm state changes: a forward pass in training mode updates nothing else. Frozen layers
    (a backbone whose last stage trained the head only) ran in inference mode, and the head learnt on
    their statistics, so they keep them.
    """
    layers = [layer for layer in batchnorm_layers(model) if layer.trainable]
    if not layers:
        return 0
    kept = [layer.momentum for layer in layers]
    count = 0
    try:
        for images in batches:
            for layer in layers:
                layer.momentum = count / (count + 1)
            model(images, training=True)
            count += 1
    finally:
        for layer, momentum in zip(layers, kept, strict=True):
            layer.momentum = momentum
    return len(layers)
