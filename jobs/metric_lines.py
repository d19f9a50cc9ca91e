"""The metric line format: training prints it, SageMaker metric definitions and the local runner parse it."""

METRIC_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def format_metric_line(name: str, value: float) -> str:
    return f"METRIC {name}={value:.6f}"


def metric_regex(name: str) -> str:
    return rf"METRIC {name}=([-+0-9.eE]+)"
