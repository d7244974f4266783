"""The deep health check: each dependency the server needs, checked for real, named when it fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from oro_graph.models import utcnow
from oro_graph.runtime import Runtime
from oro_graph.services import races


@dataclass
class DeepHealth:
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [name for name, check in self.checks.items() if check["status"] == "fail"]

    def body(self, version: str) -> dict[str, Any]:
        return {"status": "fail" if self.failed else "ok", "version": version, "checks": self.checks}


def _check(health: DeepHealth, name: str, probe: Any) -> None:
    try:
        detail = probe()
    except Exception as exc:  # any failure of a dependency is its check failing, named in the answer
        health.checks[name] = {
            "status": "fail",
            "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
        }
        return
    health.checks[name] = {"status": "ok", **(detail or {})}


def deep_check(runtime: Runtime) -> DeepHealth:
    """Database (a query), Redis (a ping, when configured), the race scheduler (a process holds its
    lease, when enabled) and storage (a lookup of a key). Blocking: run it in a worker thread."""
    health = DeepHealth()
    settings = runtime.settings

    def database() -> dict[str, Any]:
        with runtime.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"backend": "postgresql" if not runtime.db.is_sqlite else "sqlite"}

    def redis() -> dict[str, Any]:
        if runtime.redis is None:
            return {"detail": "not configured (state is per process)"}
        try:
            runtime.redis.ping()
        except Exception as exc:
            raise RuntimeError(
                f"{type(exc).__name__}: {str(exc)[:150]}; meanwhile signed paths keep working: nonces and "
                "rate-limit counters are kept in the database, and the response caches are off"
            ) from exc
        return {}

    def scheduler() -> dict[str, Any]:
        if settings.race_scheduler is False:
            return {"detail": "off (ORO_RACE_SCHEDULER=false)"}
        lease = runtime.db.call(races.scheduler_lease)
        slack = timedelta(seconds=2 * settings.race_scheduler_seconds + 10)
        if lease is None or lease.expires_at + slack < utcnow():
            raise RuntimeError("no server process has driven the race scheduler lately")
        return {"holder": lease.holder, "lease_expires_at": lease.expires_at.isoformat()}

    def storage() -> dict[str, Any]:
        runtime.storage.put("health/probe", b"ok")  # a write and a read, as uploads and downloads need
        if not runtime.storage.exists("health/probe"):
            raise RuntimeError("a key just written is not there")
        return {"backend": settings.storage_backend}

    for name, probe in (
        ("database", database),
        ("redis", redis),
        ("scheduler", scheduler),
        ("storage", storage),
    ):
        _check(health, name, probe)
    return health
