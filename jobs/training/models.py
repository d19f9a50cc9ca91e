"""The five models: a backbone (nested keras.Model) between an input normalisation and a dense head.

The saved model takes float32 RGB in [0, 1] of the dataset's size (the CONTRACT), so the training-time
rotation, normalisation and, where a backbone needs a larger input than the data has, resizing live inside
the model as built-in, serialisable layers: ``keras.models.load_model`` needs no custom objects. The rotation
runs where the model runs (the GPUs on the training instance), not in the CPU-bound input pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from jobs.training.batchnorm import RANDOM_INIT_MOMENTUM, set_momentum

AUGMENTATION_LAYER = "augment_rotation"
NORMALISATION_LAYER = "normalisation"
HEAD_LAYERS = ("head_pool", "head_dense", "head_dropout", "predictions")

# Each keras.applications preprocess_input, written as an affine map of the [0, 1] RGB channels:
# out = x @ matrix + bias. "caffe" = RGB->BGR, x*255 minus the ImageNet mean; "torch" = per-channel
# standardisation; "tf" = [-1, 1]; "none" = the pixels as they are (the paper's choice).
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])
_IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406])
_IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225])


def preprocessing_affine(mode: str) -> tuple[np.ndarray, np.ndarray]:
    if mode == "caffe":
        return np.fliplr(np.eye(3)) * 255.0, -_CAFFE_MEAN_BGR
    if mode == "torch":
        return np.diag(1.0 / _IMAGENET_STD_RGB), -_IMAGENET_MEAN_RGB / _IMAGENET_STD_RGB
    if mode == "tf":
        return np.eye(3) * 2.0, -np.ones(3)
    if mode == "none":
        return np.eye(3), np.zeros(3)
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def _small_cnn(include_top: bool, weights: str | None, input_shape: tuple[int, int, int]) -> keras.Model:
    """Four conv blocks: the paper's 'design our own CNN' future work, and the fast choice on a CPU.

    Same signature as keras.applications (``include_top`` is always False here) so one call builds either.
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((32, 64, 128, 128)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{i + 1}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i + 1}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{i + 1}_relu")(x)
        x = keras.layers.MaxPooling2D(name=f"block{i + 1}_pool")(x)
    model = keras.Model(inputs, x, name="small_cnn")
    if weights is not None:
        model.load_weights(weights)
    return model


@dataclass(frozen=True)
class Architecture:
    build: Callable[..., keras.Model]
    preprocessing: str
    min_size: int
    pretrained: bool


ARCHITECTURES: dict[str, Architecture] = {
    "resnet50": Architecture(keras.applications.ResNet50, "caffe", 32, True),
    "densenet121": Architecture(keras.applications.DenseNet121, "torch", 32, True),
    "vgg19": Architecture(keras.applications.VGG19, "caffe", 32, True),
    "inceptionv3": Architecture(keras.applications.InceptionV3, "tf", 75, True),
    "small_cnn": Architecture(_small_cnn, "none", 16, False),
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    normalisation: str = "backbone"
    dropout: float = 0.5
    dense_units: int = 256
    rotation_degrees: float = 0.0
    seed: int | None = None


def rotation_layer(degrees: float, seed: int | None) -> keras.layers.Layer:
    """Random rotation within +-degrees, the gaps filled with the nearest edge pixel (as before: no black corners)."""
    return keras.layers.RandomRotation(
        degrees / 360.0, fill_mode="nearest", seed=seed, name=AUGMENTATION_LAYER, dtype="float32"
    )


def build_model(spec: ModelSpec, weights: str | None = None) -> keras.Model:
    """Input [0,1] -> (rotation) -> normalisation -> (resize) -> backbone -> pooled dense head -> softmax.

    ``weights``: None, "imagenet" (downloaded by Keras) or a local weights file of the backbone; see
    ``effective_weights`` for the small CNN, which has no ImageNet weights.
    """
    arch = ARCHITECTURES[spec.name]
    height, width, _ = spec.image_shape
    size = (max(height, arch.min_size), max(width, arch.min_size))
    inputs = keras.Input(spec.image_shape, name="image")
    x = inputs
    if spec.rotation_degrees > 0:
        # Recorded with training=False: fit's training=True overrides it, while every other call (predict,
        # evaluate, a plain model(x)) leaves the image as it is; the layer's own default would rotate.
        x = rotation_layer(spec.rotation_degrees, spec.seed)(x, training=False)
    if spec.normalisation == "backbone" and arch.preprocessing != "none":
        matrix, bias = preprocessing_affine(arch.preprocessing)
        layer = keras.layers.Dense(3, name=NORMALISATION_LAYER, trainable=False, dtype="float32")
        x = layer(x)
        layer.set_weights([matrix.astype("float32"), bias.astype("float32")])
    if size != (height, width):
        x = keras.layers.Resizing(*size, name="resize_to_backbone_minimum")(x)
    backbone = arch.build(include_top=False, weights=weights, input_shape=(*size, 3))
    if weights is None:
        # Random init: BatchNorm normalises with batch statistics while training (it follows fit's mode),
        # and its moving statistics must settle within the few hundred steps of a short run.
        set_momentum(backbone, RANDOM_INIT_MOMENTUM)
        x = backbone(x)
    else:
        # Pretrained BatchNorm stays in inference mode when fine-tuned (the Keras transfer-learning recipe).
        x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = keras.layers.Dense(spec.dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(spec.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", dtype="float32", name="predictions")(
        x
    )
    return keras.Model(inputs, outputs, name=f"{spec.name}_classifier")


def effective_weights(model: str, weights: str) -> str:
    """The weights a model can take: an experiment's ``imagenet`` means random init for the small CNN."""
    return "none" if weights == "imagenet" and not ARCHITECTURES[model].pretrained else weights


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested backbone (the one keras.Model layer), found by structure rather than by name."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def set_trainable(model: keras.Model, trainable: str) -> None:
    """``head``: only the dense head learns; ``all``: the backbone too. The normalisation never learns."""
    backbone_of(model).trainable = trainable == "all"
    for layer in model.layers:
        if layer.name == NORMALISATION_LAYER:
            layer.trainable = False
