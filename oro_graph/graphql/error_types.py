"""Expected failures as schema types: an ``Error`` interface and one type per domain error code.

A mutation's result is a union of its success type and the errors it can return; a domain
``OroError`` raised by the service becomes the matching union member through a Strawberry
``ExceptionHandler`` (only on fields whose union lists that type). Anything else, including
UNAUTHENTICATED and FORBIDDEN, is a top-level GraphQL error with ``extensions.code``.
"""

from __future__ import annotations

from typing import Any

import strawberry

from oro_graph import errors as domain

ErrorCode = strawberry.enum(
    domain.ErrorCode,
    name="ErrorCode",
    description="Stable machine-readable error codes, the same as the REST layer's `error_code`.",
)


@strawberry.interface(description="An expected failure: branch on the type or on `code`, show `message`.")
class Error:
    code: domain.ErrorCode = strawberry.field(description="Stable code; the REST layer uses the same one.")
    message: str = strawberry.field(description="What went wrong and what to do about it, for people.")

    @classmethod
    def of(cls, exc: domain.OroError) -> Any:
        return cls(code=exc.code, message=exc.detail)


def _error(description: str) -> Any:
    return strawberry.type(description=description)


@_error("No suite has this id (SUITE_NOT_FOUND).")
class SuiteNotFoundError(Error):
    pass


@_error("No suite is active, so nothing can be submitted or ranked (NO_ACTIVE_SUITE).")
class NoActiveSuiteError(Error):
    pass


@_error("The problem is not in the run's suite (PROBLEM_NOT_FOUND).")
class ProblemNotFoundError(Error):
    pass


@_error("No agent has this id, or it is another miner's (AGENT_NOT_FOUND).")
class AgentNotFoundError(Error):
    pass


@_error("No agent version has this id (AGENT_VERSION_NOT_FOUND).")
class AgentVersionNotFoundError(Error):
    pass


@_error("No evaluation run has this id (EVAL_RUN_NOT_FOUND).")
class EvalRunNotFoundError(Error):
    pass


@_error("Nothing was stored for the requested artifact (ARTIFACT_NOT_FOUND).")
class ArtifactNotFoundError(Error):
    pass


@_error("The version's artifacts are not public yet (ARTIFACT_NOT_RELEASED).")
class ArtifactNotReleasedError(Error):
    pass


@_error("Unknown artifact type (INVALID_ARTIFACT_TYPE).")
class InvalidArtifactTypeError(Error):
    pass


@_error("A parameter this request needs is missing (MISSING_PARAMETER).")
class MissingParameterError(Error):
    pass


@_error("The file or declared size is over the limit (FILE_TOO_LARGE).")
class FileTooLargeError(Error):
    pass


@_error("The agent file is not valid UTF-8 Python source in a file named *.py (INVALID_FILE).")
class InvalidFileError(Error):
    pass


@_error("The agent name breaks the naming rule given in the message (INVALID_AGENT_NAME).")
class InvalidAgentNameError(Error):
    pass


@_error("This hotkey submitted recently; retry after `remainingSeconds` (COOLDOWN_ACTIVE).")
class CooldownActiveError(Error):
    remaining_seconds: int = strawberry.field(description="Seconds until the next submission is accepted.")

    @classmethod
    def of(cls, exc: domain.OroError) -> CooldownActiveError:
        return cls(
            code=exc.code, message=exc.detail, remaining_seconds=int(exc.extra.get("remaining_seconds", 0))
        )


@_error("The validator holds as many active runs as it may (AT_CAPACITY).")
class AtCapacityError(Error):
    pass


@_error(
    "The run belongs to another validator, or (for uploads) this validator no longer holds it: it "
    "finished or its lease lapsed (NOT_RUN_OWNER)."
)
class NotRunOwnerError(Error):
    pass


@_error(
    "The run has already finished, or its lease lapsed and it is over; the message says which "
    "(RUN_ALREADY_COMPLETE)."
)
class RunAlreadyCompleteError(Error):
    pass


