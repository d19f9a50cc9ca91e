"""What a schema accepts, read from its refusal rather than from its annotations."""

from __future__ import annotations

import re


def accepted_values(refusal: BaseException) -> set[str]:
    """The choices a pydantic literal refusal lists ("Input should be 'a', 'b' or 'c'")."""
    return set(re.findall(r"'(\w+)'", str(refusal).split("Input should be")[1]))
