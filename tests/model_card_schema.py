"""Test-only: AWS's SageMaker model card JSON schema (tests/schemas/, its source in the README there)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = Path(__file__).parent / "schemas" / "sagemaker-model-card.schema.json"


@functools.cache
def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(content: Any) -> list[str]:
    """Every place ``content`` breaks the schema, as ``path: message``; [] when it is valid."""
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in _validator().iter_errors(content)
    ]
