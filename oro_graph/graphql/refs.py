"""Every GraphQL object type, reached by name: how one type module refers to a type of another.

The rule, the one way to write a cross-module field: a type module never imports another type
module. At module level it imports only the shared modules under the types (``ids``, ``context``,
``dataloaders``, ``enums``, ``pagination``, ``filters``, ``permissions``, ``error_types``,
``reliability_types``, ``scalars``, and ``subscriptions`` for following the event log) and this one,
and it names a type (or a helper that builds one) of another module as ``refs.X``, in the annotation
as in the body; only ``schema`` imports the type modules, to merge their roots::

    from oro_graph.graphql import refs

    @strawberry.field(description="The suite it is evaluated on.")
    async def suite(self, info: Info) -> refs.Suite | None:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        return refs.Suite.of(row) if row else None

``refs`` imports a type's home module on first use (a module ``__getattr__``, PEP 562). While that
module is itself still being imported, ``refs.X`` is an undefined name (``NameError``), as a forward
reference would be, and Strawberry resolves the annotation again when it builds the schema, after
every module is loaded. So the type modules form no import cycle (``tests/graphql/test_layering.py``
checks it) and none depends on the order they are imported in. mypy sees the real classes through
the ``TYPE_CHECKING`` imports below. A type another module refers to is one line in ``HOMES`` and one
import below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Name -> the module under oro_graph.graphql that defines it.
HOMES: dict[str, str] = {
    "Suite": "suites",
    "Problem": "suites",
    "Miner": "agents",
    "Agent": "agents",
    "AgentVersion": "versions",
    "ProblemProgress": "versions",
    "shown_version": "versions",
    "agent_of_version": "versions",
    "WorkItem": "workitems",
    "EvaluationRun": "evaluations",
    "scores_disclosed": "evaluations",
    "ProblemResult": "results",
    "MinerInferenceAuth": "credentials",
    "InferenceCredentialStatus": "credentials",
    "LeaderboardEntry": "leaderboard",
    "Validator": "validators",
    "Race": "races",
    "race_as_it_stood": "races",
    "RaceQualifier": "raceresults",
    "RaceWeight": "raceresults",
    "RaceVariance": "raceresults",
    "race_weights": "raceresults",
    "RaceSelection": "raceselections",
    "ProblemStatistics": "problemstats",
    "problem_stats": "problemstats",
    "suite_problem_stats": "problemstats",
}

if TYPE_CHECKING:
    from oro_graph.graphql.agents import Agent as Agent
    from oro_graph.graphql.agents import Miner as Miner
    from oro_graph.graphql.credentials import InferenceCredentialStatus as InferenceCredentialStatus
    from oro_graph.graphql.credentials import MinerInferenceAuth as MinerInferenceAuth
    from oro_graph.graphql.evaluations import EvaluationRun as EvaluationRun
    from oro_graph.graphql.evaluations import scores_disclosed as scores_disclosed
    from oro_graph.graphql.leaderboard import LeaderboardEntry as LeaderboardEntry
    from oro_graph.graphql.problemstats import ProblemStatistics as ProblemStatistics
    from oro_graph.graphql.problemstats import problem_stats as problem_stats
    from oro_graph.graphql.problemstats import suite_problem_stats as suite_problem_stats
    from oro_graph.graphql.raceresults import RaceQualifier as RaceQualifier
    from oro_graph.graphql.raceresults import RaceVariance as RaceVariance
    from oro_graph.graphql.raceresults import RaceWeight as RaceWeight
    from oro_graph.graphql.raceresults import race_weights as race_weights
    from oro_graph.graphql.races import Race as Race
    from oro_graph.graphql.races import race_as_it_stood as race_as_it_stood
    from oro_graph.graphql.raceselections import RaceSelection as RaceSelection
    from oro_graph.graphql.results import ProblemResult as ProblemResult
    from oro_graph.graphql.suites import Problem as Problem
    from oro_graph.graphql.suites import Suite as Suite
    from oro_graph.graphql.validators import Validator as Validator
    from oro_graph.graphql.versions import AgentVersion as AgentVersion
    from oro_graph.graphql.versions import ProblemProgress as ProblemProgress
    from oro_graph.graphql.versions import agent_of_version as agent_of_version
    from oro_graph.graphql.versions import shown_version as shown_version
    from oro_graph.graphql.workitems import WorkItem as WorkItem


def __getattr__(name: str) -> Any:
    try:
        home = HOMES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(f"oro_graph.graphql.{home}")
    if name not in module.__dict__:
        # Its home is still being imported (it is what led here): for now the name is undefined, as a
        # forward reference would be; Strawberry retries the annotation when it builds the schema.
        raise NameError(f"{home}.{name} is not defined yet")
    value = module.__dict__[name]
    globals()[name] = value  # found once; later lookups are plain attribute reads
    return value
