"""`oro-graph mirror --from URL`: copy a server's public data through the official client oro-sdk.

Any server that speaks the documented /v1/public paths works (the real ORO API or another
oro-graph). Every write goes through ``services.mirror`` (idempotent upserts, one transaction per
version), and versions already mirrored in a final state are not fetched again, so a second run
(or a run after an interrupted one) only fetches what is new or still changing.

Servers limit requests per client address (the ORO API and oro-graph: 100 per minute). The mirror
stays under the limit: it spreads the budget a server announces (``X-RateLimit-Remaining`` over
``X-RateLimit-Reset``) across the time left, and without those headers keeps to a fixed pace
(``--rate``, 90 per minute by default). A 429 or 503 anyway is retried after the server's
``Retry-After``, through oro-sdk's own ``RetryTransport``.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from oro_graph.db import Database
from oro_graph.models import utcnow
from oro_graph.services import mirror as svc

_AGENT_NS = uuid.UUID("0b4c1c57-3a57-4b8e-9a58-7f2b2f6b8d11")
PAGE = 100
DEFAULT_RATE = "90/minute"  # under the 100 per minute the ORO API and oro-graph allow one address
MAX_RETRIES = 8  # per request, on 429/502/503/504 and connection errors
MAX_WAIT_SECONDS = 300.0  # longest single wait for a Retry-After


class MirrorError(RuntimeError):
    pass


_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


def parse_rate(text: str) -> float:
    """``"90/minute"`` -> seconds between two requests (1/s, 2/second and 500/hour work too)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(second|minute|hour)s?\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise MirrorError(f"--rate {text!r}: expected requests per unit, such as 90/minute or 2/second")
    per = _UNITS[match.group(3)] * (int(match.group(2)) if match.group(2) else 1)
    return per / float(match.group(1))


Wait = Callable[[float, str], None]


@dataclass
class Traffic:
    """What the mirror asked of the source: requests sent and seconds spent waiting for its limits."""

    requests: int = 0
    retries: int = 0
    waited_seconds: float = 0.0


def _header_float(response: httpx.Response, name: str) -> float | None:
    try:
        value = float(response.headers[name])
    except (KeyError, ValueError):
        return None
    return value if value >= 0 else None


class PacedTransport(httpx.BaseTransport):
    """Spaces requests so a client stays under a server's rate limit.

    When the server announces its budget (``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``, the
    latter in seconds or as a Unix time), the requests left are spread over the time until the
    reset, and none is sent while nothing remains. Otherwise requests keep ``interval`` seconds
    apart; an ``interval`` given explicitly is kept even when the server announces more.
    """

    def __init__(
        self,
        wrapped: httpx.BaseTransport,
        *,
        interval: float,
        explicit: bool = False,
        on_wait: Wait | None = None,
        traffic: Traffic | None = None,
    ) -> None:
        self._wrapped = wrapped
        self._interval = interval
        self._explicit = explicit
        self._on_wait = on_wait or (lambda seconds, why: None)
        self.traffic = traffic or Traffic()
        self._next_at = 0.0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            delay = self._next_at - time.monotonic()
            if delay > 0:
                if delay >= 2:  # short gaps are the pace itself; say so only when it is a real pause
                    self._on_wait(delay, "the source's rate limit is used up; pausing")
                self.traffic.waited_seconds += delay
                time.sleep(delay)
            response = self._wrapped.handle_request(request)
            self.traffic.requests += 1
            self._next_at = time.monotonic() + self._gap(response)
            return response

    def _gap(self, response: httpx.Response) -> float:
        remaining = _header_float(response, "x-ratelimit-remaining")
        reset = _header_float(response, "x-ratelimit-reset")
        if remaining is None or reset is None:
            return self._interval
        if reset > 1_000_000_000:  # a Unix time rather than a number of seconds
            reset = max(0.0, reset - time.time())
        announced = reset + 0.5 if remaining < 1 else reset / (remaining + 1)
        return max(announced, self._interval) if self._explicit else announced

    def close(self) -> None:
        self._wrapped.close()


