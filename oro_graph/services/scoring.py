"""How a version's qualifying work settles: pure rules shared by ``complete_run`` and the demo world.

The demo simulates the lifecycle without a database and derives its scores and states through these
functions, so a rule changed here changes both.
"""

from __future__ import annotations

from collections.abc import Sequence

from oro_graph.models import AgentVersionState


def qualifies(included_successes: int, required_successes: int) -> bool:
    """A qualifying work item is done (and its version ELIGIBLE) once it counts X included successes."""
    return included_successes >= required_successes


def final_score_of(included_scores: Sequence[float | None]) -> float:
    """An ELIGIBLE version's final score: the mean of its included runs' validator scores."""
    return sum(s for s in included_scores if s is not None) / len(included_scores)


def waiting_state(active_runs: int, included_successes: int) -> AgentVersionState:
    """The state of a version not yet settled: RUNNING once a run holds or counted toward its work item,
    else QUEUED."""
    busy = active_runs > 0 or included_successes > 0
    return AgentVersionState.RUNNING if busy else AgentVersionState.QUEUED
