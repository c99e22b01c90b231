"""The one way cserver reads true/false from text: settings, environment, URLs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainValidator
from pydantic_core import PydanticCustomError

# The words pydantic also accepts for a bool, so a value means the same wherever it is read.
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})


def parse_bool(value: object) -> bool | None:
    """True or False for a bool, 0 or 1, or one of the words (any case); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def _bool(value: Any) -> bool:
    parsed = parse_bool(value)
    if parsed is None:
        raise PydanticCustomError("bool_parsing", "not a boolean")
    return parsed


# A bool field of a pydantic model that reads text with parse_bool: pydantic's own bool would
# be a second parser, with its own idea of which words count.
Bool = Annotated[bool, PlainValidator(_bool, json_schema_input_type=bool)]