def _client(
    url: str, *, rate: str | None = None, on_wait: Wait | None = None, traffic: Traffic | None = None
) -> Any:
    try:
        from oro_sdk import Client
        from oro_sdk.retry import RetryConfig, RetryContext, RetryTransport
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MirrorError("mirroring needs the official client: pip install 'oro-graph[mirror]'") from exc
    traffic = traffic or Traffic()
    report = on_wait or (lambda seconds, why: None)

    def retrying(ctx: RetryContext) -> None:
        traffic.retries += 1
        traffic.waited_seconds += ctx.delay_s
        if ctx.status_code is None:
            why = f"could not reach the source; retry {ctx.attempt} of {MAX_RETRIES}"
        elif ctx.retry_after_s is not None:
            why = f"the source answered HTTP {ctx.status_code} with Retry-After: {ctx.retry_after_s:g} s"
        else:
            why = f"the source answered HTTP {ctx.status_code}; retry {ctx.attempt} of {MAX_RETRIES}"
        report(ctx.delay_s, why)

    paced = PacedTransport(
        httpx.HTTPTransport(),
        interval=parse_rate(rate or DEFAULT_RATE),
        explicit=rate is not None,
        on_wait=report,
        traffic=traffic,
    )
    config = RetryConfig(max_retries=MAX_RETRIES, max_delay_s=MAX_WAIT_SECONDS, on_retry=retrying)
    return Client(
        base_url=url.rstrip("/"),
        raise_on_unexpected_status=True,
        timeout=30.0,
        httpx_args={"transport": RetryTransport(config, paced)},
    )


def _ok(value: Any, what: str) -> Any:
    from oro_sdk.types import Unset

    if (
        value is None
        or isinstance(value, Unset)
        or (hasattr(value, "error_code") and hasattr(value, "detail"))
    ):
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
    rate: str | None = None,
    on_wait: Wait | None = None,
    traffic: Traffic | None = None,
) -> svc.MirrorCounts:
    """Pull suites, problems, validators, versions with their runs and per-problem results, and the top agent.

    Each version is written in its own transaction: an interrupted run keeps what it finished
    and the next run resumes from there. ``rate`` ("90/minute") caps the pace when the source
    announces no budget; ``on_wait(seconds, why)`` hears of each pause for the source's limits and
    ``traffic`` counts requests, retries and time waited.
    """
    from oro_sdk.errors import UnexpectedStatus

    client = _client(url, rate=rate, on_wait=on_wait, traffic=traffic)
    try:
        with client:  # its connections are closed when the mirror is done, not left to the collector
            return _mirror(db, client, suite_id=suite_id, progress=progress)
    except httpx.HTTPError as exc:
        raise MirrorError(f"could not reach {url}: {exc}") from exc
    except UnexpectedStatus as exc:
        if exc.status_code in (429, 503):
            raise MirrorError(
                f"{url} still answered HTTP {exc.status_code} after {MAX_RETRIES} retries; "
                "try again later or with a slower --rate (what is mirrored so far is kept)"
            ) from exc
        raise MirrorError(f"{url} answered HTTP {exc.status_code}; is it an ORO API?") from exc


def _mirror(
    db: Database,
    client: Any,
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
        svc.ProblemRecord(
            id=p.problem_id,
            suite_id=p.suite_id,
            position=i,
            metadata=dict(_opt(p.metadata).to_dict()) if _opt(p.metadata) else {},
        )
        for i, p in enumerate(bundle.problems)
    ]
    counts.merge(db.call(svc.upsert_suite, suite, problems))
    report("suite", 1, 1)

    validators = _ok(get_validators.sync(client=client), "validators")
    counts.merge(
        db.call(svc.upsert_validators, [(v.hotkey, _opt(v.name), v.registered_at) for v in validators])
    )

    eligible: dict[uuid.UUID, Any] = {
        entry.agent_version_id: entry for entry in _leaderboard(get_leaderboard, client, suite_id)
    }
    others: set[uuid.UUID] = set()
    pending = _ok(
        get_pending_evaluations.sync(client=client, suite_id=suite_id, limit=500), "pending evaluations"
    )
    others.update(item.agent_version_id for item in pending.items)
    running = _ok(get_running_evaluations.sync(client=client), "running evaluations")
    others.update(r.agent_version_id for r in running)
    wanted = list(eligible) + sorted(others - set(eligible), key=str)
    done_already = db.call(svc.known_final_versions, wanted)
    todo = [v for v in wanted if v not in done_already]
    for index, version_id in enumerate(todo, 1):
        status = _ok(get_agent_version_status.sync(version_id, client=client), f"version {version_id}")
        detail = get_agent_version.sync(version_id, client=client)
        agent_id = getattr(detail, "agent_id", None) or uuid.uuid5(
            _AGENT_NS, f"{status.miner_hotkey}:{status.agent_name}"
        )
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
        runs = [
            _run(r)
            for r in _ok(get_agent_version_runs.sync(version_id, client=client), f"runs of {version_id}")
        ]
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
        if top.top_agent_version_id in eligible or db.call(
            svc.known_final_versions, [top.top_agent_version_id]
        ):
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
