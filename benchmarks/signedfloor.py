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

The lean loop (``lean_app``) bounds the loop from a second side: the same server with the four
validator routes answered by the harness' raw SQL lifecycle (``queries.RAW_CLAIM`` ...), one statement
a call, through the same edge (the rate limit's precharge included), signature, write charge and
nonce, in the nonce's transaction. It does strictly less than any correct implementation of the calls
(no permit check, no events, no validator state, no board, no cache versions), so its cycles per
second bound what the real loop can reach on this stack, and ``lean_loop / (floor / 4)`` bounds
``loop / (floor / 4)``.
"""

# No ``from __future__ import annotations``: FastAPI reads the route's dependencies from annotations
# that name what ``app`` imports in its own scope.
import uuid
from typing import Any, Literal

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


def _raw(session: Any, /, statement: str, params: dict[str, Any]) -> Any:
    """One of the raw lifecycle's statements, on the session's connection (psycopg's own parameters):
    its first row when it returns rows (the claim), else None."""
    result = session.connection().exec_driver_sql(statement, params)
    return result.first() if result.returns_rows else None


_raw.__oro_writes__ = True  # type: ignore[attr-defined]


def lean_app() -> FastAPI:
    """``app()`` with the four validator loop routes answered by one raw statement each (uvicorn factory)."""
    return add_lean_routes(app())


def add_lean_routes(served: FastAPI) -> FastAPI:
    """The lean loop's four routes, put before the real ones on the same paths, so the edge treats them
    as it treats the real calls (the rate limit's precharge included) and the load generator's validators
    drive them unchanged. Undocumented; PostgreSQL only (the raw SQL). Any other POST under a run's
    path is answered by the lean app as a step it does not know (422)."""
    from fastapi import APIRouter, Request, Response

    from benchmarks import queries
    from oro_graph.threads import to_thread
    from rest_compat.deps import RateLimitsDep, RuntimeDep, UnspentSignature

    lean = APIRouter(prefix="/v1/validator", include_in_schema=False)

    async def call(
        signed: tuple[str, str],
        runtime: Any,
        limits: Any,
        request: Request,
        action: str,
        sql: str,
        **params: Any,
    ) -> Any:
        return await to_thread(
            runtime.verifier.call_charged,
            runtime.db,
            signed,
            limits.write_charge(signed[0], action, request.scope),
            _raw,
            sql,
            {"hotkey": signed[0], **params},
        )

    @lean.post("/work/claim")
    async def claim(
        signed: UnspentSignature, runtime: RuntimeDep, limits: RateLimitsDep, request: Request
    ) -> Any:
        row = await call(signed, runtime, limits, request, "claim", queries.RAW_CLAIM)
        return {"eval_run_id": str(row[0])} if row else Response(status_code=204)

    steps = {
        "heartbeat": queries.RAW_HEARTBEAT,
        "progress": queries.RAW_PROGRESS,
        "complete": queries.RAW_COMPLETE,
    }

    @lean.post("/evaluation-runs/{eval_run_id}/{step}")
    async def step(
        eval_run_id: uuid.UUID,
        step: Literal["heartbeat", "progress", "complete"],
        signed: UnspentSignature,
        runtime: RuntimeDep,
        limits: RateLimitsDep,
        request: Request,
        body: dict[str, Any] | None = None,
    ) -> dict[str, bool]:
        """Heartbeat, progress (the problems reported) or complete (the score): one statement each."""
        params: dict[str, Any] = {"run": eval_run_id}
        if step == "progress":
            params["problems"] = [str(uuid.UUID(p["problem_id"])) for p in (body or {})["problems"]]
        elif step == "complete":
            params["score"] = float((body or {})["validator_score"])
        await call(signed, runtime, limits, request, step, steps[step], **params)
        return {"accepted": True}

    served.router.routes[:0] = lean.routes
    return served
