"""The race board and the top miner's payout."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session, col, select

from oro_graph.models import Agent, AgentVersion, RaceQualifier, utcnow
from oro_graph.services import leaderboard, suites
from oro_graph.services.leaderboard import BoardPage
from oro_graph.services.races.views import latest_completed
from oro_graph.settings import Settings


def race_board(
    session: Session,
    *,
    suite_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
    now: datetime | None = None,
) -> BoardPage:
    """The finishers of a suite's latest completed race, by race rank (empty before its first race)."""
    suite = suites.resolve_suite(session, suite_id)
    limit, offset, now = max(1, min(limit, 500)), max(0, offset), now or utcnow()
    race = latest_completed(session, suite.id)
    finishers = (
        select(RaceQualifier, AgentVersion, Agent)
        .join(AgentVersion, col(AgentVersion.id) == RaceQualifier.agent_version_id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(
            RaceQualifier.race_id == (race.id if race else None), col(RaceQualifier.race_rank).is_not(None)
        )
    )
    rows = session.exec(finishers.order_by(col(RaceQualifier.race_rank)).offset(offset).limit(limit)).all()
    total = len(session.exec(finishers).all()) if race else 0
    ranked = [(q.race_rank or 0, version, agent) for q, version, agent in rows]
    scores = {q.agent_version_id: q.race_score for q, _, _ in rows}
    board = [
        replace(row, race_score=scores.get(row.version.id))
        for row in leaderboard.board_rows(session, suite.id or 0, ranked)
    ]
    miners = len({agent.miner_hotkey for _, _, agent in session.exec(finishers).all()}) if race else 0
    return BoardPage(
        suite, board, total, limit, offset, miners, leaderboard.submitted_since(session, suite.id or 0, now)
    )


@dataclass(frozen=True)
class Payout:
    as_of: datetime
    miner_hotkey: str | None
    agent_name: str | None
    tao_per_day: float | None
    usd_per_day: float | None
    tao_price_usd: float | None


def top_miner_payout(session: Session, *, settings: Settings, now: datetime | None = None) -> Payout:
    """The top miner's estimated earnings a day from the configured figures; null where not configured."""
    now = now or utcnow()
    top = leaderboard.current_top_agent(session, settings=settings)  # none before a suite is active
    hotkey = top.agent.miner_hotkey if top.agent else None
    tao = settings.tao_per_day_top if hotkey else None
    price = settings.tao_price_usd
    usd = tao * price if tao is not None and price is not None else None
    return Payout(now, hotkey, top.agent.name if top.agent else None, tao, usd, price)
