"""`oro-graph mirror --from URL`: copy a server's public data through the official client oro-sdk.

Any server that speaks the documented /v1/public paths works (the real ORO API or another
oro-graph). Every write goes through ``services.mirror`` (idempotent upserts, one transaction per
version), and versions already mirrored in a final state are not fetched again, so a second run
only adds what is new.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from oro_graph.db import Database
from oro_graph.models import utcnow
from oro_graph.services import mirror as svc

_AGENT_NS = uuid.UUID("0b4c1c57-3a57-4b8e-9a58-7f2b2f6b8d11")
PAGE = 100


class MirrorError(RuntimeError):
    pass


def _client(url: str) -> Any:
    try:
        from oro_sdk import Client
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MirrorError("mirroring needs the official client: pip install 'oro-graph[mirror]'") from exc
    return Client(base_url=url.rstrip("/"), raise_on_unexpected_status=True, timeout=30.0)


def _ok(value: Any, what: str) -> Any:
    from oro_sdk.types import Unset

    if value is None or isinstance(value, Unset) or (hasattr(value, "error_code") and hasattr(value, "detail")):
        detail = getattr(value, "detail", "no answer")
        raise MirrorError(f"{what}: {detail}")
    return value


def _opt(value: Any) -> Any:
    from oro_sdk.types import Unset

    return None if isinstance(value, Unset) else value


def mirror(
    db: Database,
    url: str,
    *,
    suite_id: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> svc.MirrorCounts:
    """Pull suites, problems, validators, versions with their runs and per-problem results, and the top agent.

    Each version is written in its own transaction: an interrupted run keeps what it finished
    and the next run resumes from there.
    """
    import httpx
    from oro_sdk.errors import UnexpectedStatus

    try:
        return _mirror(db, url, suite_id=suite_id, progress=progress)
    except httpx.HTTPError as exc:
        raise MirrorError(f"could not reach {url}: {exc}") from exc
    except UnexpectedStatus as exc:
        raise MirrorError(f"{url} answered HTTP {exc.status_code}; is it an ORO API?") from exc


def _mirror(
    db: Database,
    url: str,
    *,
    suite_id: int | None,
    progress: Callable[[str, int, int], None] | None,
) -> svc.MirrorCounts:
    from oro_sdk.api.public import (
        get_agent_version,
        get_agent_version_problems,
        get_agent_version_runs,
        get_agent_version_status,
        get_current_suite,
        get_leaderboard,
        get_pending_evaluations,
        get_running_evaluations,
        get_suite_problems,
        get_top_agent,
        get_validators,
    )

    client = _client(url)
    report = progress or (lambda stage, done, total: None)
    counts = svc.MirrorCounts()

    if suite_id is None:
        suite_id = _ok(get_current_suite.sync(client=client), "current suite").suite_id
    bundle = _ok(get_suite_problems.sync(suite_id, client=client), f"suite {suite_id}")
    s = bundle.suite
    suite = svc.SuiteRecord(
        id=s.suite_id,
        version=s.suite_version,
        is_active=s.is_active,
        execution_kind=str(_opt(s.execution_kind) or "legacy_shoppingbench"),
        benchmark_name=_opt(s.benchmark_name),
        benchmark_number=_opt(s.benchmark_number),
    )
    problems = [
        svc.ProblemRecord(id=p.problem_id, suite_id=p.suite_id, position=i, metadata=dict(_opt(p.metadata).to_dict()) if _opt(p.metadata) else {})
        for i, p in enumerate(bundle.problems)
    ]
    counts.merge(db.call(svc.upsert_suite, suite, problems))
    report("suite", 1, 1)

    validators = _ok(get_validators.sync(client=client), "validators")
    counts.merge(db.call(svc.upsert_validators, [(v.hotkey, _opt(v.name), v.registered_at) for v in validators]))

    eligible: dict[uuid.UUID, Any] = {entry.agent_version_id: entry for entry in _leaderboard(get_leaderboard, client, suite_id)}
    others: set[uuid.UUID] = set()
    pending = _ok(get_pending_evaluations.sync(client=client, suite_id=suite_id, limit=500), "pending evaluations")
    others.update(item.agent_version_id for item in pending.items)
    running = _ok(get_running_evaluations.sync(client=client), "running evaluations")
    others.update(r.agent_version_id for r in running)
    wanted = list(eligible) + sorted(others - set(eligible), key=str)
    done_already = db.call(svc.known_final_versions, wanted)
    todo = [v for v in wanted if v not in done_already]
    for index, version_id in enumerate(todo, 1):
        status = _ok(get_agent_version_status.sync(version_id, client=client), f"version {version_id}")
        detail = get_agent_version.sync(version_id, client=client)
        agent_id = getattr(detail, "agent_id", None) or uuid.uuid5(_AGENT_NS, f"{status.miner_hotkey}:{status.agent_name}")
        entry = eligible.get(version_id)
        record = svc.VersionRecord(
            id=version_id,
            agent_id=agent_id,
            agent_name=status.agent_name,
            miner_hotkey=status.miner_hotkey,
            version_number=status.version_number,
            suite_id=_opt(status.suite_id) or suite_id,
            state=str(status.state),
            submitted_at=status.submitted_at,
            eligible_at=_opt(entry.eligible_at) if entry is not None else None,
            final_score=_opt(status.final_score),
            required_successes=_opt(status.required_successes),
        )
        runs = [_run(r) for r in _ok(get_agent_version_runs.sync(version_id, client=client), f"runs of {version_id}")]
        matrix = _ok(get_agent_version_problems.sync(version_id, client=client), f"problems of {version_id}")
        run_ids = {r.id for r in runs}
        results = [
            svc.ResultRecord(
                run_id=vr.eval_run_id,
                problem_id=p.problem_id,
                status=str(vr.status),
                score=_opt(vr.score),
                reasoning_score=_opt(vr.reasoning_score),
                execution_time=_opt(vr.execution_time),
                inference_failure_count=_opt(vr.inference_failure_count),
                inference_total=_opt(vr.inference_total),
                updated_at=_opt(vr.updated_at),
            )
            for p in matrix.problems
            for vr in (_opt(p.validator_results) or [])
            if vr.eval_run_id in run_ids
        ]
        counts.merge(db.call(svc.upsert_version, record, runs, results))
        report("versions", index, len(todo))

    top = get_top_agent.sync(client=client)
    if top is not None and _opt(top.top_agent_version_id) and _opt(top.top_score) is not None:
        if top.top_agent_version_id in eligible or db.call(svc.known_final_versions, [top.top_agent_version_id]):
            counts.merge(db.call(svc.record_top, suite_id, top.top_agent_version_id, top.top_score, utcnow()))
    return counts


def _leaderboard(endpoint: Any, client: Any, suite_id: int) -> Iterator[Any]:
    offset = 0
    while True:
        page = _ok(endpoint.sync(client=client, suite_id=suite_id, limit=PAGE, offset=offset), "leaderboard")
        yield from page.entries
        offset += len(page.entries)
        if not page.entries or offset >= page.total:
            return


def _run(r: Any) -> svc.RunRecord:
    return svc.RunRecord(
        id=r.eval_run_id,
        agent_version_id=r.agent_version_id,
        suite_id=r.suite_id,
        validator_hotkey=r.validator_hotkey,
        status=str(r.status),
        claimed_at=r.claimed_at,
        lease_expires_at=r.lease_expires_at,
        is_included=r.is_included,
        last_heartbeat_at=_opt(r.last_heartbeat_at),
        completed_at=_opt(r.completed_at),
        validator_score=_opt(r.validator_score),
        failure_reason=_opt(r.failure_reason),
        inference_failure_count=_opt(r.inference_failure_count),
        inference_total=_opt(r.inference_total),
    )
