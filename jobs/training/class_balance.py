"""Class counts of a split, from the manifest (no TensorFlow): does a dataset fit the task; class weights."""

from __future__ import annotations

import numpy as np

from jobs.contracts.tasks import task_classes, task_targets
from jobs.data.reader import Dataset
from jobs.training.errors import TrainingError


def class_counts(ds: Dataset, task: str, split: str) -> np.ndarray:
    """Images per task class in a split, from the manifest; every class must be present to train."""
    by_class = ds.manifest["counts"].get("by_split_class", {}).get(split, {})
    etl_classes = ds.manifest["classes"]
    per_etl = np.array([by_class.get(name, 0) for name in etl_classes], dtype=np.int64)
    targets = task_targets(task, np.arange(len(etl_classes)))
    counts = np.bincount(targets, weights=per_etl, minlength=len(task_classes(task))).astype(np.int64)
    missing = [name for name, n in zip(task_classes(task), counts, strict=True) if n == 0]
    if missing:
        raise TrainingError(
            f"{ds.root}/manifest.json: the '{split}' split has no images of {missing}, so it "
            f"cannot train task {task!r} (classes {list(task_classes(task))}); use a dataset "
            "made for this task or rerun the ETL with sources that contain every class"
        )
    return counts


def balanced_class_weights(counts: np.ndarray) -> dict[int, float]:
    """sklearn's 'balanced' rule: n / (classes * n_c), so each class weighs the same in the loss."""
    total, k = counts.sum(), len(counts)
    return {i: float(total / (k * n)) for i, n in enumerate(counts)}
