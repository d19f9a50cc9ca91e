"""The two tasks of the paper and how the ETL's three classes map onto each."""

from __future__ import annotations

import numpy as np

from jobs.etl.labels import CLASSES

TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "binary": ("COVID-19", "Non-COVID"),
    "multiclass": CLASSES,
}


def task_classes(task: str) -> tuple[str, ...]:
    if task not in TASK_CLASSES:
        raise ValueError(f"unknown task {task!r}; use one of {sorted(TASK_CLASSES)}")
    return TASK_CLASSES[task]


def task_targets(task: str, label_index: np.ndarray) -> np.ndarray:
    """ETL class indices (COVID-19=0, Normal=1, Pneumonia=2) -> the task's class indices."""
    label_index = np.asarray(label_index, dtype=np.int64)
    if task == "binary":
        return (label_index != CLASSES.index("COVID-19")).astype(np.int64)
    task_classes(task)
    return label_index
