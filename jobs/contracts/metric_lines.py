"""The metric lines the training and evaluation entry points print, and the regexes that read them back.

SageMaker plots a training job's metrics by matching regexes against its log; the printer and the
metric definitions of the CDK stack both come from here, so they cannot disagree.
"""

from __future__ import annotations

import math

METRIC_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
_NUMBER = r"([0-9.eE+-]+)"


def _known(name: str) -> str:
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; add it to jobs.contracts.metric_lines.METRIC_NAMES first")
    return name


def format_metric_line(name: str, value: float) -> str:
    """``METRIC name=value``: one line on stdout per metric and epoch (non-finite values are not printed)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"metric {name}={value} is not a finite number; SageMaker cannot plot it")
    return f"METRIC {_known(name)}={value:.6g}"


def metric_regex(name: str) -> str:
    """The regex whose first group is the value of ``name`` in a line written by ``format_metric_line``."""
    return f"METRIC {_known(name)}={_NUMBER}"


def metric_definitions() -> list[dict[str, str]]:
    """SageMaker ``MetricDefinitions`` for every metric the entry points print."""
    return [{"Name": name, "Regex": metric_regex(name)} for name in METRIC_NAMES]
