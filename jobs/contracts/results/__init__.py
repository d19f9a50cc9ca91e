"""The typed results of a run: ``metrics.json``, ``model_card.json``, ``operating_point.json`` and
``report.json``, each versioned, validated on read, written back in the same bytes."""

from jobs.contracts.results.base import Record, ResultsError, json_text
from jobs.contracts.results.card import ModelCard, PointSummary, read_model_card
from jobs.contracts.results.metrics import Evaluation, SetMetrics, read_metrics

__all__ = [
    "Evaluation",
    "ModelCard",
    "PointSummary",
    "Record",
    "ResultsError",
    "SetMetrics",
    "json_text",
    "read_metrics",
    "read_model_card",
]
