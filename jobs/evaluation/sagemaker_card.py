"""The model card as a SageMaker Model Card: the ``Content`` document that CreateModelCard takes.

The facts are those of ``model_card.json`` (``jobs.evaluation.model_card``), laid out in AWS's model card
JSON schema (vendored in tests/schemas/, where its source is named). Every evaluation writes the file, local
or cloud, so the state machine only hands it to SageMaker. The schema caps text fields; a value cut to fit
says so, and ``model_card.json`` keeps it whole.
"""

from __future__ import annotations

import json
from typing import Any

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


def _headline_metrics(headline: dict) -> list[dict]:
    """Each figure of ``model_card.headline``; an interval (``*_ci``) as notes plus its two bounds."""
    data = []
    for name, value in headline.items():
        if name.endswith("_ci"):
            continue
        ci = headline.get(f"{name}_ci")
        notes = f"95% interval over patients (bootstrap): {ci[0]:.4f} to {ci[1]:.4f}" if ci else None
        data.append(_metric(name, value, notes))
        if ci:
            data += [_metric(f"{name} 95% CI lower", ci[0]), _metric(f"{name} 95% CI upper", ci[1])]
    return data


def _evaluation(key: str, headline: dict, card: dict) -> dict:
    point = card.get("operating_point") or {}
    internal = key == "internal_test"
    name = "internal test split" if internal else f"external set {key.partition(':')[2]}"
    metadata = {
        "set": key,
        "operating_rule": point.get("rule"),
        "threshold": point.get("threshold"),
        "positive_class": point.get("positive_class"),
        "threshold_chosen_on": point.get("chosen_on"),
        "dataset_fingerprint": (card.get("data_lineage") or {}).get("dataset_fingerprint")
        if internal
        else None,
    }
    group = [*_headline_metrics(headline), _metric("operating threshold", point.get("threshold"))]
    return {
        "name": fit(name, _NAME),
        "evaluation_observation": fit(
            f"{headline.get('images')} images of {headline.get('patients')} patients. Intervals are 95% "
            "bootstrap intervals over patients; sensitivity and specificity are taken at the operating "
            f"threshold on P({point.get('positive_class')}) chosen on the {point.get('chosen_on')} split by "
            f"the rule {point.get('rule')}. majority_class_macro_f1 is always answering the most common class.",
            _LONG,
        ),
        "metadata": {k: fit(str(v), _SHORT) for k, v in metadata.items() if v is not None},
        "metric_groups": [{"name": "headline", "metric_data": group}],
    }


def _training(card: dict) -> dict:
    training = card.get("training") or {}
    lineage = card.get("data_lineage") or {}
    shape = "x".join(str(n) for n in training.get("image_shape") or []) or "unknown"
    return {
        "training_observations": fit(
            f"{training.get('epochs_trained')} epochs at image shape {shape}; initial weights "
            f"{training.get('weights')}; input normalisation {training.get('normalisation')}.",
            _SHORT,
        ),
        "training_job_details": {
            "training_datasets": [
                fit(f"{s['uri']} ({s['kind']})", _SHORT) for s in lineage.get("sources") or []
            ],
            "training_metrics": [
                {"name": fit(f"final epoch {k}", _METRIC_NAME), "value": v}
                for k, v in (training.get("final_epoch") or {}).items()
            ],
            "hyper_parameters": [
                {"name": fit(str(k), _METRIC_NAME), "value": fit(str(v), _METRIC_NAME)}
                for k, v in (training.get("hyperparameters") or {}).items()
            ],
        },
    }


def _custom_details(card: dict) -> dict[str, str]:
    """What has no field of its own: lineage fingerprints and counts, and each limitation whole."""
    lineage = card.get("data_lineage") or {}
    details = {
        "model_card_format": card.get("format"),
        "dataset_fingerprint": lineage.get("dataset_fingerprint"),
        "selection": json.dumps(lineage.get("selection"), sort_keys=True)
        if lineage.get("selection")
        else None,
        "counts_by_split_class": json.dumps(
            (lineage.get("counts") or {}).get("by_split_class"), sort_keys=True
        )
        if lineage.get("counts")
        else None,
        **{f"metadata_sha256 {path}": sha for path, sha in (lineage.get("metadata_sha256") or {}).items()},
        **{
            f"known_limitation_{i:02d}": note for i, note in enumerate(card.get("known_limitations") or [], 1)
        },
    }
    return {k: fit(str(v), _SHORT) for k, v in details.items() if v is not None}


def sagemaker_content(card: dict) -> dict:
    """The SageMaker Model Card content of one ``model_card.json`` (pure: same card, same content)."""
    classes = list(card.get("classes") or [])
    lineage = card.get("data_lineage") or {}
    training = card.get("training") or {}
    selection = "; ".join(f"{k}: {v}" for k, v in (lineage.get("selection") or {}).items())
    limitations = card.get("known_limitations") or []
    return {
        "model_overview": {
            "model_description": fit(
                f"{card['model']}: chest X-ray classifier ({card['task']} task; classes {', '.join(classes)}).",
                _SHORT,
            ),
            "problem_type": f"Image classification ({card['task']})",
            "algorithm_type": fit(
                f"{card['model']} (Keras), initial weights {training.get('weights')}, "
                f"normalisation {training.get('normalisation')}",
                _SHORT,
            ),
        },
        "intended_uses": {
            "intended_uses": fit(card["intended_use"], _MEDIUM),
            "factors_affecting_model_efficiency": fit(f"Images selected by the ETL as {selection}.", _MEDIUM)
            if selection
            else "The dataset manifest was not available: the selection is unknown.",
        },
        "business_details": {
            "business_problem": fit(f"Tell {', '.join(classes)} apart on chest X-rays.", _MEDIUM)
        },
        "training_details": _training(card),
        "evaluation_details": [
            _evaluation(key, headline, card) for key, headline in (card.get("metrics") or {}).items()
        ],
        "additional_information": {
            "caveats_and_recommendations": fit("\n".join(f"- {note}" for note in limitations), _MEDIUM)
            if limitations
            else "No limitation was measured; see the report.",
            "custom_details": _custom_details(card),
        },
    }


def content_text(card: dict) -> str:
    """``sagemaker_content`` as the string CreateModelCard takes; refuses one over its 100,000 characters."""
    text = json.dumps(sagemaker_content(card), indent=1, allow_nan=False)
    if len(text) > CONTENT_MAX_CHARS:
        raise ValueError(
            f"{SAGEMAKER_MODEL_CARD_FILE}: the content is {len(text)} characters, over CreateModelCard's "
            f"{CONTENT_MAX_CHARS}: evaluate fewer external sets at once (field 'evaluation_details')"
        )
    return text
