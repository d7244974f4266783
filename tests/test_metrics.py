"""/metrics: counters that move with traffic, bounded labels, the bearer token, several processes, logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from oro_graph import observability
from oro_graph.app import create_app
from oro_graph.runtime import Runtime
from oro_graph.scrape import exposition
from tests.rest.seed import seed
from tests.support.ports import free_port, start_listening

REPO = Path(__file__).resolve().parents[1]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient | httpx.Client, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def label_values(samples: Samples) -> set[str]:
    return {v for _, labels in samples for _, v in labels}


def test_metrics_move_with_traffic(runtime):
    seeded = seed(runtime)
    with TestClient(create_app(runtime=runtime, migrate=False)) as client:
        before = scrape(client)
        # when: the board twice (a miss, then a hit), a version by id, two named operations, a stray path
        for _ in range(2):
            assert client.get("/v1/public/leaderboard").status_code == 200
        assert client.get(f"/v1/public/agent-versions/{seeded.alpha}/status").status_code == 200
        board = "query Board { leaderboard(first: 5) { edges { node { finalScore } } } }"
        assert client.post("/graphql", json={"query": board, "operationName": "Board"}).status_code == 200
        # the same board from the response cache: by POST, by GET, and by GET as a 304
        assert client.post("/graphql", json={"query": board, "operationName": "Board"}).status_code == 200
        url = "/graphql?" + urlencode({"query": board, "operationName": "Board"})
        tagged = client.get(url, headers={"Accept": "application/json"})
        assert tagged.status_code == 200 and tagged.headers["x-cache"] == "hit"
        headers = {"Accept": "application/json", "If-None-Match": tagged.headers["etag"]}
        assert client.get(url, headers=headers).status_code == 304
        anonymous = "{ leaderboard(first: 3) { totalCount } }"
        for _ in range(2):
            assert client.post("/graphql", json={"query": anonymous}).status_code == 200
        secretish = "h" + seeded.alice  # as long as a key: never a label
        query = f"query {secretish} {{ __typename }}"
        assert client.post("/graphql", json={"query": query, "operationName": secretish}).status_code == 200
        assert client.get("/no/such/path").status_code == 404
        after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # then requests count by route template and status, with their latency
    board_route = {"method": "GET", "route": "/v1/public/leaderboard"}
    assert moved("oro_http_requests_total", **board_route, status="200") == 2
    assert moved("oro_http_request_duration_seconds_count", **board_route) == 2
    assert (
        moved(
            "oro_http_requests_total",
            method="GET",
            route="/v1/public/agent-versions/{agent_version_id}/status",
            status="200",
        )
        == 1
    )
    assert moved("oro_http_requests_total", method="GET", route="unmatched", status="404") == 1
    # the cache saw a miss then a hit
    assert moved("oro_response_cache_lookups_total", cache="rest", result="miss") == 1
    assert moved("oro_response_cache_lookups_total", cache="rest", result="hit") == 1
    # operations by name, with their cost; a name as long as a key counts as "other"
    assert moved("oro_graphql_operations_total", operation="Board", type="query", outcome="ok") == 1
    # answers from the cache (a 304 included) are operations too, counted apart, with their cost
    assert moved("oro_graphql_operations_total", operation="Board", type="query", outcome="cached") == 3
    assert moved("oro_graphql_operation_cost_count", operation="Board") == 4
    board_cost = moved("oro_graphql_operation_cost_sum", operation="Board")
    assert board_cost > 0 and board_cost % 4 == 0
    assert moved("oro_graphql_operations_total", operation="anonymous", type="query", outcome="ok") == 1
    assert moved("oro_graphql_operations_total", operation="anonymous", type="query", outcome="cached") == 1
    assert moved("oro_response_cache_lookups_total", cache="graphql", result="hit") == 4
    assert moved("oro_graphql_operations_total", operation="other", type="query", outcome="ok") == 1
    # the pipeline, from the database: three runs claimed, Eve's lease active, two successes
    assert value(after, "oro_claims_total") == 3
    assert value(after, "oro_active_leases") == 1
    assert value(after, "oro_runs", status="SUCCESS") == 2
    assert value(after, "oro_runs", status="STALE") == 0
    # and no raw path, id, hotkey or key-like name became a label
    labels = label_values(after)
    assert not any(str(seeded.alpha) in v or seeded.alice in v or secretish in v for v in labels)
    assert "/no/such/path" not in labels


def test_rate_limit_refusals_are_counted(runtime):
    limited = Runtime.build(runtime.settings.model_copy(update={"rate_limit_per_minute": 3}), db=runtime.db)
    with TestClient(create_app(runtime=limited, migrate=False)) as client:
        before = value(scrape(client), "oro_rate_limit_refusals_total", limit="client")  # 1 of 3
        statuses = [client.get("/health").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = client.get("/metrics")
        assert refused.status_code == 429
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(exposition(limited).decode())
        for s in f.samples
    }
    assert value(samples, "oro_rate_limit_refusals_total", limit="client") - before == 2
    assert value(samples, "oro_http_requests_total", method="GET", route="/health", status="429") >= 1


def _samples(runtime: Runtime) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(exposition(runtime).decode())
        for s in f.samples
    }


def test_a_redis_outage_shows_in_the_metrics_and_the_deep_health_check(runtime):
    # given a server whose Redis does not answer (nothing listens on its port)
    settings = runtime.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    away = Runtime.build(settings, db=runtime.db)
    before = _samples(away)

    # when a request's path finds it unreachable
    client = TestClient(create_app(runtime=away, migrate=False))
    health = client.get("/health")  # its rate-limit point is counted in the database instead
    assert health.status_code == 200 and health.json()["redis"] == "degraded"
    deep = client.get("/health/deep").json()
    during = _samples(away)

    # then the metrics and /health/deep say so, and say what still works
    assert value(during, "oro_redis_degraded") == 1
    assert value(during, "oro_redis_outages_total") - value(before, "oro_redis_outages_total") == 1
    assert deep["checks"]["redis"]["status"] == "fail"
    assert "rate-limit counters are kept in the database" in deep["checks"]["redis"]["detail"]

    # and once Redis answers again, the gauge goes back
    away.redis_link.breaker.succeeded()  # what the next successful call does
    assert value(_samples(away), "oro_redis_degraded") == 0


def test_metrics_token(runtime):
    guarded = Runtime.build(
        runtime.settings.model_copy(update={"metrics_token": "s3cret-token"}), db=runtime.db
    )
    with TestClient(create_app(runtime=guarded, migrate=False)) as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert scrape(client, Authorization="Bearer s3cret-token")
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (
        "ORO_METRICS_TOKEN" in missing.json()["detail"] and missing.json()["error_code"] == "UNAUTHENTICATED"
    )


def test_request_ids(runtime):
    with TestClient(create_app(runtime=runtime, migrate=False)) as client:
        given = client.get("/health", headers={"X-Request-Id": "trace-me.1"})
        unsafe = client.get("/health", headers={"X-Request-Id": "no spaces\tor tabs"})
        none = client.get("/health")
    assert given.headers["x-request-id"] == "trace-me.1"
    assert (
        len(unsafe.headers["x-request-id"]) == 32
        and unsafe.headers["x-request-id"] != none.headers["x-request-id"]
    )


def test_tracing_is_off_unless_otel_variables_ask():
    assert not observability.tracing_requested({})
    assert not observability.tracing_requested({"OTEL_TRACES_EXPORTER": "none"})
    assert observability.tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not observability.tracing_requested(
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
    )


# OpenTelemetry's tracer provider and instrumentations are process-wide and set once: one database.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tracing_spans_requests_and_sql(runtime):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    app = create_app(runtime=runtime, migrate=False)
    assert observability.install_tracing(app, runtime, exporter=exporter)
    seed(runtime)
    with TestClient(app) as client:
        assert client.get("/v1/public/leaderboard").status_code == 200
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert any("/v1/public/leaderboard" in n for n in names), names
    assert any(s.attributes and "db.statement" in s.attributes for s in spans), names


def test_json_formatter_carries_the_request_id():
    import logging

    token = observability.request_id.set("abc123")
    try:
        record = logging.LogRecord("oro_graph.x", logging.WARNING, __file__, 1, "hello %s", ("there",), None)
        record.route = "/health"
        line = json.loads(observability.JsonFormatter().format(record))
    finally:
        observability.request_id.reset(token)
    assert line["message"] == "hello there" and line["request_id"] == "abc123" and line["route"] == "/health"
    assert line["level"] == "WARNING" and line["time"].endswith("Z")


class Workers:
    """``oro-graph serve --workers 2`` in its own process group."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.tmp_path = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ORO_", "PROMETHEUS_"))}
        self.env.update(
            {
                "ORO_DATABASE_URL": f"sqlite:///{tmp_path / 'workers.db'}",
                "ORO_DATA_DIR": str(tmp_path / "state"),
                "ORO_RATE_LIMIT_PER_MINUTE": "100000",
                "ORO_SECRET_KEY": "workers",
                "PYTHONUNBUFFERED": "1",
                **env,
            }
        )

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        self.log = self.tmp_path / f"serve-{port}.log"
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "oro_graph", "serve", "--workers", "2", "--port", str(port)],
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def __enter__(self) -> Workers:
        self.proc, self.port = start_listening(self._launch)
        self.base_url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base_url + "/health", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve --workers 2 did not start:\n{self.log.read_text()}")

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.mark.slow
def test_metrics_add_up_across_worker_processes(tmp_path):
    route = {"method": "GET", "route": "/v1/public/suites/current"}
    with Workers(tmp_path, ORO_LOG_FORMAT="json") as server:
        # when 40 requests arrive on fresh connections, spread over both workers by the kernel
        for i in range(40):
            httpx.get(server.base_url + "/v1/public/suites/current", headers={"X-Request-Id": f"req-{i}"})
        # then any worker's scrape counts all 40
        for _ in range(6):
            with httpx.Client(base_url=server.base_url) as client:
                samples = scrape(client)
            assert value(samples, "oro_http_requests_total", **route, status="404") == 40  # no suite yet
        files = list((tmp_path / "state" / "prometheus").glob("counter_*.db"))
        assert len({f.stem.split("_")[-1] for f in files}) == 2, files  # both processes counted something
    # and the JSON log has one line per request, with the request id the caller gave
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    access = [
        line for line in lines if line["logger"] == "oro_graph.access" and line["route"] == route["route"]
    ]
    assert sorted(line["request_id"] for line in access) == sorted(f"req-{i}" for i in range(40))
    assert {line["status"] for line in access} == {404}
    # and a restart starts from zero: the directory is emptied before the workers start
    with Workers(tmp_path) as server, httpx.Client(base_url=server.base_url) as client:
        assert value(scrape(client), "oro_http_requests_total", **route, status="404") == 0


def test_a_forked_child_counts_in_a_file_of_its_own(tmp_path):
    """The metric values keep the process id instead of asking for it on every change; a fork still
    gives the child files of its own (the id is refreshed in the child), so nothing is counted twice."""
    script = """
import os
from oro_graph import observability
observability.HTTP_REQUESTS.labels("GET", "/x", "200").inc()
child = os.fork()
if child == 0:
    observability.HTTP_REQUESTS.labels("GET", "/x", "200").inc(5)
    os._exit(0)
os.waitpid(child, 0)
print(os.getpid(), child)
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    parent, child = done.stdout.split()
    files = {f.stem.split("_")[-1] for f in tmp_path.glob("counter_*.db")}
    assert files == {parent, child}
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    assert (
        registry.get_sample_value(
            "oro_http_requests_total", {"method": "GET", "route": "/x", "status": "200"}
        )
        == 6
    )
