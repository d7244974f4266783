"""Relay cursor connections over keyset pages.

A cursor is the sort key of its row (plus the name of the order it belongs to), so the next page
is a WHERE on that key: deep pages cost what the first one does, and rows inserted meanwhile never
shift a page. ``totalCount`` runs its COUNT only when a client selects it.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.dataloader import DataLoader

from oro_graph.services.pages import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Key, Page, Window

NodeT = TypeVar("NodeT")

PAGE_ARGS_HELP = (
    f"Use `first`/`after` to page forward or `last`/`before` backward; at most {MAX_PAGE_SIZE} per page."
)


class PageArgumentError(GraphQLError):
    """A bad first/last/after/before: a top-level error with code BAD_PAGE_ARGUMENT."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_PAGE_ARGUMENT"})


@strawberry.enum(description="Sort direction; ties are always broken by id in the same direction.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value("ASC", description="Smallest first.")
    DESC = strawberry.enum_value("DESC", description="Largest first.")


def _tag(value: Any) -> list[Any]:
    if isinstance(value, datetime):
        return ["d", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", value.hex]
    return ["v", value]


def _untag(item: Any) -> Any:
    kind, value = item
    if kind == "d":
        return datetime.fromisoformat(value)
    if kind == "u":
        return uuid.UUID(value)
    if kind == "v" and (value is None or isinstance(value, int | float | str)):
        return value
    raise ValueError(kind)


def encode_cursor(order: str, key: Key) -> str:
    raw = json.dumps([order, [_tag(v) for v in key]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(order: str, cursor: str) -> Key:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, items = json.loads(raw)
        key = tuple(_untag(item) for item in items)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise PageArgumentError(f"cursor {cursor!r} is not a cursor this server handed out") from None
    if name != order:
        raise PageArgumentError(
            f"cursor {cursor!r} belongs to the order {name!r}, not {order!r}; keep orderBy the same "
            f"while paging"
        )
    return key


def make_window(
    order: str, first: int | None, after: str | None, last: int | None, before: str | None
) -> Window:
    """Check the page arguments (at most MAX_PAGE_SIZE, not both first and last) and decode cursors."""
    if first is not None and last is not None:
        raise PageArgumentError("pass `first` or `last`, not both")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE_SIZE:
            raise PageArgumentError(
                f"`{name}` must be between 0 and {MAX_PAGE_SIZE}, got {value}; page with cursors"
            )
    if first is None and last is None:
        first = DEFAULT_PAGE_SIZE
    return Window(
        first=first,
        after=decode_cursor(order, after) if after else None,
        last=last,
        before=decode_cursor(order, before) if before else None,
    )


@strawberry.type(name="Edge", description="One item of a connection and the cursor that points at it.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(description="Opaque cursor: pass it as `after` or `before`.")
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(name="Connection", description="A page of a list, with cursors. " + PAGE_ARGS_HELP)
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="The items of this page, in order.")
    page_info: relay.PageInfo = strawberry.field(description="Cursors and whether more pages exist.")
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(
        description="How many items the whole list has (one COUNT query, run only when selected)."
    )
    async def total_count(self) -> int:
        return await self._count()


def to_connection(
    page: Page[Any], order: str, convert: Callable[[Any], NodeT], count: Callable[[], Awaitable[int]]
) -> Connection[NodeT]:
    cursors = [encode_cursor(order, key) for key in page.keys]
    edges = [Edge(cursor=c, node=convert(row)) for c, row in zip(cursors, page.rows, strict=True)]
    info = relay.PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
    return Connection(edges=edges, page_info=info, _count=count)


First = Annotated[
    int | None,
    strawberry.argument(
        description=f"How many items from the start (or after `after`): 0 to {MAX_PAGE_SIZE}. "
        f"Without `first` or `last`, {DEFAULT_PAGE_SIZE}."
    ),
]
After = Annotated[str | None, strawberry.argument(description="Return items after this cursor.")]
Last = Annotated[
    int | None,
    strawberry.argument(
        description=f"How many items from the end (or before `before`): 0 to {MAX_PAGE_SIZE}."
    ),
]
Before = Annotated[str | None, strawberry.argument(description="Return items before this cursor.")]


async def edge_connection(
    pages: DataLoader[Any, Page[Any]],
    counts: DataLoader[Any, int],
    parent: Any,
    order: str,
    convert: Callable[[Any], NodeT],
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[NodeT]:
    """A one-to-many edge as a connection: this parent's page comes from a batched page loader."""
    window = make_window(order, first, after, last, before)
    page = await pages.load((parent, window))

    async def total() -> int:
        return await counts.load(parent)

    return to_connection(page, order, convert, total)
