"""Paths of oro-sdk 7.0.2 that this server does not serve, answered as the contract says: the path's
declared 404 model with "not served by this server" in ``detail`` where it declares one, otherwise
404 ``NOT_SERVED``. So a client learns at once, and in its own types, that asking again is useless."""

from __future__ import annotations

import re

from fastapi import APIRouter, FastAPI

from oro_graph.errors import ArtifactNotFound, ErrorCode, NotServed, OroError, RaceNotFound
from rest_compat.errors import documented

NOT_SERVED = "not served by this server"

# (method, path, what the client's 404 model is, why it is not here)
UNSERVED: tuple[tuple[str, str, type[OroError], str], ...] = (
    ("POST", "/v1/auth/challenge", NotServed, "sessions are not used: sign each request"),
    ("POST", "/v1/auth/session", NotServed, "sessions are not used: sign each request"),
    ("POST", "/v1/auth/logout", NotServed, "sessions are not used: sign each request"),
    ("GET", "/v1/demo/problems", NotServed, "the hosted demo is not part of this server"),
    ("GET", "/v1/demo/run", NotServed, "the hosted demo is not part of this server"),
    (
        "GET",
        "/v1/public/episode-results/{episode_result_id}/feedback",
        ArtifactNotFound,
        "episode results belong to environment packs, which this server does not run",
    ),
    ("GET", "/v1/public/inference/models", NotServed, "no inference catalogue is kept here"),
    (
        "GET",
        "/v1/public/races/{race_id}/seed-commitment",
        RaceNotFound,
        "races here commit to the sha256 of a secret (seed_commitment on the race), not to a drand beacon",
    ),
    ("GET", "/v1/public/trajectories/history", NotServed, "trajectories are not kept here"),
    ("POST", "/v1/public/waitlist", NotServed, "there is no waitlist"),
    ("GET", "/v1/validator/pack/{pack_sha256}", NotServed, "environment packs are not served"),
    ("POST", "/v1/validator/race/{race_id}/pack", NotServed, "environment packs are not served"),
    ("GET", "/v1/validator/weight-salt", NotServed, "weights are not salted here"),
    ("POST", "/v1/validator/episode-artifacts/presign", NotServed, "environment packs are not served"),
    ("POST", "/v1/validator/episode-results", NotServed, "environment packs are not served"),
)


def _handler(error: type[OroError], reason: str):  # type: ignore[no-untyped-def]
    async def not_served() -> None:
        raise error(f"{NOT_SERVED}: {reason}")

    not_served.__doc__ = f"Not served by this server ({reason}); answers 404."
    return not_served


def install(app: FastAPI, *, operation_id) -> None:  # type: ignore[no-untyped-def]
    router = APIRouter(tags=["not served"])
    for method, path, error, reason in UNSERVED:
        router.add_api_route(
            path,
            _handler(error, reason),
            methods=[method],
            name="not_served_"
            + path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace("-", "_"),
            responses=documented({404: [ErrorCode(error.code)], 429: [ErrorCode.RATE_LIMIT_EXCEEDED]}),
            status_code=404,
            openapi_extra={
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in re.findall(r"{(\w+)}", path)
                ]
            },
        )
    app.include_router(router, generate_unique_id_function=operation_id)
