"""The long-lived parts of one server process, built once from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oro_graph.auth import DatabaseNonceStore, MemoryNonceStore, NonceStore, SignatureVerifier
from oro_graph.dataversion import DataVersion
from oro_graph.db import Database
from oro_graph.edge import ratelimit
from oro_graph.edge.ratelimit import RateLimits
from oro_graph.edge.ratestore import DatabaseStorage, FailoverStorage, redis_storage
from oro_graph.notify import Notifier
from oro_graph.redislink import Breaker, RedisLink
from oro_graph.services.providers import Inference
from oro_graph.settings import Settings
from oro_graph.sourcecheck import SourceParser
from oro_graph.storage import Storage, make_storage


@dataclass
class Runtime:
    settings: Settings
    db: Database
    storage: Storage
    verifier: SignatureVerifier
    redis: Any | None = None
    notifier: Notifier = field(default_factory=Notifier)
    data_version: DataVersion = field(default_factory=DataVersion)
    rate_limits: RateLimits | None = None
    inference: Inference | None = None  # the inference provider's client and circuit breaker
    # The process's view of Redis: one breaker for every use of it (None without ORO_REDIS_URL).
    redis_link: RedisLink | None = None
    parser: SourceParser = field(default_factory=SourceParser)  # agent files, parsed in worker processes

    @classmethod
    def build(cls, settings: Settings, *, db: Database | None = None) -> Runtime:
        _ = settings.secret  # generate or read the key file now, not later inside a request
        database = db or Database(settings)
        redis_client = None
        link = None
        nonces: NonceStore
        limits_storage = None
        if settings.redis_url:
            import redis

            # A plain client, kept for callers outside a request's path; every use on a request's
            # path goes through ``redis_link`` (short timeouts, one breaker for the process).
            redis_client = redis.Redis.from_url(
                settings.redis_url, socket_timeout=2, socket_connect_timeout=2
            )
            breaker = Breaker(settings.redis_retry_seconds, metered=True)
            link = RedisLink.from_url(
                settings.redis_url, timeout=settings.redis_timeout_seconds, breaker=breaker
            )
            limits_storage = FailoverStorage(
                redis_storage(
                    settings.redis_url,
                    timeout=settings.redis_timeout_seconds,
                    key_prefix=ratelimit.KEY_PREFIX,  # read now: tests give each their own
                ),
                DatabaseStorage(database),
                breaker,
            )
        if settings.redis_url or settings.workers > 1:
            nonces = DatabaseNonceStore(database)  # shared by the processes, and survives any restart
        else:
            nonces = MemoryNonceStore()  # one process, nothing to share
        version = DataVersion(link)
        database.on_write.append(version.bump)
        return cls(
            settings=settings,
            db=database,
            data_version=version,
            rate_limits=RateLimits.from_settings(settings, limits_storage),
            parser=SourceParser.from_settings(settings),
            storage=make_storage(settings),
            verifier=SignatureVerifier(settings.timestamp_skew_seconds, nonces),
            redis=redis_client,
            inference=Inference(settings, redis_client),
            redis_link=link,
        )

    def redis_state(self) -> str:
        """For /health: "ok", "degraded" (unreachable: counters in the database, no response cache
        for now) or "off" (no ORO_REDIS_URL)."""
        if self.redis_link is None:
            return "off"
        return "degraded" if self.redis_link.breaker.is_open else "ok"

    def close(self) -> None:
        if self.inference is not None:
            self.inference.close()
        self.db.dispose()
        self.parser.close()
        self.data_version.close()  # closes the link's client
        if self.redis is not None:
            self.redis.close()
