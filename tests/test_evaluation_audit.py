"""The shortcut audit: masks hide what they say (pixels checked on real X-rays), and the model sees them."""

from __future__ import annotations

import numpy as np

from jobs.data.reader import open_dataset
from jobs.evaluation.audit import lung_mask, mask_lungs, mask_outside_lungs, shortcut_audit

CLASSES = ("COVID-19", "Normal", "Pneumonia")


def test_masks_blank_exactly_their_region_on_real_images(small_dataset):
    images = open_dataset(small_dataset).load("test", columns=("image",))["image"][:8]
    inside = lung_mask(*images.shape[1:3])
    hidden, only = mask_lungs(images), mask_outside_lungs(images)
    assert hidden.dtype == images.dtype and hidden.shape == images.shape
    assert (hidden[:, inside] == 0).all() and (only[:, ~inside] == 0).all()
    assert np.array_equal(hidden[:, ~inside], images[:, ~inside])
    assert np.array_equal(only[:, inside], images[:, inside])
    assert images[:, inside].mean() > 20 and images[:, ~inside].mean() > 5  # real content was there to hide
    assert not np.shares_memory(hidden, images)


def test_lung_region_is_a_central_ellipse():
    mask = lung_mask(100, 100)
    assert mask[47, 50] and not mask[0, 0] and not mask[99, 50] and not mask[47, 5]
    assert 0.3 < mask.mean() < 0.5
    assert np.array_equal(mask, mask[:, ::-1])  # symmetric left/right


def test_audit_feeds_masked_pixels_to_the_model():
    """A 'model' that answers from the image corners keeps its accuracy with the lungs hidden."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    images = rng.integers(0, 255, (60, 32, 32, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = y * 100  # the label written in a corner: a source marker

    def corner_reader(batch):
        return np.eye(3)[np.clip(np.round(batch[:, 0, 0, 0] / 100), 0, 2).astype(int)]

    audit = shortcut_audit(corner_reader, images, y, np.arange(60), CLASSES, bootstrap_samples=100, seed=0)
    assert audit["lungs_hidden"]["report"]["accuracy"] == 1.0
    assert audit["lungs_only"]["report"]["accuracy"] == np.mean(y == 0)  # corner blanked -> always class 0
    # the corner still ranks every class first with the lungs hidden: the threshold-free AUC says so
    assert audit["lungs_hidden"]["bootstrap"]["roc_auc:COVID-19"][0] == 1.0
