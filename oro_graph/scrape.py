"""The /metrics endpoint: this process's (or every live process's) metrics, then the evaluation pipeline's.

The pipeline's numbers (claims, active leases, lapsed leases, runs by status) are counted with SQL at
scrape time, through ``services.operations``, so every process reports the same values. The metric
objects themselves live in ``observability``, which the database layer may import; this adapter may
not be imported by it.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request

from oro_graph.observability import MULTIPROC_ENV
from oro_graph.services import operations

if TYPE_CHECKING:
    from fastapi import FastAPI

    from oro_graph.runtime import Runtime


class PipelineCollector(Collector):
    """Claims, leases and runs, counted in the database when scraped."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Any]:
        counts = self.runtime.db.call(operations.run_counts)
        yield CounterMetricFamily(
            "oro_claims", "Evaluation runs created by claims, ever.", value=counts.claims
        )
        yield GaugeMetricFamily(
            "oro_active_leases",
            "Runs claimed or running under a lease that has not lapsed.",
            value=counts.active_leases,
        )
        yield GaugeMetricFamily(
            "oro_lapsed_leases",
            "Runs whose lease lapsed and that the next sweep marks STALE.",
            value=counts.lapsed_leases,
        )
        runs = GaugeMetricFamily(
            "oro_runs", "Evaluation runs by status (STALE: validators that vanished).", labels=["status"]
        )
        for status, count in sorted(counts.by_status.items()):
            runs.add_metric([status], count)
        yield runs


def exposition(runtime: Runtime) -> bytes:
    """The text a scrape gets: this process's (or every live process's) metrics, then the pipeline's."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        process = generate_latest(registry)
    else:
        process = generate_latest(REGISTRY)
    pipeline = CollectorRegistry()
    pipeline.register(PipelineCollector(runtime))
    return process + generate_latest(pipeline)


def install_metrics(app: FastAPI, runtime: Runtime) -> None:
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    token = runtime.settings.metrics_token

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if token:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                body = {
                    "detail": "/metrics needs `Authorization: Bearer <ORO_METRICS_TOKEN>`",
                    "error_code": "UNAUTHENTICATED",
                }
                return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        data = await run_in_threadpool(exposition, runtime)
        return Response(data, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
