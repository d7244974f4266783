"""Suites and problems: import, activation and reads."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select, update

from oro_graph.db import writes
from oro_graph.errors import NoActiveSuite, SuiteNotFound, ValidationFailed
from oro_graph.models import Problem, ProblemSource, Suite

# Problems get stable ids: the same suite file imported twice (or on two servers) yields the same UUIDs.
_PROBLEM_NAMESPACE = uuid.UUID("5b3c6f5e-8f0e-4a4e-9a55-0d7a1b1f0b15")


@dataclass(frozen=True)
class SuiteImport:
    suite: Suite
    problems: int
    created: bool


def get_current_suite(session: Session) -> Suite:
    suite = session.exec(select(Suite).where(Suite.is_active).order_by(col(Suite.id).desc()).limit(1)).first()
    if suite is None:
        raise NoActiveSuite(
            "no problem suite is active; an operator must run 'oro-graph suites import FILE --activate'"
        )
    return suite


def current_suite_or_none(session: Session) -> Suite | None:
    return session.exec(select(Suite).where(Suite.is_active).order_by(col(Suite.id).desc()).limit(1)).first()


MAX_SUITE_ID = 2**31 - 1  # suite ids are a 32-bit INTEGER column


def get_suite(session: Session, suite_id: int) -> Suite:
    # An id the column cannot hold does not exist; PostgreSQL would refuse the parameter outright.
    suite = session.get(Suite, suite_id) if 0 < suite_id <= MAX_SUITE_ID else None
    if suite is None:
        raise SuiteNotFound(f"suite {suite_id} does not exist")
    return suite


def resolve_suite(session: Session, suite_id: int | None) -> Suite:
    """The given suite, or the active one when none is named."""
    if suite_id is None:
        suite = current_suite_or_none(session)
        if suite is None:
            raise SuiteNotFound("no suite is active; pass suite_id")
        return suite
    return get_suite(session, suite_id)


def list_suites(session: Session) -> list[Suite]:
    return list(session.exec(select(Suite).order_by(col(Suite.id))))


def suites_by_ids(session: Session, ids: Iterable[int]) -> dict[int, Suite]:
    rows = session.exec(select(Suite).where(col(Suite.id).in_(list(ids))))
    return {row.id: row for row in rows if row.id is not None}


def problems_for_suite(session: Session, suite_id: int) -> list[Problem]:
    get_suite(session, suite_id)
    return list(
        session.exec(select(Problem).where(Problem.suite_id == suite_id).order_by(col(Problem.position)))
    )


def problems_by_suite_ids(session: Session, suite_ids: Iterable[int]) -> dict[int, list[Problem]]:
    out: dict[int, list[Problem]] = {}
    stmt = (
        select(Problem)
        .where(col(Problem.suite_id).in_(list(suite_ids)))
        .order_by(col(Problem.suite_id), col(Problem.position))
    )
    for row in session.exec(stmt):
        out.setdefault(row.suite_id, []).append(row)
    return out


def problems_by_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Problem]:
    return {row.id: row for row in session.exec(select(Problem).where(col(Problem.id).in_(list(ids))))}


def parse_suite_file(raw: bytes) -> list[dict[str, Any]]:
    """Validate the ORO problem-suite JSON format: a list of problems with at least a query."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed(f"suite file is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("problems"), list):
        data = data["problems"]
    if not isinstance(data, list) or not data:
        raise ValidationFailed("suite file must be a non-empty JSON list of problems")
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            raise ValidationFailed(f"problem #{index + 1} must be an object with a string 'query'")
    return data


@writes
def import_suite(
    session: Session,
    raw: bytes,
    *,
    activate: bool = False,
    benchmark_name: str | None = None,
) -> SuiteImport:
    """Import a suite file; importing the same bytes again returns the existing suite."""
    problems = parse_suite_file(raw)
    digest = hashlib.sha256(raw).hexdigest()
    existing = session.exec(select(Suite).where(Suite.source_sha256 == digest)).first()
    created = existing is None
    if existing is None:
        latest = session.exec(select(Suite).order_by(col(Suite.version).desc()).limit(1)).first()
        suite = Suite(
            version=(latest.version + 1) if latest else 1,
            benchmark_name=benchmark_name or "shoppingbench",
            source_sha256=digest,
        )
        session.add(suite)
        session.flush()
        for position, item in enumerate(problems):
            session.add(_problem_from_item(suite, position, item, digest))
        session.flush()
        session.add_all(
            ProblemSource(problem_id=_problem_id(digest, p), body=item) for p, item in enumerate(problems)
        )
    else:
        suite = existing
        _keep_missing_sources(session, suite, problems, digest)
    if activate:
        activate_suite(session, suite.id or 0)
    session.flush()
    return SuiteImport(suite=suite, problems=len(problems), created=created)


