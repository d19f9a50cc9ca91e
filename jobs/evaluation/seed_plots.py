"""The report's figures across seeds: one line per seed, so the spread is seen, not just quoted.

Learning curves come from each seed's training history (in its ``metrics.json``); ROC curves on the
test split from each seed's ``predictions.csv``, the file every figure can be recomputed from.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from jobs.evaluation.plots import _save  # noqa: E402


def learning_curves_by_seed(model: str, runs: list[tuple[int | None, list[dict]]], path: Path) -> Path:
    """Validation accuracy and loss per epoch, one line per seed (``runs``: seed, its training epochs)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for seed, epochs in runs:
        x = np.arange(1, len(epochs) + 1)
        for ax, key in zip(axes, ("val_accuracy", "val_loss"), strict=True):
            ax.plot(x, [e.get(key, np.nan) for e in epochs], marker=".", label=f"seed {seed}")
    for ax, name in zip(axes, ("validation accuracy", "validation loss"), strict=True):
        ax.set(xlabel="epoch", ylabel=name, title=f"{model}: {name}, one line per seed")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _test_scores(folder: Path, positive: str) -> tuple[np.ndarray, np.ndarray] | None:
    predictions = folder / "predictions.csv"
    if not predictions.is_file():
        return None
    with predictions.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["set"] == "test" and f"p_{positive}" in r]
    if not rows:
        return None
    truth = np.array([r["true_label"] == positive for r in rows])
    return truth, np.array([float(r[f"p_{positive}"]) for r in rows])


def roc_by_seed(model: str, runs: list[tuple[int, Path]], positive: str, path: Path) -> Path | None:
    """The test split's ROC curve of ``positive``, one line per seed (``runs``: seed, evaluation folder)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    drawn = 0
    for seed, folder in runs:
        scores = _test_scores(folder, positive)
        if scores is None or scores[0].all() or not scores[0].any():
            continue
        fpr, tpr, _ = roc_curve(*scores)
        ax.plot(fpr, tpr, label=f"seed {seed}")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"{model}: {positive} ROC, test split",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)
