"""Worker threads for a request's blocking calls, by the request's lane.

The edge (``oro_graph.edge.capacity.WriteLane``) sets ``WRITE_THREADS`` for a signed write, so its
blocking work (SQL, signature checks, Redis) runs on threads of its own and graph reads holding every
default worker thread cannot delay it; everything else uses anyio's default threads. The database
layer uses ``to_thread`` too, which is why this lives below the edge.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")

WRITE_THREADS: contextvars.ContextVar[anyio.CapacityLimiter | None] = contextvars.ContextVar(
    "oro_write_threads", default=None
)


async def to_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking call on a worker thread of the current request's lane."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=WRITE_THREADS.get())
