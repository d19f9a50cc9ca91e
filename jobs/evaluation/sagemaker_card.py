"""The model card as a SageMaker Model Card: the ``Content`` document that CreateModelCard takes.

The facts are those of ``model_card.json`` (``jobs.evaluation.model_card``), laid out in AWS's model card
JSON schema (vendored in tests/schemas/, where its source is named). Every evaluation writes the file, local
or cloud, so the state machine only hands it to SageMaker. The schema caps text fields; a value cut to fit
says so, and ``model_card.json`` keeps it whole.
"""

from __future__ import annotations

import json
from typing import Any

from jobs.contracts.results import ModelCard
from jobs.contracts.results.card import Headline, Lineage

SAGEMAKER_MODEL_CARD_FILE = "sagemaker_model_card.json"
# CreateModelCard's Content: "Length Constraints: Minimum length of 0. Maximum length of 100000."
CONTENT_MAX_CHARS = 100_000
_CUT = " [...] (cut to fit; whole in model_card.json)"
# Limits of the schema's fields (characters) used below.
_NAME, _SHORT, _MEDIUM, _LONG, _METRIC_NAME, _TEXT_VALUE = 63, 1024, 2048, 2096, 255, 63


def fit(text: str, limit: int) -> str:
    """``text``, or its start marked as cut when it is longer than ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - len(_CUT)] + _CUT


def _metric(name: str, value: Any, notes: str | None = None) -> dict:
    """A ``simple_metric``; a value that was not computed (None) says so instead of vanishing."""
    if isinstance(value, bool):
        item = {"type": "boolean", "value": value}
    elif isinstance(value, int | float):
        item = {"type": "number", "value": value}
    else:
        item = {"type": "string", "value": fit("not computed" if value is None else str(value), _TEXT_VALUE)}
    item["name"] = fit(name, _METRIC_NAME)
    if notes:
        item["notes"] = fit(notes, _SHORT)
    return item


def _headline_metrics(headline: Headline) -> list[dict]:
    """Each figure of ``model_card.headline``; an interval (``*_ci``) as notes plus its two bounds."""
    figures = headline.dump()
    data = []
    for name, value in figures.items():
        if name.endswith("_ci"):
            continue
        ci = figures.get(f"{name}_ci")
        notes = f"95% interval over patients (bootstrap): {ci[0]:.4f} to {ci[1]:.4f}" if ci else None
        data.append(_metric(name, value, notes))
        if ci:
            data += [_metric(f"{name} 95% CI lower", ci[0]), _metric(f"{name} 95% CI upper", ci[1])]
    return data


def _evaluation(key: str, headline: Headline, card: ModelCard) -> dict:
    point = card.operating_point
    internal = key == "internal_test"
    name = "internal test split" if internal else f"external set {key.partition(':')[2]}"
    lineage = card.data_lineage
    metadata = {
        "set": key,
        "operating_rule": point.rule,
        "threshold": point.threshold,
        "positive_class": point.positive_class,
        "threshold_chosen_on": point.chosen_on,
        "dataset_fingerprint": lineage.dataset_fingerprint if internal and lineage else None,
    }
    group = [*_headline_metrics(headline), _metric("operating threshold", point.threshold)]
    return {
        "name": fit(name, _NAME),
        "evaluation_observation": fit(
            f"{headline.images} images of {headline.patients} patients. Intervals are 95% "
            "bootstrap intervals over patients; sensitivity and specificity are taken at the operating "
            f"threshold on P({point.positive_class}) chosen on the {point.chosen_on} split by "
            f"the rule {point.rule}. majority_class_macro_f1 is always answering the most common class.",
            _LONG,
        ),
        "metadata": {k: fit(str(v), _SHORT) for k, v in metadata.items() if v is not None},
        "metric_groups": [{"name": "headline", "metric_data": group}],
    }


def _training(card: ModelCard) -> dict:
    training = card.training
    sources = card.data_lineage.sources if card.data_lineage else []
    shape = "x".join(str(n) for n in training.image_shape or []) or "unknown"
    return {
        "training_observations": fit(
            f"{training.epochs_trained} epochs at image shape {shape}; initial weights "
            f"{training.weights}; input normalisation {training.normalisation}.",
            _SHORT,
        ),
        "training_job_details": {
            "training_datasets": [fit(f"{s.uri} ({s.kind})", _SHORT) for s in sources],
            "training_metrics": [
                {"name": fit(f"final epoch {k}", _METRIC_NAME), "value": v}
                for k, v in training.final_epoch.items()
            ],
            "hyper_parameters": [
                {"name": fit(str(k), _METRIC_NAME), "value": fit(str(v), _METRIC_NAME)}
                for k, v in (training.hyperparameters or {}).items()
            ],
        },
    }


def _lineage_details(lineage: Lineage | None) -> dict[str, object]:
    """Lineage fingerprints, selection and counts; nothing without a manifest."""
    if lineage is None:
        return {}
    counts = lineage.counts
    return {
        "dataset_fingerprint": lineage.dataset_fingerprint,
        "selection": json.dumps(lineage.selection, sort_keys=True) if lineage.selection else None,
        "counts_by_split_class": json.dumps(counts.get("by_split_class"), sort_keys=True) if counts else None,
        **{f"metadata_sha256 {path}": sha for path, sha in (lineage.metadata_sha256 or {}).items()},
    }


def _custom_details(card: ModelCard) -> dict[str, str]:
    """What has no field of its own: lineage fingerprints and counts, and each limitation whole."""
    details = {
        "model_card_format": card.format,
        **_lineage_details(card.data_lineage),
        **{f"known_limitation_{i:02d}": note for i, note in enumerate(card.known_limitations, 1)},
    }
    return {k: fit(str(v), _SHORT) for k, v in details.items() if v is not None}


def sagemaker_content(card: ModelCard) -> dict:
    """The SageMaker Model Card content of one ``model_card.json`` (pure: same card, same content)."""
    classes = card.classes
    training = card.training
    selection = "; ".join(
        f"{k}: {v}" for k, v in (card.data_lineage.selection if card.data_lineage else {}).items()
    )
    limitations = card.known_limitations
    return {
        "model_overview": {
            "model_description": fit(
                f"{card.model}: chest X-ray classifier ({card.task} task; classes {', '.join(classes)}).",
                _SHORT,
            ),
            "problem_type": f"Image classification ({card.task})",
            "algorithm_type": fit(
                f"{card.model} (Keras), initial weights {training.weights}, normalisation {training.normalisation}",
                _SHORT,
            ),
        },
        "intended_uses": {
            "intended_uses": fit(card.intended_use, _MEDIUM),
            "factors_affecting_model_efficiency": fit(f"Images selected by the ETL as {selection}.", _MEDIUM)
            if selection
            else "The dataset manifest was not available: the selection is unknown.",
        },
        "business_details": {
            "business_problem": fit(f"Tell {', '.join(classes)} apart on chest X-rays.", _MEDIUM)
        },
        "training_details": _training(card),
        "evaluation_details": [_evaluation(key, headline, card) for key, headline in card.metrics.items()],
        "additional_information": {
            "caveats_and_recommendations": fit("\n".join(f"- {note}" for note in limitations), _MEDIUM)
            if limitations
            else "No limitation was measured; see the report.",
            "custom_details": _custom_details(card),
        },
    }


def content_text(card: ModelCard) -> str:
    """``sagemaker_content`` as the string CreateModelCard takes; refuses one over its 100,000 characters."""
    text = json.dumps(sagemaker_content(card), indent=1, allow_nan=False)
    if len(text) > CONTENT_MAX_CHARS:
        raise ValueError(
            f"{SAGEMAKER_MODEL_CARD_FILE}: the content is {len(text)} characters, over CreateModelCard's "
            f"{CONTENT_MAX_CHARS}: evaluate fewer external sets at once (field 'evaluation_details')"
        )
    return text
