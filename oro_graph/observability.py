"""What operators see: Prometheus metrics at /metrics, request ids, JSON logs and optional tracing.

Metrics are ``prometheus_client`` objects of this module. With several server processes
(``oro-graph serve --workers N``), ``PROMETHEUS_MULTIPROC_DIR`` names a directory where each process
keeps its values; ``serve`` empties it before the workers start, a worker marks itself dead when it
stops, and a scrape (answered by any worker) adds them all up. The evaluation pipeline's numbers
(claims, active leases, lapsed leases, runs by status) are counted with SQL at scrape time, so
every process reports the same values.

Label values are bounded: routes are templates (``/v1/public/agents/{agent_version_id}``), never
raw paths; GraphQL operation names are kept for the first ``MAX_OPERATION_NAMES`` distinct names
a process sees and count as ``other`` after that (as do names too long to be a readable name, so a
key sent as an operation name does not become a label).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from oro_graph.runtime import Runtime
    from oro_graph.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_OPERATION_NAMES = 100
MAX_OPERATION_NAME_CHARS = 40
REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")  # it goes into log lines: nothing else is taken
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _values_knowing_their_pid() -> None:
    """With several processes, each metric value asks ``os.getpid()`` (a system call) on every change,
    to notice a fork; an answer from the cache changes several, a twentieth of its server time in a profile.
    Here the process id is kept and refreshed in the child of every fork (``os.register_at_fork``),
    which is what the check was for. Metrics made before this (none of ours) keep the default."""
    if not os.environ.get(MULTIPROC_ENV):
        return
    pid = [os.getpid()]
    os.register_at_fork(after_in_child=lambda: pid.__setitem__(0, os.getpid()))
    values.ValueClass = values.MultiProcessValue(lambda: pid[0])


_values_knowing_their_pid()

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("oro_request_id", default="-")
log = logging.getLogger("oro_graph.observability")
access_log = logging.getLogger("oro_graph.access")

HTTP_REQUESTS = Counter(
    "oro_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "oro_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of the body; a stream's whole life), by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
GRAPHQL_OPERATIONS = Counter(
    "oro_graphql_operations",
    "GraphQL operations answered, by operation name (capped; the rest are 'other'), type and outcome "
    "(ok, error, refused before execution, or cached: answered from the response cache without "
    "executing, a 304 Not Modified included).",
    ["operation", "type", "outcome"],
)
GRAPHQL_COST = Histogram(
    "oro_graphql_operation_cost",
    "Static cost of GraphQL operations (what `dryRun` reports), by operation name; cached answers too.",
    ["operation"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000),
)
CACHE_LOOKUPS = Counter(
    "oro_response_cache_lookups",
    "Response cache lookups, by cache (graphql, rest) and result.",
    ["cache", "result"],
)
RATE_LIMIT_REFUSALS = Counter(
    "oro_rate_limit_refusals",
    "Requests refused by a rate limit (client: per address; submit: per hotkey).",
    ["limit"],
)
SUBSCRIPTIONS = Gauge(
    "oro_subscriptions_active",
    "Subscriptions open now (graphql-transport-ws and server-sent events), by field.",
    ["field"],
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS_OPENED = Counter("oro_subscriptions_opened", "Subscriptions started, by field.", ["field"])
REDIS_DEGRADED = Gauge(
    "oro_redis_degraded",
    "1 while a server process finds Redis unreachable and keeps its rate-limit counters in the database "
    "(with no response cache) until Redis answers again; 0 otherwise, or without Redis.",
    multiprocess_mode="livemax",
)
REDIS_OUTAGES = Counter(
    "oro_redis_outages", "Times a server process found Redis unreachable and moved to the database."
)

_operation_names: set[str] = set()
_names_lock = threading.Lock()


def operation_label(name: str | None) -> str:
    """A bounded label for a client-chosen operation name."""
    if not name:
        return "anonymous"
    if name in _operation_names:
        return name
    if len(name) > MAX_OPERATION_NAME_CHARS or not _NAME.match(name):
        return "other"
    with _names_lock:
        if len(_operation_names) >= MAX_OPERATION_NAMES:
            return "other"
        _operation_names.add(name)
    return name


def record_operation(name: str | None, kind: str, outcome: str, cost: int | None) -> None:
    label = operation_label(name)
    GRAPHQL_OPERATIONS.labels(label, kind, outcome).inc()
    if cost is not None:
        GRAPHQL_COST.labels(label).observe(cost)


# --- multiprocess ---------------------------------------------------------------------------------


def prepare_multiprocess_dir(state_dir: Path) -> Path:
    """Called by ``serve`` before its workers start: the directory named by PROMETHEUS_MULTIPROC_DIR
    (a ``prometheus`` folder in the state directory unless set), emptied of an earlier run's files."""
    path = Path(os.environ.get(MULTIPROC_ENV) or state_dir / "prometheus")
    if path.exists():
        for child in path.iterdir():
            if child.is_file() and child.suffix == ".db":
                child.unlink()
            elif child.is_dir():
                shutil.rmtree(child)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def mark_process_dead() -> None:
    """A worker stopping: its live gauges (open subscriptions) no longer count."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())


# --- requests -------------------------------------------------------------------------------------


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        if hasattr(route, "effective_candidates"):  # FastAPI's included routers
            yield from _routes(route.effective_candidates())
        else:
            yield route


def route_table(app: Any) -> list[tuple[re.Pattern[str], str]]:
    """(regex, template) of every HTTP route of ``app``, in routing order."""
    table = []
    for route in _routes(getattr(app, "routes", ())):
        path = getattr(route, "path", "")
        if isinstance(path, str) and path.startswith("/"):
            table.append((compile_path(path)[0], path))
    return table


def route_template(table: list[tuple[re.Pattern[str], str]], path: str) -> str:
    """The template of the route ``path`` goes to ("unmatched" if none): a bounded label."""
    for regex, template in table:
        if regex.match(path):
            return template
    return "unmatched"


class RequestObserver:
    """Outermost middleware: a request id for every request (the caller's ``X-Request-Id`` when it is
    safe to log, else a new one, echoed in the answer), then the request counter and latency."""

    def __init__(self, app: ASGIApp, *, router: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.router = router
        self.access_log = access_log
        self._table: list[tuple[re.Pattern[str], str]] | None = None
        # The metrics' children by label values: routes are templates, so these stay small.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        given = next((v for k, v in headers if k == REQUEST_ID_HEADER), b"")
        if _SAFE_REQUEST_ID.match(given):
            rid = given.decode()
        else:
            rid = uuid.uuid4().hex
            headers = [(k, v) for k, v in headers if k != REQUEST_ID_HEADER] + [
                (REQUEST_ID_HEADER, rid.encode())
            ]
            scope = {**scope, "headers": headers}
        token = request_id.set(rid)
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                request_id.reset(token)
            return
        status = 500
        started = time.perf_counter()

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (REQUEST_ID_HEADER, rid.encode())],
                }
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            if self._table is None:  # routes are all added by the time the first request arrives
                self._table = route_table(self.router)
            route = route_template(self._table, scope["path"])
            counted = self._counters.get((method, route, status))
            if counted is None:  # labels() costs a lock and a tuple of strings: keep each child once
                counted = self._counters[(method, route, status)] = HTTP_REQUESTS.labels(
                    method, route, str(status)
                )
            counted.inc()
            timed = self._timers.get((method, route))
            if timed is None:
                timed = self._timers[(method, route)] = HTTP_LATENCY.labels(method, route)
            timed.observe(elapsed)
            if self.access_log:
                access_log.info(
                    "%s %s %d",
                    method,
                    route,
                    status,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    },
                )
            request_id.reset(token)


# --- logs -----------------------------------------------------------------------------------------

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


JsonFormatter.converter = time.gmtime


def log_config(settings: Settings) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for ORO_LOG_FORMAT=json (None: uvicorn's own text logs)."""
    if settings.log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "oro_graph.observability.JsonFormatter"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


# --- tracing --------------------------------------------------------------------------------------

_TRACING_ENV = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").lower()
    return exporter not in ("", "none") or any(environ.get(name) for name in _TRACING_ENV[1:])


def install_tracing(app: FastAPI, runtime: Runtime, *, exporter: Any | None = None) -> bool:
    """OpenTelemetry spans for requests (FastAPI) and SQL (SQLAlchemy), when the standard OTEL_*
    variables ask for them (``OTEL_TRACES_EXPORTER=otlp|console``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_SERVICE_NAME``, ...). Needs ``pip install 'oro-graph[tracing]'``; says so when missing."""
    if exporter is None and not tracing_requested():
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        log.warning("OTEL_* asks for tracing, which needs `pip install 'oro-graph[tracing]'`; tracing is off")
        return False
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first app of this process sets it up
        provider = TracerProvider(
            resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "oro-graph")})
        )
        trace.set_tracer_provider(provider)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTLP export needs `pip install 'oro-graph[tracing]'`; tracing is off")
            return False
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="/metrics,/health")
    SQLAlchemyInstrumentor().instrument(engine=runtime.db.engine, tracer_provider=provider)
    return True
