"""Every table, imported here so ``SQLModel.metadata`` is complete for Alembic and create_all."""

from oro_graph.models.agents import Agent, AgentVersion, TopAgentHistory, WorkItem
from oro_graph.models.base import (
    AgentVersionState,
    ExecutionKind,
    ProblemStatus,
    QualificationType,
    RaceStatus,
    Role,
    RunStatus,
    utcnow,
)
from oro_graph.models.cells import (
    ProblemCell,
    ProblemScore,
    ProblemScoreBucket,
    ProblemTotal,
    VersionCategory,
)
from oro_graph.models.evaluations import EvaluationRun, ProblemResult
from oro_graph.models.events import Event
from oro_graph.models.races import Race, RaceQualifier, RaceSelection, SchedulerLease
from oro_graph.models.registry import Hotkey, InferenceCredential, Miner, ValidatorState
from oro_graph.models.sharedstate import (
    EventStream,
    EventStreamMessage,
    EventStreamOperation,
    RateLimitHit,
    UsedNonce,
)
from oro_graph.models.suites import Problem, ProblemSource, Suite

__all__ = [
    "Agent",
    "AgentVersion",
    "AgentVersionState",
    "EvaluationRun",
    "Event",
    "ExecutionKind",
    "Hotkey",
    "InferenceCredential",
    "Miner",
    "Problem",
    "ProblemCell",
    "ProblemResult",
    "ProblemScore",
    "ProblemScoreBucket",
    "ProblemTotal",
    "ProblemSource",
    "ProblemStatus",
    "QualificationType",
    "Race",
    "RaceQualifier",
    "RaceSelection",
    "RaceStatus",
    "RateLimitHit",
    "Role",
    "SchedulerLease",
    "RunStatus",
    "Suite",
    "TopAgentHistory",
    "UsedNonce",
    "EventStream",
    "EventStreamMessage",
    "EventStreamOperation",
    "ValidatorState",
    "VersionCategory",
    "WorkItem",
    "utcnow",
]
