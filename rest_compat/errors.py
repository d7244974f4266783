"""Domain errors as the flat bodies oro-sdk parses: ``{"detail", "error_code", ...extra}``.

Each route declares, per status, the codes it answers with (``documented``). The same declaration
feeds OpenAPI (the error models, plus an ``x-error-codes`` list) and the handler, which answers a
code with the status its route gives it. That is how one code can have different statuses on
different paths, as the contract wants (FILE_TOO_LARGE is 413 on submit but 400 on presign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal, Union

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, create_model
from starlette.exceptions import HTTPException

from oro_graph.errors import ErrorCode, OroError

ERROR_CODES_KEY = "x-error-codes"
VALIDATION_SCHEMA = "#/components/schemas/HTTPValidationError"

Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    detail: str


@cache
def error_model(code: ErrorCode) -> type[BaseModel]:
    """``SUITE_NOT_FOUND`` -> ``SuiteNotFoundError``: the client's model name for that code."""
    name = "".join(part.title() for part in code.value.split("_")) + "Error"
    fields: dict[str, Any] = {"error_code": (Literal[code.value], code.value)}
    if code in (ErrorCode.COOLDOWN_ACTIVE, ErrorCode.RATE_LIMIT_EXCEEDED):
        # Required in CooldownActiveError; a hint in RateLimitExceededError. Also sent as Retry-After.
        fields["remaining_seconds"] = (int if code == ErrorCode.COOLDOWN_ACTIVE else int | None, ...)
    return create_model(name, __base__=ErrorBody, **fields)


def _integer_header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "integer"}}


# Sent with every answer (but the signed /artifacts/ URLs); declared on the 429s, where they matter.
RATE_LIMIT_HEADERS = {
    "Retry-After": _integer_header("Seconds to wait before retrying."),
    "X-RateLimit-Limit": _integer_header("Points the client may spend in a minute."),
    "X-RateLimit-Remaining": _integer_header("Points left in the current window."),
    "X-RateLimit-Reset": _integer_header("Unix time (seconds) when the window has room again."),
}


def documented(statuses: Mapping[int, Sequence[ErrorCode]]) -> Responses:
    """The ``responses=`` of a route: per status, its error models and the codes mapped to it."""
    out: Responses = {}
    for status, codes in statuses.items():
        models = tuple(error_model(code) for code in codes)
        out[status] = {
            "model": models[0] if len(models) == 1 else Union[models],  # noqa: UP007
            "description": " or ".join(code.value for code in codes),
            ERROR_CODES_KEY: [code.value for code in codes],
        }
        if status == 422:  # answered in FastAPI's request-validation shape (render_as_validation)
            del out[status]["model"]
            out[status]["content"] = {"application/json": {"schema": {"$ref": VALIDATION_SCHEMA}}}
        if status == 429:
            out[status]["headers"] = RATE_LIMIT_HEADERS
    return out


def _declared_status(request: Request, code: ErrorCode) -> tuple[bool, int | None]:
    """(is this one of our documented routes, the status it gives ``code`` if it declares one)."""
    route = request.scope.get("route")
    responses: Mapping[int | str, Mapping[str, Any]] = getattr(route, "responses", None) or {}
    ours = False
    for status, spec in responses.items():
        codes = spec.get(ERROR_CODES_KEY)
        if codes is not None:
            ours = True
            if code.value in codes:
                return True, int(status)
    return ours, None


def render(exc: OroError, status: int) -> JSONResponse:
    headers = {}
    remaining = exc.extra.get("remaining_seconds")
    if isinstance(remaining, int):
        headers["Retry-After"] = str(remaining)
    return JSONResponse(exc.to_body(), status_code=status, headers=headers)


def _input_location(request: Request, name: str | None) -> list[str]:
    """FastAPI's ``loc`` for the input an error is about: where the request carried it."""
    if name is None:
        return ["body"]
    dependant = getattr(request.scope.get("route"), "dependant", None)
    for where in ("path", "query", "header"):
        if any(p.alias == name for p in getattr(dependant, f"{where}_params", [])):
            return [where, name]
    return ["body", name]


def render_as_validation(request: Request, exc: OroError) -> JSONResponse:
    """FastAPI's 422 shape (``HTTPValidationError``), which every path with input parses, keeping our code."""
    item = {
        "type": "value_error",
        "loc": _input_location(request, exc.input_name),
        "msg": exc.detail,
        "input": None,
    }
    return JSONResponse({"detail": [item], "error_code": exc.code.value}, status_code=422)


async def oro_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OroError)
    ours, status = _declared_status(request, exc.code)
    if status == 422 or (status is None and ours and exc.code == ErrorCode.VALIDATION_ERROR):
        # A path that declares the code as 422 (the client has no other model for it there), or whose
        # contract has no VALIDATION_ERROR body: report it as request validation.
        return render_as_validation(request, exc)
    return render(exc, status or exc.status)


def _unparsable(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return f"the request body is not valid UTF-8 (byte {cause.start}); send UTF-8 JSON"
    return f"the request body could not be parsed as its Content-Type says ({type(cause).__name__}: {cause})"


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI answers a body it cannot decode (not UTF-8, a broken multipart) with a bare 400 that
    no /v1 path documents. Answer it as request validation instead, in the 422 shape every path
    with a body parses, saying what was wrong with the body."""
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, OroError):  # raised while the body was read (the size cap)
        return await oro_error_handler(request, exc.__cause__)
    if exc.status_code == 400 and exc.__cause__ is not None and request.url.path.startswith("/v1/"):
        body = {
            "detail": [
                {"type": "body_unparsable", "loc": ["body"], "msg": _unparsable(exc.__cause__), "input": None}
            ],
            "error_code": ErrorCode.VALIDATION_ERROR.value,
        }
        return JSONResponse(body, status_code=422)
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(OroError, oro_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
