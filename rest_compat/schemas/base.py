"""The base of every request and response body: frozen, like the contract it mirrors."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_JSON_DEPTH = 32


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counted without recursion and stopping past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= limit:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _not_too_deep(value: dict[str, Any]) -> dict[str, Any]:
    # Free-form objects are stored as JSON and served back; a deep one costs every later reader.
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON objects may nest at most {MAX_JSON_DEPTH} levels deep")
    return value


JsonObject = dict[str, Any]
JsonInput = Annotated[JsonObject, AfterValidator(_not_too_deep)]  # a free-form object a client sends


class Schema(BaseModel):
    model_config = ConfigDict(frozen=True)
