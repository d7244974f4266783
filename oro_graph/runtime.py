"""The long-lived parts of one server process, built once from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oro_graph import dataversion
from oro_graph.auth import MemoryNonceStore, NonceStore, RedisNonceStore, SignatureVerifier
from oro_graph.dataversion import DataVersion
from oro_graph.db import Database
from oro_graph.notify import Notifier
from oro_graph.ratelimit import RateLimits
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
    parser: SourceParser = field(default_factory=SourceParser)  # agent files, parsed in worker processes
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, db: Database | None = None) -> Runtime:
        _ = settings.secret  # generate or read the key file now, not later inside a request
        redis_client = None
        nonces: NonceStore
        if settings.redis_url:
            import redis

            redis_client = redis.Redis.from_url(
                settings.redis_url, socket_timeout=2, socket_connect_timeout=2
            )
            nonces = RedisNonceStore(redis_client)
        else:
            nonces = MemoryNonceStore()
        database = db or Database(settings)
        version = DataVersion(dataversion.redis_client(settings.redis_url) if settings.redis_url else None)
        database.on_write.append(version.bump)
        return cls(
            settings=settings,
            db=database,
            data_version=version,
            rate_limits=RateLimits.from_settings(settings),
            parser=SourceParser.from_settings(settings),
            storage=make_storage(settings),
            verifier=SignatureVerifier(settings.timestamp_skew_seconds, nonces),
            redis=redis_client,
        )

    def close(self) -> None:
        self.db.dispose()
        self.parser.close()
        self.data_version.close()
        if self.redis is not None:
            self.redis.close()
