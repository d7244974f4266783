"""The embargo: a race's scores and its secret stay hidden until the race publishes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, or_
from sqlmodel import col, select

from oro_graph.models import Race, RaceStatus


def results_published(race: Race) -> bool:
    """The embargo, the one rule every result of a race follows: published only once the race is
    RACE_COMPLETE (oro-sdk 7.0.2). A CANCELLED race never publishes its results: nobody won, its
    qualifiers' race scores stay null, and so do its runs' scores (publishing the runs would give
    away the race scores it does not publish)."""
    return race.status == RaceStatus.RACE_COMPLETE


def disclosed_sql(score: Any, run_race_id: Any) -> Any:
    """``score`` of a run (or of its problem results) in SQL, null while the run's race keeps its
    results back (``results_published``): for readers of many rows at once, such as the export.
    The statement must select from ``EvaluationRun``; the race is looked up by ``run_race_id``."""
    published = (
        select(Race.id).where(col(Race.id) == run_race_id, Race.status == RaceStatus.RACE_COMPLETE).exists()
    )
    return case((or_(col(run_race_id).is_(None), published), score), else_=None)


def run_scores_disclosed(race: Race | None, *, holds_run: bool = False) -> bool:
    """Whether a run's scores (its validator score and components, its problems' scores, the score
    its progress events carry) may be shown: always for a qualifying run (``race`` None); for a race
    run, to the public once its race's results are published (``results_published``), and always to
    the validator holding the run, in the answers to its own lease calls (it reported them).
    Only what is shown is masked: settlement and the aggregates read the rows themselves."""
    return race is None or holds_run or results_published(race)


def revealed_secret(race: Race) -> str | None:
    """The race's secret once revealed (the race is over); never before."""
    return race.secret if race.secret_revealed else None
