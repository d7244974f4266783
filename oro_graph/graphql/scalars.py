"""Scalar overrides: how the graph reads input values that Strawberry's defaults read too loosely."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import dateutil.parser
from strawberry.schema.types.base_scalars import DateTimeDefinition, wrap_parser


def utc_instant(value: str) -> datetime:
    """An ISO 8601 date and time as an instant in UTC. Without an offset it is UTC, as every
    field description says; one that has no UTC equivalent (year 1 at +14:00) is refused."""
    parsed = dateutil.parser.isoparse(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


UTCDateTime = dataclasses.replace(
    DateTimeDefinition,
    parse_value=wrap_parser(utc_instant, "DateTime", exceptions=(ValueError, OverflowError)),
)
SCALAR_OVERRIDES = {datetime: UTCDateTime}
