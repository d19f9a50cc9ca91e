"""PNG figures of one evaluation, each readable on its own (titles, axis labels, numbers on the cells)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def confusion_matrix_png(cm: Sequence[Sequence[int]], classes: Sequence[str], title: str, path: Path) -> Path:
    """Counts and row-normalised (recall) confusion matrices side by side."""
    counts = np.asarray(cm, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, values, name, fmt in (
        (axes[0], counts, "counts", "{:.0f}"),
        (axes[1], normalised, "row-normalised", "{:.2f}"),
    ):
        ax.imshow(values, cmap="Blues", vmin=0, vmax=max(values.max(), 1e-9))
        for (i, j), v in np.ndenumerate(values):
            ax.text(
                j,
                i,
                fmt.format(v),
                ha="center",
                va="center",
                color="white" if v > values.max() / 2 else "black",
            )
        ax.set(
            xticks=range(len(classes)),
            yticks=range(len(classes)),
            xlabel="predicted",
            ylabel="true",
            title=f"{title}: {name}",
        )
        ax.set_xticklabels(classes, rotation=20)
        ax.set_yticklabels(classes)
    return _save(fig, path)


def learning_curves_png(history: dict, title: str, path: Path) -> Path:
    """Train/validation accuracy and loss per epoch, dashed lines where a training stage begins."""
    epochs = history.get("epochs", [])
    x = np.arange(1, len(epochs) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
        for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
            values = [e.get(key) for e in epochs]
            if any(v is not None for v in values):
                ax.plot(x, [np.nan if v is None else v for v in values], style, label=key, markersize=3)
        starts = [i + 1 for i, e in enumerate(epochs) if i > 0 and e["stage"] != epochs[i - 1]["stage"]]
        for k, start in enumerate(starts):
            ax.axvline(start - 0.5, color="grey", linestyle="--", label="next stage" if k == 0 else None)
        ax.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        if len(x) <= 15:
            ax.set_xticks(x)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if epochs:
            ax.legend(fontsize=8)
    return _save(fig, path)


def roc_curves_png(
    y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], auc: dict, title: str, path: Path
) -> Path:
    """One-vs-rest ROC curve of each class that is present and absent somewhere in the test set."""
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for k, name in enumerate(classes):
        if auc.get(name) is None:
            continue
        fpr, tpr, _ = roc_curve(np.asarray(y_true) == k, probabilities[:, k])
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc[name]:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC (one-vs-rest)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def gradcam_grid_png(cells: list[dict], classes: Sequence[str], title: str, path: Path) -> Path:
    """Overlays in rows by true class; each cell: ``image`` (H,W,3 float), ``heatmap``, ``true``, ``pred``,
    ``prob`` and ``correct``. Cells are laid out correct examples first, then wrong ones."""
    rows = [[c for c in cells if c["true"] == k] for k in range(len(classes))]
    rows = [r for r in rows if r]
    ncols = max((len(r) for r in rows), default=1)
    fig, axes = plt.subplots(
        max(len(rows), 1), ncols, figsize=(2.3 * ncols, 2.5 * max(len(rows), 1)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            ax = axes[i][j]
            ax.imshow(cell["image"])
            ax.imshow(cell["heatmap"], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            verdict = "correct" if cell["correct"] else "WRONG"
            ax.set_title(
                f"true {classes[cell['true']]}\npred {classes[cell['pred']]} {cell['prob']:.2f} ({verdict})",
                fontsize=7,
                color="black" if cell["correct"] else "red",
            )
    if not rows:
        axes[0][0].text(0.5, 0.5, "no examples", ha="center")
    fig.suptitle(f"{title}: Grad-CAM", fontsize=10)
    return _save(fig, path)


def reliability_png(calibration: dict, title: str, path: Path) -> Path:
    """Reliability diagram: observed frequency against mean probability per bin, one line per class."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name, c in calibration["classes"].items():
        bins = c["reliability"]
        ax.plot(
            [b["mean_probability"] for b in bins],
            [b["observed_frequency"] for b in bins],
            marker="o",
            label=f"{name} (ECE {c['ece']:.2f}, Brier {c['brier']:.2f})",
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean predicted probability (bin)",
        ylabel="observed frequency of the class",
        title=f"{title}: reliability ({calibration['bins']} bins)",
    )
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)
