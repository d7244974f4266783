"""What /openapi.json adds to FastAPI's document: how requests are signed, and every status a path
can answer, including the ones middleware gives before any route runs.

- The four signature headers are security schemes (``apiKey`` in a header), all four required
  together on every signed path (``/v1/miner/*``, ``/v1/validator/*``), so generators and Swagger UI
  know a signed call from a public one.
- Every path declares 429 (the per-address limit, before routing; ``Retry-After`` and the
  ``X-RateLimit-*`` headers) and 503 (an outage or saturation; ``Retry-After``); every /v1 path
  431 (headers over the cap), and every /v1 POST 413 (a body over the cap).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from oro_graph.auth import HEADER_HOTKEY, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP
from oro_graph.errors import ErrorCode
from rest_compat.errors import ERROR_CODES_KEY, error_model

SIGNED_PREFIXES = ("/v1/miner/", "/v1/validator/")
SCHEMES = {
    "Hotkey": (HEADER_HOTKEY, "The caller's SS58 hotkey."),
    "Timestamp": (HEADER_TIMESTAMP, "Unix seconds when the request was signed (within the accepted skew)."),
    "Nonce": (HEADER_NONCE, "A value never used before by this hotkey within the skew window."),
    "Signature": (
        HEADER_SIGNATURE,
        "0x-prefixed hex SR25519 signature of `{hotkey}:{timestamp}:{nonce}` by the hotkey "
        "(what oro-sdk's BittensorAuthClient sends).",
    ),
}
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
RATE_HEADERS = {
    "Retry-After": RETRY_AFTER,
    "X-RateLimit-Limit": {"description": "Requests allowed per window.", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the window.", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {
        "description": "Seconds until the budget is whole again.",
        "schema": {"type": "integer"},
    },
}
# status -> (codes, description, headers, applies to (path, method))
EXTRA: dict[str, tuple[list[ErrorCode], str, dict[str, Any], Callable[[str, str], bool]]] = {
    "429": (
        [ErrorCode.RATE_LIMIT_EXCEEDED],
        "More requests from this address than the rate limit allows",
        RATE_HEADERS,
        lambda path, method: True,
    ),
    "503": (
        [ErrorCode.SERVICE_UNAVAILABLE],
        "The database or a dependency is unavailable, or the server is saturated: retry after Retry-After",
        {"Retry-After": RETRY_AFTER},
        lambda path, method: True,
    ),
    "431": (
        [ErrorCode.VALIDATION_ERROR],
        "Request headers over the size cap",
        {},
        lambda path, method: path.startswith("/v1/"),
    ),
    "413": (
        [ErrorCode.FILE_TOO_LARGE],
        "Request body over the size cap of this path",
        {},
        lambda path, method: path.startswith("/v1/") and method == "post",
    ),
}


def _ref(code: ErrorCode, schemas: dict[str, Any]) -> dict[str, Any]:
    model = error_model(code)
    if model.__name__ not in schemas:
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the security schemes and the statuses middleware can answer to a FastAPI document."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    components["securitySchemes"] = {
        name: {"type": "apiKey", "in": "header", "name": header, "description": description}
        for name, (header, description) in SCHEMES.items()
    }
    requirement: dict[str, list[str]] = {name: [] for name in SCHEMES}
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            if path.startswith(SIGNED_PREFIXES):
                operation["security"] = [requirement]
            responses = operation.setdefault("responses", {})
            for status, (codes, description, headers, applies) in EXTRA.items():
                if not applies(path, method):
                    continue
                if status in responses and ERROR_CODES_KEY not in responses[status]:
                    # the route declared this status with a body of its own (/health's 503)
                    responses[status].setdefault("headers", {}).update(headers)
                    continue
                response = responses.setdefault(status, {"description": description})
                known = response.setdefault(ERROR_CODES_KEY, [])
                for code in codes:
                    if code.value not in known:
                        known.append(code.value)
                content = response.setdefault("content", {}).setdefault("application/json", {})
                if "schema" not in content:
                    refs = [_ref(ErrorCode(code), schemas) for code in known]
                    content["schema"] = refs[0] if len(refs) == 1 else {"anyOf": refs}
                if headers:
                    response.setdefault("headers", {}).update(headers)
    return document


def install(app: FastAPI) -> None:
    build = app.openapi  # FastAPI's: builds the document once and keeps it
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        document = build()
        if id(document) not in completed:
            complete(document)
            completed.append(id(document))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
