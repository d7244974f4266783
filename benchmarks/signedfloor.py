"""The signed floor: what a signed write costs before any business work, on the loop's own servers.

The validator loop's target is measured against the HTTP floor (``/health``, one ``SELECT 1``): a
cycle of four signed calls may cost at most twice four such requests. But every signed write here
must do more than ``/health`` before its own work: verify the SR25519 signature, charge the hotkey's
write budget (Redis), and spend the nonce durably in a database transaction (replays stay refused
across processes and Redis restarts: CONTRACTS, hardening). ``POST /bench/signed-noop`` does exactly
that, through the same edge, dependencies and ``SignatureVerifier.call_charged`` as the four validator
calls, with a service that does nothing. So ``signed_floor / 4`` bounds the loop's cycles per second
from above whatever the services do, and ``signed_floor / http_floor`` bounds ``loop / (floor / 4)``.

The route exists only in the app this module builds (``app``), which the harness serves in place of
``oro_graph.app:main_app`` for workload 3 (``oro-graph serve --app benchmarks.signedfloor:app``): the
same server, one route more, matched after every real one.
"""

# No ``from __future__ import annotations``: FastAPI reads the route's dependencies from annotations
# that name what ``app`` imports in its own scope.
from typing import Any

from fastapi import FastAPI

NOOP_PATH = "/bench/signed-noop"


def _noop(session: Any, /) -> None:
    """The work of a signed no-op: none (its transaction holds only the nonce)."""


_noop.__oro_writes__ = True  # type: ignore[attr-defined]  # db.writes: a write transaction


def app() -> FastAPI:
    """``oro_graph.app:main_app`` plus ``POST /bench/signed-noop`` (uvicorn factory)."""
    from oro_graph.app import main_app
    from oro_graph.threads import to_thread
    from rest_compat.deps import RateLimitsDep, RuntimeDep, UnspentSignature

    served = main_app()

    async def signed_noop(
        signed: UnspentSignature, runtime: RuntimeDep, limits: RateLimitsDep
    ) -> dict[str, bool]:
        await to_thread(
            runtime.verifier.call_charged,
            runtime.db,
            signed,
            limits.write_charge(signed[0], "heartbeat"),
            _noop,
        )
        return {"accepted": True}

    served.add_api_route(NOOP_PATH, signed_noop, methods=["POST"], include_in_schema=False)
    return served
