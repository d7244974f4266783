"""The domain's enums as GraphQL enums (registered once, used by every domain module).

``strawberry.enum(cls, ...)`` registers a domain enum and returns the class itself, so each name below is
the domain's class (and mypy reads it as one)."""

from __future__ import annotations

from enum import Enum

import strawberry

from oro_graph import models
from oro_graph.services.artifacts import ArtifactType as DomainArtifactType

ExecutionKind = models.ExecutionKind
strawberry.enum(
    ExecutionKind,
    description="How a suite's problems are executed (envpack or the legacy ShoppingBench).",
)
AgentVersionState = models.AgentVersionState
strawberry.enum(
    AgentVersionState,
    description="Where a version is in its life: RECEIVED, QUEUED for validators, RUNNING, ELIGIBLE "
    "(ranked), DISCARDED or CANCELLED.",
)
RunStatus = models.RunStatus
strawberry.enum(
    RunStatus,
    description="An evaluation run's status: CLAIMED and RUNNING hold a lease; SUCCESS, FAILED and "
    "TIMED_OUT are final reports; STALE means the lease expired; CANCELLED was withdrawn.",
)
ProblemStatus = models.ProblemStatus
strawberry.enum(ProblemStatus, description="One problem's status within a run.")
ArtifactType = DomainArtifactType
strawberry.enum(ArtifactType, description="Which artifact a download URL is for.")


@strawberry.enum(description="Whether a validator holds a lease now.")
class ValidatorStatus(Enum):
    AVAILABLE = strawberry.enum_value("available", description="No active run.")
    EVALUATING = strawberry.enum_value("evaluating", description="Holds at least one CLAIMED or RUNNING run.")


@strawberry.enum(description="Whether a version's code and logs are public.")
class ReleaseState(Enum):
    HIDDEN = strawberry.enum_value(
        "HIDDEN", description="Not yet: before eligibility plus the release delay."
    )
    RELEASED = strawberry.enum_value(
        "RELEASED", description="Public: downloadable through requestArtifactDownload."
    )


@strawberry.enum(description="A terminal status a validator may report when completing a run.")
class TerminalStatus(Enum):
    SUCCESS = strawberry.enum_value("SUCCESS", description="Evaluated; a validator score is required.")
    FAILED = strawberry.enum_value("FAILED", description="The evaluation failed; say why in failureReason.")
    TIMED_OUT = strawberry.enum_value("TIMED_OUT", description="The evaluation ran out of time.")
