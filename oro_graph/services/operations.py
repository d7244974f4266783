"""What operators watch about the evaluation pipeline, counted with SQL (the `/metrics` gauges).

Counted from the database at scrape time rather than by the process that handled each request, so
every server process reports the same numbers and a restart loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from oro_graph.models import EvaluationRun, RunStatus, utcnow


@dataclass(frozen=True)
class RunCounts:
    claims: int  # every run ever created: one per successful claim
    active_leases: int  # claimed or running, with a lease that has not lapsed
    lapsed_leases: int  # claimed or running whose lease passed, not yet swept to STALE
    by_status: dict[str, int]


def run_counts(session: Session, now: datetime | None = None) -> RunCounts:
    now = now or utcnow()
    rows = session.exec(select(EvaluationRun.status, func.count()).group_by(EvaluationRun.status)).all()
    by_status = {status.value: 0 for status in RunStatus} | {str(status): count for status, count in rows}
    active = session.exec(
        select(func.count())
        .select_from(EvaluationRun)
        .where(col(EvaluationRun.status).in_(RunStatus.live()), col(EvaluationRun.lease_expires_at) > now)
    ).one()
    in_flight = sum(by_status[str(s)] for s in RunStatus.live())
    return RunCounts(
        claims=sum(by_status.values()),
        active_leases=active,
        lapsed_leases=in_flight - active,
        by_status=by_status,
    )
