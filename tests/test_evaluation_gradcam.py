"""Grad-CAM on contract-shaped models: nested backbones (tiny and keras.applications), real X-rays."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from jobs.data.reader import open_dataset, to_float
from jobs.evaluation.gradcam import find_target_layer, gradcam
from tests.contract_models import contract_model, tiny_backbone


@pytest.fixture(scope="module")
def xrays(small_dataset) -> np.ndarray:
    return to_float(open_dataset(small_dataset).load("test", columns=("image",))["image"][:2])


def test_heatmaps_have_the_image_size_unit_range_and_depend_on_the_image(xrays):
    model = contract_model(tiny_backbone(xrays.shape[1:]), 3, seed=1)
    assert find_target_layer(model) == ("tiny_backbone", "relu_b")
    maps = [gradcam(model, image, 2) for image in xrays]
    for heatmap in maps:
        assert heatmap.shape == xrays.shape[1:3] and heatmap.dtype == np.float32
        assert heatmap.min() >= 0 and heatmap.max() <= 1 and heatmap.max() > 0
    assert np.abs(maps[0] - maps[1]).mean() > 1e-3


def test_heatmap_survives_save_and_load(xrays, tmp_path):
    """The evaluation side sees the model as keras.models.load_model returns it."""
    model = contract_model(tiny_backbone(xrays.shape[1:]), 2, seed=2)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    np.testing.assert_allclose(gradcam(loaded, xrays[0], 1), gradcam(model, xrays[0], 1), atol=1e-5)


def test_flat_model_without_nesting(xrays):
    inputs = keras.Input(xrays.shape[1:])
    x = keras.layers.Conv2D(4, 3, activation="relu", name="only_conv")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert find_target_layer(model) == ("only_conv",)
    heatmap = gradcam(model, xrays[0], 0)
    assert heatmap.shape == xrays.shape[1:3] and 0 <= heatmap.min() <= heatmap.max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "size", "layer"),
    [
        ("ResNet50", 64, "conv5_block3_out"),
        ("DenseNet121", 64, "relu"),
        ("VGG19", 64, "block5_pool"),
        ("InceptionV3", 75, "mixed10"),
    ],
)
def test_keras_applications_backbones(name, size, layer, xrays):
    """The last feature map is found by structure in each paper backbone (weights=None), and Grad-CAM runs."""
    import cv2

    backbone = getattr(keras.applications, name)(include_top=False, weights=None, input_shape=(size, size, 3))
    model = contract_model(backbone, 3, seed=0)
    assert find_target_layer(model) == (backbone.name, layer)
    image = np.stack([cv2.resize(channel, (size, size)) for channel in xrays[0].transpose(2, 0, 1)], axis=-1)
    heatmap = gradcam(model, image, 0)
    assert heatmap.shape == (size, size) and 0 <= heatmap.min() <= heatmap.max() <= 1