@_error("The run's lease lapsed, answered to a heartbeat; claim new work (LEASE_EXPIRED).")
class LeaseExpiredError(Error):
    pass


@_error("Some problem ids are not in the run's suite (INVALID_PROBLEM_ID).")
class InvalidProblemIdError(Error):
    pass


@_error("A SUCCESS completion needs a validator score (MISSING_SCORE).")
class MissingScoreError(Error):
    pass


@_error("An input value is out of range or malformed; the message names it (VALIDATION_ERROR).")
class ValidationError(Error):
    pass


@_error("Too many requests from this caller (RATE_LIMIT_EXCEEDED).")
class RateLimitExceededError(Error):
    remaining_seconds: int | None = strawberry.field(
        description="Seconds to wait before retrying, when known."
    )

    @classmethod
    def of(cls, exc: domain.OroError) -> RateLimitExceededError:
        remaining = exc.extra.get("remaining_seconds")
        return cls(
            code=exc.code, message=exc.detail, remaining_seconds=None if remaining is None else int(remaining)
        )


@_error("A dependency (database, nonce store) is down; retry shortly (SERVICE_UNAVAILABLE).")
class ServiceUnavailableError(Error):
    pass


@_error("No race has this id (RACE_NOT_FOUND).")
class RaceNotFoundError(Error):
    pass


@_error(
    "Qualifying has closed: the running race's field is frozen, and so are race selections until it ends "
    "(RACE_LOCKED)."
)
class RaceLockedError(Error):
    pass


@_error("The agent version is not one of the caller's versions, or does not exist (NOT_VERSION_OWNER).")
class NotVersionOwnerError(Error):
    pass


@_error("The caller has no race selection to clear (NO_SELECTION).")
class NoSelectionError(Error):
    pass


ERROR_TYPES: dict[type[domain.OroError], type[Error]] = {
    domain.SuiteNotFound: SuiteNotFoundError,
    domain.NoActiveSuite: NoActiveSuiteError,
    domain.ProblemNotFound: ProblemNotFoundError,
    domain.AgentNotFound: AgentNotFoundError,
    domain.AgentVersionNotFound: AgentVersionNotFoundError,
    domain.EvalRunNotFound: EvalRunNotFoundError,
    domain.ArtifactNotFound: ArtifactNotFoundError,
    domain.ArtifactNotReleased: ArtifactNotReleasedError,
    domain.InvalidArtifactType: InvalidArtifactTypeError,
    domain.MissingParameter: MissingParameterError,
    domain.FileTooLarge: FileTooLargeError,
    domain.InvalidFile: InvalidFileError,
    domain.InvalidAgentName: InvalidAgentNameError,
    domain.CooldownActive: CooldownActiveError,
    domain.AtCapacity: AtCapacityError,
    domain.NotRunOwner: NotRunOwnerError,
    domain.RunAlreadyComplete: RunAlreadyCompleteError,
    domain.LeaseExpired: LeaseExpiredError,
    domain.InvalidProblemId: InvalidProblemIdError,
    domain.MissingScore: MissingScoreError,
    domain.ValidationFailed: ValidationError,
    domain.RateLimitExceeded: RateLimitExceededError,
    domain.ServiceUnavailable: ServiceUnavailableError,
    domain.RaceNotFound: RaceNotFoundError,
    domain.RaceLocked: RaceLockedError,
    domain.NotVersionOwner: NotVersionOwnerError,
    domain.NoSelection: NoSelectionError,
}  # UNAUTHENTICATED and FORBIDDEN have no type: they are top-level errors, never union members


class DomainErrorHandler(strawberry.ExceptionHandler):  # type: ignore[type-arg]
    """Turns one domain exception class into its error type, on fields whose union lists it."""

    def __init__(self, exception_type: type[domain.OroError], error_type: type[Error]) -> None:
        self.exception_type = exception_type
        self.error_type = error_type

    def handle(self, exception: domain.OroError, *, field: Any, info: Any) -> Any:
        return self.error_type.of(exception)


EXCEPTION_HANDLERS = [DomainErrorHandler(exc, gql) for exc, gql in ERROR_TYPES.items()]
