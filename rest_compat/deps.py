"""Dependencies shared by the routers: the runtime, rate limits and the caller's verified hotkey."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

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
    # In a worker thread: SR25519 verification is CPU work and the nonce store may be Redis.
    return await to_thread(runtime.verifier.verify, request.headers)


SignedHotkey = Annotated[str, Depends(signed_hotkey)]


async def checked_signature(request: Request, runtime: RuntimeDep) -> tuple[str, str]:
    """(hotkey, nonce) of a fresh signature, its nonce not spent yet: 401 for a bad signature or a
    stale timestamp. The route must spend the nonce with ``runtime.verifier.call_signed``, in the
    transaction of its work (a replay is refused there). Checked on the event loop, as the rate
    limiter checks it, rather than on a worker thread: an SR25519 verification takes well under a
    millisecond, less than the hop would."""
    return runtime.verifier.check_signature(request.headers)


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
