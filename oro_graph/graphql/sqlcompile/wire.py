"""The graph's wire formats as PostgreSQL expressions, byte for byte what the executor sends.

The compiled answer is JSON text built by PostgreSQL as ``json.dumps(..., separators=(",", ":"))``
writes it (``json_text``, ``compiler._object``), and the HTTP view sends it as it is (``Answer``);
text Python would write otherwise (``sent_as_is``: non-ASCII, DEL, floats PostgreSQL puts in
exponent form) is parsed and written again. Written here the executor's way: a float with an
integral value (PostgreSQL writes ``1``, Python ``1.0``), instants (``datetime.isoformat`` in UTC),
Relay ids (``base64("Type:id")``) and keyset cursors (``graphql.pagination.encode_cursor``).
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from functools import reduce
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Text, case, cast, func, literal, null, type_coerce
from sqlalchemy.sql.elements import ColumnElement


def text(value: str) -> ColumnElement[str]:
    """A constant text, written into the statement as a literal by ``driver`` (no cast: ``||``,
    ``coalesce`` and ``CASE`` take it as text; only ``to_json`` would not, see ``json_constant``)."""
    return literal(value, Text)


def json_constant(value: Any) -> ColumnElement[Any]:
    """A constant's JSON text, written once here rather than by ``to_json`` on every row."""
    # (the cast keeps the literal text: ``type_coerce`` would make the literal itself a JSON one)
    return type_coerce(cast(text(json.dumps(value, separators=(",", ":"))), Text), JSON)


def concat(*parts: Any) -> ColumnElement[str]:
    """``a || b || ...`` of any number of parts, none of them null (``||`` gives null where
    ``concat()`` skips a null): one operator per part, without ``concat()``'s 100-argument bound."""
    return reduce(lambda joined, part: joined.concat(part), parts[1:], type_coerce(parts[0], Text))


def json_text(value: Any) -> ColumnElement[str]:
    """A value's JSON text as ``json_build_object`` writes it: JSON as it is (what the compiler built,
    a leaf in its exact format), any other value through ``to_json``, SQL NULL as ``null``."""
    shown = cast(value, Text) if isinstance(value.type, JSON) else cast(func.to_json(value), Text)
    return func.coalesce(shown, text("null"))


def float_text(value: Any) -> ColumnElement[str]:
    """``repr(float)``: PostgreSQL's shortest round-trip digits, with ``.0`` on integral values."""
    integral = (value == func.trunc(value)) & (func.abs(value) < cast(literal(1e16), Float))
    return case((integral, concat(cast(cast(value, BigInteger), Text), text(".0"))), else_=cast(value, Text))


def float_json(value: Any) -> ColumnElement[Any]:
    """The float as JSON text; typed JSON without a cast (which would parse the text on every row)."""
    return type_coerce(float_text(value), JSON)


def iso_text(instant: Any) -> ColumnElement[str]:
    """``datetime.isoformat()`` of a UTC instant: microseconds only when there are any."""
    utc = func.timezone(text("UTC"), instant)
    micros = func.to_char(utc, text("US"))
    fraction = case((micros == text("000000"), text("")), else_=concat(text("."), micros))
    return concat(func.to_char(utc, text('YYYY-MM-DD"T"HH24:MI:SS')), fraction, text("+00:00"))


def iso_json(instant: Any) -> ColumnElement[Any]:
    """The instant as a JSON string (its text has nothing to escape), typed JSON without a cast."""
    quoted = concat(text('"'), iso_text(instant), text('"'))
    return type_coerce(case((instant.is_(None), null()), else_=quoted), JSON)


def _one_line_base64(raw: Any) -> ColumnElement[str]:
    return func.encode(func.convert_to(raw, text("UTF8")), text("base64"))


def global_id(type_name: str, key: Any) -> ColumnElement[str]:
    """``relay.GlobalID(type_name, str(key))`` as the graph writes it (standard base64, padded)."""
    encoded = _one_line_base64(concat(text(f"{type_name}:"), cast(key, Text)))
    return func.replace(encoded, text("\n"), text(""))


# How a sort-key column is tagged in a cursor (graphql.pagination._tag).
DATETIME, UUID, FLOAT, INT = "datetime", "uuid", "float", "int"


def _tagged(kind: str, value: Any) -> ColumnElement[str]:
    if kind == DATETIME:
        shown = concat(text('["d","'), iso_text(value), text('"]'))
    elif kind == UUID:
        shown = concat(text('["u","'), func.replace(cast(value, Text), text("-"), text("")), text('"]'))
    elif kind == FLOAT:
        shown = concat(text('["v",'), float_text(value), text("]"))
    else:
        shown = concat(text('["v",'), cast(value, Text), text("]"))
    return case((value.is_(None), text('["v",null]')), else_=shown)


def cursor(order: str, keys: list[tuple[str, Any]]) -> ColumnElement[str]:
    """``encode_cursor(order, key)``: urlsafe base64 without padding of ``[order, [tagged...]]``."""
    parts: list[Any] = [text(f"[{json.dumps(order)},[")]
    for i, (kind, value) in enumerate(keys):
        if i:
            parts.append(text(","))
        parts.append(_tagged(kind, value))
    parts.append(text("]]"))
    encoded = func.translate(_one_line_base64(concat(*parts)), text("+/\n"), text("-_"))
    return func.rtrim(encoded, text("="))


# Set by the HTTP view around a plain JSON execution (``Router.execute_single``): its answer is
# written by ``Router.encode_json``, which splices an ``Answer`` in. Nothing else ever gets one.
SPLICED: ContextVar[bool] = ContextVar("oro_spliced_answers", default=False)


class Answer:
    """A compiled ``data`` kept as the statement's JSON text, for the HTTP view to send as it is.

    The statement writes the text as the graph's ``json.dumps`` would (``compiler._object``), so
    ``Router.encode_json`` splices it into the body: parsing a deep leaderboard into dicts and
    serializing them again was 40% of the server's CPU for it. It is not a dict on purpose: only
    the view that splices it asks for one (``SPLICED``), and anything else would fail loudly rather
    than write a wrong body.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: str) -> None:
        self.raw = raw


def sent_as_is(raw: str) -> bool:
    """Whether the statement's text is byte for byte what ``json.dumps`` writes for its value.

    Python escapes every character outside printable ASCII (``ensure_ascii``), PostgreSQL only the
    control characters, and a float of 15 integral digits with a fraction is written in exponent
    form by PostgreSQL only: such text (rare: a name with an accent) is parsed and written again.
    """
    return raw.isascii() and "\x7f" not in raw and "e+15" not in raw


def encoded(data: object) -> str:
    """An answer's JSON text as Strawberry writes it (``json.dumps(data, separators=(",", ":"))``),
    with a compiled ``data`` (``Answer``) spliced in as it is."""
    if isinstance(data, dict):
        answer = data.get("data")
        if isinstance(answer, Answer) and next(iter(data)) == "data":
            rest = json.dumps({k: v for k, v in data.items() if k != "data"}, separators=(",", ":"))
            return '{"data":' + answer.raw + ("," + rest[1:] if rest != "{}" else "}")
    return json.dumps(data, separators=(",", ":"))
