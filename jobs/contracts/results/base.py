"""What every results file shares: a versioned format string, strict fields, a dump that writes the
file's keys in the order and shape (null vs absent) they were given, and a reader whose error names the
file, the field and the version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

# A JSON number kept as written: ``float`` alone would turn 3 into 3.0 and change the file's bytes.
Number = int | float
Interval = list[Number] | None

R = TypeVar("R", bound="Record")


class ResultsError(ValueError):
    """A results file that this cxr cannot read; the message names the file, the field and the fix."""


class Record(BaseModel):
    """A block of a results file: unknown keys are refused, so a misspelt or renamed field is found."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        """The JSON content: declared order, only the keys that were set (None stays null)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class OpenRecord(Record):
    """A block whose keys are partly data (``recall:COVID-19``): declared keys first, the rest after."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def get(self, key: str) -> Any:
        """A declared field or an extra key; None when absent."""
        if key in type(self).model_fields:
            return getattr(self, key)
        return (self.model_extra or {}).get(key)


def format_version(name: str, version: int) -> str:
    return f"{name}/{version}"


def _field(location: tuple) -> str:
    return ".".join(str(part) for part in location)


def validate_document(model: type[R], content: object, where: str, name: str, version: int, fix: str) -> R:
    """``content`` as ``model``, after checking its format string; errors name ``where`` and the field."""
    current = format_version(name, version)
    written = content.get("format") if isinstance(content, dict) else None
    if written != current:
        prefix, _, number = str(written).partition("/")
        if prefix == name and number.isdigit():
            age = "an older" if int(number) < version else "a newer"
            raise ResultsError(
                f"{where}: format {number} written by {age} cxr; {fix} (this cxr reads format {version})"
            )
        raise ResultsError(f"{where}: format {written!r} is not {current!r}: not a {name} file")
    try:
        return model.model_validate(content)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ResultsError(
            f"{where}: field '{_field(first['loc'])}': {first['msg']}{more} (format {current}); {fix}"
        ) from None


def read_document(model: type[R], path: Path, file_name: str, name: str, version: int, fix: str) -> R:
    """The file at ``path`` (or ``file_name`` in the folder ``path``) parsed and validated as ``model``."""
    path = Path(path)
    if path.is_dir():
        path = path / file_name
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not JSON ({exc}); {fix}") from None
    return validate_document(model, content, str(path), name, version, fix)


def json_text(record: Record) -> str:
    """The file's text, as the writers have always written it (indent 2, strict JSON)."""
    return json.dumps(record.dump(), indent=2, allow_nan=False)
