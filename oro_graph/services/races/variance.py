"""Validator variance: how far validators scoring the same qualifier lie apart."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, select

from oro_graph.models import EvaluationRun, Hotkey, Race, RunStatus
from oro_graph.services.races.embargo import results_published
from oro_graph.services.races.views import get_race, races_by_ids

SPREAD_THRESHOLDS_PP = (5.0, 10.0, 20.0)


@dataclass(frozen=True)
class ValidatorBias:
    validator_hotkey: str
    validator_name: str | None
    pairs_evaluated: int
    mean_delta_vs_peers: float
    std_dev: float
    mean_score: float


@dataclass(frozen=True)
class Variance:
    race: Race
    n_pairs: int
    mean_spread: float | None
    median_spread: float | None
    max_spread: float | None
    buckets: list[tuple[float, int, float]]  # (threshold in points, pairs above it, their share in %)
    validators: list[ValidatorBias]


def validator_variance(session: Session, race_id: uuid.UUID) -> Variance:
    """Pairs of successful race runs on the same qualifier by two validators: their spread in score
    points (|a - b| x 100), and per validator its mean signed difference from its peers (its bias).
    Empty (no pairs, no validators) until the race's results are published (``results_published``)."""
    race = get_race(session, race_id)
    return variances_by_race_ids(session, [race.id])[race.id]


def variance_as_published(variance: Variance, race: Race) -> Variance:
    """``variance`` as the public may see it of ``race`` as it stood (``as_it_stood``): empty while
    its results were embargoed."""
    return variance if results_published(race) else _variance(race, {}, {})


def variances_by_race_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Variance]:
    """``validator_variance`` of many races in three statements."""
    found = races_by_ids(session, ids)
    runs = session.exec(
        select(
            EvaluationRun.race_id,
            EvaluationRun.agent_version_id,
            EvaluationRun.validator_hotkey,
            EvaluationRun.validator_score,
        ).where(
            col(EvaluationRun.race_id).in_(list(found)),
            EvaluationRun.status == RunStatus.SUCCESS,
            col(EvaluationRun.validator_score).is_not(None),
        )
    ).all()
    by_race: dict[uuid.UUID, dict[uuid.UUID, list[tuple[str, float]]]] = {rid: {} for rid in found}
    for rid, vid, hotkey, score in runs:
        by_race[rid].setdefault(vid, []).append((hotkey, float(score)))  # type: ignore[index]
    hotkeys = {hotkey for _, _, hotkey, _ in runs}
    names = dict(
        session.exec(select(Hotkey.ss58, Hotkey.name).where(col(Hotkey.ss58).in_(list(hotkeys)))).all()
    )
    # The embargo: while a race runs, its validators' scores and spreads would give its runs' scores away.
    return {
        rid: _variance(race, by_race[rid] if results_published(race) else {}, names)
        for rid, race in found.items()
    }


def _variance(
    race: Race, by_version: dict[uuid.UUID, list[tuple[str, float]]], names: dict[str, str | None]
) -> Variance:
    spreads: list[float] = []
    deltas: dict[str, list[float]] = {}
    scores: dict[str, list[float]] = {}
    for entries in by_version.values():
        for i, (a, sa) in enumerate(entries):
            scores.setdefault(a, []).append(sa)
            for b, sb in entries[i + 1 :]:
                spreads.append(abs(sa - sb) * 100)
                deltas.setdefault(a, []).append((sa - sb) * 100)
                deltas.setdefault(b, []).append((sb - sa) * 100)
    validators = [
        ValidatorBias(
            hotkey,
            names.get(hotkey),
            len(deltas.get(hotkey, [])),
            statistics.fmean(deltas[hotkey]) if deltas.get(hotkey) else 0.0,
            statistics.pstdev(deltas[hotkey]) if len(deltas.get(hotkey, [])) > 1 else 0.0,
            statistics.fmean(values),
        )
        for hotkey, values in sorted(scores.items())
    ]
    n = len(spreads)
    buckets = [
        (t, sum(1 for s in spreads if s > t), (100.0 * sum(1 for s in spreads if s > t) / n) if n else 0.0)
        for t in SPREAD_THRESHOLDS_PP
    ]
    return Variance(
        race,
        n,
        statistics.fmean(spreads) if n else None,
        statistics.median(spreads) if n else None,
        max(spreads) if n else None,
        buckets,
        validators,
    )
