"""Domain error codes, shared by the REST layer and the graph so both say the same thing."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    SUITE_NOT_FOUND = "SUITE_NOT_FOUND"
    NO_ACTIVE_SUITE = "NO_ACTIVE_SUITE"
    PROBLEM_NOT_FOUND = "PROBLEM_NOT_FOUND"
    AGENT_NOT_FOUND = "AGENT_NOT_FOUND"
    AGENT_VERSION_NOT_FOUND = "AGENT_VERSION_NOT_FOUND"
    EVAL_RUN_NOT_FOUND = "EVAL_RUN_NOT_FOUND"
    ARTIFACT_NOT_FOUND = "ARTIFACT_NOT_FOUND"
    ARTIFACT_NOT_RELEASED = "ARTIFACT_NOT_RELEASED"
    INVALID_ARTIFACT_TYPE = "INVALID_ARTIFACT_TYPE"
    MISSING_PARAMETER = "MISSING_PARAMETER"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    INVALID_FILE = "INVALID_FILE"
    INVALID_AGENT_NAME = "INVALID_AGENT_NAME"
    COOLDOWN_ACTIVE = "COOLDOWN_ACTIVE"
    AT_CAPACITY = "AT_CAPACITY"
    NOT_RUN_OWNER = "NOT_RUN_OWNER"
    RUN_ALREADY_COMPLETE = "RUN_ALREADY_COMPLETE"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    INVALID_PROBLEM_ID = "INVALID_PROBLEM_ID"
    MISSING_SCORE = "MISSING_SCORE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    RACE_NOT_FOUND = "RACE_NOT_FOUND"
    RACE_LOCKED = "RACE_LOCKED"
    RACE_IN_FLIGHT = "RACE_IN_FLIGHT"
    NOT_VERSION_OWNER = "NOT_VERSION_OWNER"
    NO_SELECTION = "NO_SELECTION"
    NOT_SERVED = "NOT_SERVED"


class OroError(Exception):
    """An expected failure: a code, a message that says what to fix, an HTTP status, extra fields."""

    code: ErrorCode = ErrorCode.VALIDATION_ERROR
    status: int = 400
    input_name: str | None = None  # the request input it is about, where a REST path answers it as a 422

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, detail={self.detail!r})"

    def to_body(self) -> dict[str, Any]:
        return {"detail": self.detail, "error_code": self.code.value, **self.extra}


class SuiteNotFound(OroError):
    code = ErrorCode.SUITE_NOT_FOUND
    status = 404
    input_name = "suite_id"


class NoActiveSuite(OroError):
    code = ErrorCode.NO_ACTIVE_SUITE
    status = 503


class ProblemNotFound(OroError):
    code = ErrorCode.PROBLEM_NOT_FOUND
    status = 404


class AgentNotFound(OroError):
    code = ErrorCode.AGENT_NOT_FOUND
    status = 404


class AgentVersionNotFound(OroError):
    code = ErrorCode.AGENT_VERSION_NOT_FOUND
    status = 404


class EvalRunNotFound(OroError):
    code = ErrorCode.EVAL_RUN_NOT_FOUND
    status = 404


class ArtifactNotFound(OroError):
    code = ErrorCode.ARTIFACT_NOT_FOUND
    status = 404


class ArtifactNotReleased(OroError):
    code = ErrorCode.ARTIFACT_NOT_RELEASED
    status = 403


class InvalidArtifactType(OroError):
    code = ErrorCode.INVALID_ARTIFACT_TYPE
    status = 400


class MissingParameter(OroError):
    code = ErrorCode.MISSING_PARAMETER
    status = 400


class FileTooLarge(OroError):
    code = ErrorCode.FILE_TOO_LARGE
    status = 413


class InvalidFile(OroError):
    code = ErrorCode.INVALID_FILE
    status = 400


class InvalidAgentName(OroError):
    code = ErrorCode.INVALID_AGENT_NAME
    status = 400


class CooldownActive(OroError):
    code = ErrorCode.COOLDOWN_ACTIVE
    status = 429


class AtCapacity(OroError):
    code = ErrorCode.AT_CAPACITY
    status = 409


class NotRunOwner(OroError):
    code = ErrorCode.NOT_RUN_OWNER
    status = 409


class RunAlreadyComplete(OroError):
    code = ErrorCode.RUN_ALREADY_COMPLETE
    status = 409


class LeaseExpired(OroError):
    code = ErrorCode.LEASE_EXPIRED
    status = 409


class InvalidProblemId(OroError):
    code = ErrorCode.INVALID_PROBLEM_ID
    status = 400


class MissingScore(OroError):
    code = ErrorCode.MISSING_SCORE
    status = 400


class ValidationFailed(OroError):
    code = ErrorCode.VALIDATION_ERROR
    status = 400


class RateLimitExceeded(OroError):
    code = ErrorCode.RATE_LIMIT_EXCEEDED
    status = 429


class Unauthenticated(OroError):
    code = ErrorCode.UNAUTHENTICATED
    status = 401


class Forbidden(OroError):
    code = ErrorCode.FORBIDDEN
    status = 403


class ServiceUnavailable(OroError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    status = 503


class RaceNotFound(OroError):
    code = ErrorCode.RACE_NOT_FOUND
    status = 404


class RaceLocked(OroError):
    code = ErrorCode.RACE_LOCKED
    status = 409


class RaceInFlight(OroError):
    code = ErrorCode.RACE_IN_FLIGHT
    status = 409


class NotVersionOwner(OroError):
    code = ErrorCode.NOT_VERSION_OWNER
    status = 403


class NoSelection(OroError):
    code = ErrorCode.NO_SELECTION
    status = 404


class NotServed(OroError):
    code = ErrorCode.NOT_SERVED
    status = 404
