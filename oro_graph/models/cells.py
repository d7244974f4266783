"""Running totals behind per-problem statistics and the leaderboard's category filter, kept by
database triggers in the transaction that writes a problem result or moves a run
(``oro_graph.models.totals`` defines them): every writer, bulk COPY included, keeps them exact.

- ``ProblemCell``: one (version, problem) of the suite's own runs (never race runs): finished
  attempts, passes, timeouts, score and duration sums, over every run and over included runs.
- ``ProblemScore``: how many finished attempts of the suite's own runs have each score (a missing
  score counting 0), every run and included runs: the exact median walks it by rank.
- ``ProblemScoreBucket``: the same counts by score bucket, ``ProblemTotal``: a problem's sums over
  its cells, correlation sums included: the suite's statistics read 30 rows, not 2 million cells.
- ``VersionCategory``: a version's problem results in one category over its included runs (every
  status, race runs too, a missing score counting 0): the leaderboard's category mean.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel


def _cleared(table: str, column: str = "attempts") -> Index:
    """Totals that fell to zero are deleted by the trigger that cleared them: this finds them at once."""
    where = text(f"{column} <= 0")
    return Index(f"ix_{table}_cleared", column, postgresql_where=where, sqlite_where=where)


class ProblemCell(SQLModel, table=True):
    __table_args__ = (_cleared("problemcell"),)

    agent_version_id: uuid.UUID = Field(primary_key=True)
    problem_id: uuid.UUID = Field(primary_key=True)
    suite_id: int
    attempts: int = 0
    passes: int = 0
    timeouts: int = 0
    score_sum: float = 0.0
    duration_sum: float = 0.0
    durations: int = 0  # attempts that reported an execution time
    inc_attempts: int = 0  # the same over included runs
    inc_passes: int = 0
    inc_timeouts: int = 0
    inc_score_sum: float = 0.0
    inc_duration_sum: float = 0.0
    inc_durations: int = 0
    # this cell's term in its problem's correlation sums (ProblemTotal): x, the version's mean score
    # on the problem, and y, its mean on its other problems (null with no other problem); inc_: the
    # same over included runs
    x: float | None = None
    y: float | None = None
    inc_x: float | None = None
    inc_y: float | None = None


class ProblemScore(SQLModel, table=True):
    __table_args__ = (_cleared("problemscore"),)

    problem_id: uuid.UUID = Field(primary_key=True)
    score: float = Field(primary_key=True)
    suite_id: int
    attempts: int = 0
    inc_attempts: int = 0


class ProblemScoreBucket(SQLModel, table=True):
    """``ProblemScore`` counted by 1/1024-wide score bucket: the median finds its bucket here, then
    reads only that bucket's scores."""

    __table_args__ = (
        Index("ix_problemscorebucket_suite", "suite_id"),
        _cleared("problemscorebucket"),
    )

    problem_id: uuid.UUID = Field(primary_key=True)
    bucket: int = Field(primary_key=True)  # floor(score * 1024)
    suite_id: int
    attempts: int = 0
    inc_attempts: int = 0


class ProblemTotal(SQLModel, table=True):
    """One problem's sums over its cells (``inc_``: over included runs): what its statistics need,
    without reading a cell. ``n``..``sxy`` are the correlation sums over the cells with a y."""

    problem_id: uuid.UUID = Field(primary_key=True)
    suite_id: int = Field(index=True)
    attempts: int = 0
    passes: int = 0
    timeouts: int = 0
    score_sum: float = 0.0
    duration_sum: float = 0.0
    durations: int = 0
    versions: int = 0
    n: int = 0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    syy: float = 0.0
    sxy: float = 0.0
    inc_attempts: int = 0
    inc_passes: int = 0
    inc_timeouts: int = 0
    inc_score_sum: float = 0.0
    inc_duration_sum: float = 0.0
    inc_durations: int = 0
    inc_versions: int = 0
    inc_n: int = 0
    inc_sx: float = 0.0
    inc_sy: float = 0.0
    inc_sxx: float = 0.0
    inc_syy: float = 0.0
    inc_sxy: float = 0.0


class VersionCategory(SQLModel, table=True):
    __table_args__ = (
        Index("ix_versioncategory_category_mean", "category", "mean"),
        _cleared("versioncategory", "results"),
    )

    agent_version_id: uuid.UUID = Field(primary_key=True)
    category: str = Field(primary_key=True)
    results: int = 0
    score_sum: float = 0.0
    mean: float | None = None  # score_sum / results