def problem_ids_of(raw: bytes) -> list[uuid.UUID]:
    """The ids ``import_suite`` gives the problems of a suite file, in file order (known before import)."""
    digest = hashlib.sha256(raw).hexdigest()
    return [_problem_id(digest, p) for p in range(len(parse_suite_file(raw)))]


def _problem_id(digest: str, position: int) -> uuid.UUID:
    return uuid.uuid5(_PROBLEM_NAMESPACE, f"{digest}:{position}")


def _keep_missing_sources(session: Session, suite: Suite, items: list[dict[str, Any]], digest: str) -> None:
    """Importing a file again stores the whole problems of a suite imported before they were kept."""
    ids = {_problem_id(digest, p): item for p, item in enumerate(items)}
    stmt = select(ProblemSource.problem_id).where(col(ProblemSource.problem_id).in_(list(ids)))
    kept = set(session.exec(stmt))
    present = set(session.exec(select(Problem.id).where(Problem.suite_id == suite.id)))
    missing = [i for i in ids if i in present and i not in kept]
    session.add_all(ProblemSource(problem_id=i, body=ids[i]) for i in missing)


# What a suite file's problem holds for the scorer only: the answer (``reward``, ``reward_*`` such as the
# title embeddings) and the ``voucher`` with its ``price_after_voucher``. Never in a public answer or the
# graph; the validator holding a run reads them (``run_problems``).
PRIVATE_FIELDS = frozenset({"voucher"})


def is_answer_field(name: str) -> bool:
    """A suite file's answer fields (``reward``, ``reward_*``, ``voucher``): for scorers, never served."""
    return name == "reward" or name.startswith("reward_") or name in PRIVATE_FIELDS


def served_metadata(problem: Problem) -> dict[str, Any] | None:
    """The problem's other suite-file fields as anyone may read them: everything but its answer."""
    served = {k: v for k, v in (problem.extra or {}).items() if not is_answer_field(k)}
    return served or None


def whole_problems(session: Session, problems: list[Problem]) -> list[tuple[Problem, dict[str, Any]]]:
    """Each problem with its whole suite-file JSON, answers included: for the validator holding a run only.

    A suite imported before whole problems were kept is rebuilt from the columns (everything but the
    title embeddings, which were dropped then); importing its file again restores them."""
    sources = {
        row.problem_id: row.body
        for row in session.exec(
            select(ProblemSource).where(col(ProblemSource.problem_id).in_([p.id for p in problems]))
        )
    }
    out = []
    for problem in problems:
        body = sources.get(problem.id)
        if body is None:
            columns = {"query": problem.query, "title": problem.title}
            columns |= {"category": problem.category, "difficulty": problem.difficulty}
            body = {k: v for k, v in columns.items() if v is not None} | (problem.extra or {})
        out.append((problem, body))
    return out


def _problem_from_item(suite: Suite, position: int, item: dict[str, Any], digest: str) -> Problem:
    extra = {k: v for k, v in item.items() if k not in {"title", "category", "difficulty", "query"}}
    extra.pop("reward_title_embeddings", None)  # large and only needed by scorers: in ProblemSource only
    return Problem(
        id=_problem_id(digest, position),
        suite_id=suite.id or 0,
        position=position,
        title=str(item.get("title") or f"Problem {position + 1}"),
        category=item.get("category"),
        difficulty=item.get("difficulty"),
        query=item["query"],
        extra=extra or None,
    )


@writes
def activate_suite(session: Session, suite_id: int) -> Suite:
    suite = get_suite(session, suite_id)
    session.exec(update(Suite).where(col(Suite.id) != suite_id).values(is_active=False))
    suite.is_active = True
    session.add(suite)
    session.flush()
    return suite


def suite_with_problems(session: Session, suite_id: int) -> tuple[Suite, list[Problem]]:
    """A suite and its problems in suite order (SUITE_NOT_FOUND if it does not exist)."""
    return get_suite(session, suite_id), problems_for_suite(session, suite_id)
