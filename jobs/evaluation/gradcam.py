"""Grad-CAM (Selvaraju et al. 2017) for the training contract's models, nested backbones included.

The target layer is found from the model's structure: walking the layers in order, descending into
nested models, the last layer with a 4D (batch, height, width, channels) output before the first global
pooling or flatten. Building ``keras.Model(model.inputs, inner_layer.output)`` across a nested backbone
fails with "Graph disconnected" (tensorflow#44462), so the forward pass is replayed instead: the outer
model's layers are called in order, and the backbone that holds the target layer is swapped for a
sub-model of its own graph that returns (target activations, backbone output). Gradients are taken of
the class's pre-softmax score, as in the paper and the keras-io recipe.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import tensorflow as tf

_FLATTENING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)


class GradCamError(ValueError):
    """The model has no layer Grad-CAM can use, or is not a chain of layers at its top level."""


def _is_4d(layer: keras.layers.Layer) -> bool:
    try:
        return len(layer.output.shape) == 4
    except (AttributeError, ValueError):
        return False


def _walk(model: keras.Model, prefix: tuple[str, ...] = ()) -> tuple[tuple[str, ...] | None, bool]:
    """(path of the last 4D layer seen, whether a flattening layer ended the walk)."""
    found = None
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner, stopped = _walk(layer, prefix + (layer.name,))
            found = inner or found
            if stopped:
                return found, True
        elif isinstance(layer, _FLATTENING):
            return found, True
        elif _is_4d(layer) and not isinstance(layer, keras.layers.InputLayer):
            found = prefix + (layer.name,)
    return found, False


def find_target_layer(model: keras.Model) -> tuple[str, ...]:
    """Layer names from ``model`` down to its last feature map, e.g. ('resnet50', 'conv5_block3_out')."""
    path, _ = _walk(model)
    if path is None:
        raise GradCamError(
            f"model {model.name!r} has no layer with a 4D output before its pooling; "
            "Grad-CAM needs a convolutional feature map"
        )
    return path


def _run(
    model: keras.Model, x: tf.Tensor, path: tuple[str, ...], logits: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """Calls ``model`` on ``x``, returning (activations of the layer at ``path``, output).

    A chain of layers (the contract's outer model) is replayed layer by layer, descending into the nested
    model on ``path``; any other graph (a keras.applications backbone) answers from its own graph.
    With ``logits``, a final softmax Dense layer gives its pre-softmax scores.
    """
    target = model.get_layer(path[0])
    if not _is_chain(model):
        if len(path) > 1:
            raise GradCamError(
                f"Grad-CAM replays {model.name!r} layer by layer, but it is not a chain of "
                f"layers, so the nested layer {'/'.join(path)} cannot be reached"
            )
        return tuple(keras.Model(model.inputs, [target.output, model.output])(x, training=False))
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    features = None
    for layer in layers:
        if layer is target and len(path) > 1:
            features, x = _run(layer, x, path[1:], logits=False)
        elif logits and layer is layers[-1] and _is_softmax_dense(layer):
            x = keras.ops.matmul(x, layer.kernel) + (layer.bias if layer.use_bias else 0.0)
        else:
            x = layer(x, training=False)
        if layer is target and len(path) == 1:
            features = x
    return features, x


def _is_softmax_dense(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.softmax


def _is_chain(model: keras.Model) -> bool:
    """True when each layer feeds only the next (a Sequential, or a functional model written like one)."""
    if isinstance(model, keras.Sequential):
        return True
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for before, after in zip(layers, layers[1:], strict=False):
        inbound = [t._keras_history.operation for t in after._inbound_nodes[0].input_tensors]
        if inbound != [before]:
            return False
    return len(model.inputs) == 1


def gradcam(
    model: keras.Model, image: np.ndarray, class_index: int, layer: tuple[str, ...] | None = None
) -> np.ndarray:
    """Heatmap of where ``model`` looked for ``class_index`` in one float [0,1] (H, W, 3) image.

    Returns float32 (H, W) in [0, 1], resized to the image; all zeros when no pixel raises the class score.
    """
    path = layer or find_target_layer(model)
    x = tf.convert_to_tensor(image[None].astype(np.float32))
    with tf.GradientTape() as tape:
        features, scores = _run(model, x, path, logits=True)
        score = scores[:, class_index]
    grads = tape.gradient(score, features)
    if grads is None:
        raise GradCamError(f"no gradient flows from class {class_index} to layer {'/'.join(path)}")
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", features, weights))[0].numpy()
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else np.zeros_like(cam)
    height, width = image.shape[:2]
    resized = cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0)
