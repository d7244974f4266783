"""Arguments shared by the type modules: ids (a raw id or a Relay global id, and how it becomes a
key) and the board's ``asOf`` instant.

How one type module refers to a type of another (always ``refs.X``) is written in ``graphql/refs.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry import relay

NodeRef = Annotated[strawberry.ID, strawberry.argument(description="The object's own id or its global id.")]
AsOf = Annotated[
    datetime | None,
    strawberry.argument(description="Answer as the board stood at this instant (UTC); omit for now."),
]


def int_id(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def uuid_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def parse_node_id(value: str, type_name: str, parse: Callable[[str], Any]) -> Any:
    """A raw id (a suite number, a UUID) or a global id of ``type_name``; None if it is neither."""
    try:
        gid = relay.GlobalID.from_id(value)
    except Exception:  # not base64 / no colon: a raw id
        return parse(value)
    return parse(gid.node_id) if gid.type_name == type_name else parse(value)


async def load_by_uuid(loader: Any, values: Iterable[str]) -> list[Any]:
    """Rows for id strings in order; a string that is not a UUID reads as a missing row."""
    keys = [uuid_id(v) for v in values]
    rows = await loader.load_many([k for k in keys if k is not None])
    found = {k: r for k, r in zip([k for k in keys if k is not None], rows, strict=True)}
    return [found.get(k) if k is not None else None for k in keys]
