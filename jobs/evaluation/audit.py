"""Shortcut audit: does the model read the lungs, or something else (a source's markers, borders, text)?

The test images are evaluated twice more: once with the lung region blanked out, once with everything
outside it blanked out. The lung region is one fixed ellipse, the same for every image, covering both lung
fields of a centred PA radiograph (and, unavoidably, the heart and mediastinum between them):
centre at 50% of the width and 47% of the height, semi-axes of 38% of the width and 35% of the height,
so it spans 12-88% horizontally and 12-82% vertically. Blanked pixels are set to black (0).
DeGrave et al. (Nature Machine Intelligence 2021) found published COVID-19 models that kept their
accuracy with the lungs hidden: they had learned the data source, not the disease.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jobs.evaluation.metrics import evaluate_predictions

LUNG_ELLIPSE = {"centre_x": 0.50, "centre_y": 0.47, "semi_axis_x": 0.38, "semi_axis_y": 0.35}


def lung_mask(height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask, True inside the fixed lung ellipse."""
    e = LUNG_ELLIPSE
    y, x = np.mgrid[0:height, 0:width]
    dx = ((x + 0.5) / width - e["centre_x"]) / e["semi_axis_x"]
    dy = ((y + 0.5) / height - e["centre_y"]) / e["semi_axis_y"]
    return dx * dx + dy * dy <= 1.0


def _blank(images: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return np.where(keep[..., None], images, np.zeros((), dtype=images.dtype))


def mask_outside_lungs(images: np.ndarray) -> np.ndarray:
    """Images (..., H, W, C) with everything outside the lung ellipse black: only the lungs remain."""
    height, width = images.shape[-3:-1]
    return _blank(images, lung_mask(height, width))


def mask_lungs(images: np.ndarray) -> np.ndarray:
    """Images (..., H, W, C) with the lung ellipse black: only borders, markers and text remain."""
    height, width = images.shape[-3:-1]
    return _blank(images, ~lung_mask(height, width))


def chance_accuracy(y_true: np.ndarray, n_classes: int) -> float:
    """The accuracy of always answering the test set's most common class: the bar to clear."""
    return float(np.bincount(np.asarray(y_true, dtype=np.int64), minlength=n_classes).max() / len(y_true))


def shortcut_audit(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    y_true: np.ndarray,
    patients: np.ndarray,
    classes: tuple[str, ...],
    bootstrap_samples: int,
    seed: int,
    describe: Callable[[np.ndarray], dict] | None = None,
) -> dict:
    """Metrics with the lungs hidden and with only the lungs kept (``jobs.evaluation.conclusions`` reads
    them into the verdict once every set's figures are in).

    ``predict`` maps uint8 images to class probabilities; ``describe`` maps a variant's probabilities to more metrics for it (the evaluation's rates at its
    stored threshold and calibration, so a masked row reads like every other set's).
    """
    results = {}
    for name, masker in (("lungs_hidden", mask_lungs), ("lungs_only", mask_outside_lungs)):
        probabilities = predict(masker(images))
        results[name] = evaluate_predictions(
            y_true, probabilities, patients, classes, bootstrap_samples, seed
        )
        if describe:
            results[name].update(describe(probabilities))
    return {"region": dict(LUNG_ELLIPSE, fill=0), **results}
