"""Dependencies shared by the routers: the runtime, rate limits and the caller's verified hotkey."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from oro_graph.edge import request as edge_request
from oro_graph.edge.ratelimit import RateLimits
from oro_graph.models import Role
from oro_graph.runtime import Runtime
from oro_graph.services import registry
from oro_graph.threads import to_thread


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_rate_limits(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RateLimitsDep = Annotated[RateLimits, Depends(get_rate_limits)]


async def signed_hotkey(request: Request, runtime: RuntimeDep) -> str:
    """The hotkey that signed this request; 401 for a bad signature, a stale timestamp or a reused nonce."""
    hotkey, nonce = edge_request.checked_signature(request.scope, runtime.verifier)
    # In a worker thread: the nonce store may be the database.
    await to_thread(runtime.verifier.spend, hotkey, nonce)
    return hotkey


SignedHotkey = Annotated[str, Depends(signed_hotkey)]


async def checked_signature(request: Request, runtime: RuntimeDep) -> tuple[str, str]:
    """(hotkey, nonce) of a fresh signature, its nonce not spent yet: 401 for a bad signature or a
    stale timestamp. The route must spend the nonce with ``runtime.verifier.call_signed``, in the
    transaction of its work (a replay is refused there). The rate limit has checked the signature
    already, on the event loop (an SR25519 verification takes well under a millisecond, less than a
    thread hop): this is its verdict (``edge.request.checked_signature``)."""
    return edge_request.checked_signature(request.scope, runtime.verifier)


# A signed write: the hotkey is ``[0]``; see ``checked_signature`` for the nonce ``[1]``.
UnspentSignature = Annotated[tuple[str, str], Depends(checked_signature)]


async def miner_hotkey(hotkey: SignedHotkey, runtime: RuntimeDep) -> str:
    """A signed, registered, unbanned miner hotkey (403 otherwise)."""
    await runtime.db.run(registry.require_role, hotkey, Role.MINER)
    return hotkey


async def validator_hotkey(hotkey: SignedHotkey, runtime: RuntimeDep) -> str:
    """A signed hotkey holding a validator permit (403 otherwise)."""
    await runtime.db.run(registry.require_role, hotkey, Role.VALIDATOR)
    return hotkey


MinerHotkey = Annotated[str, Depends(miner_hotkey)]
ValidatorHotkey = Annotated[str, Depends(validator_hotkey)]
