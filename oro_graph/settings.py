"""Configuration: one ``Settings`` object read from ``ORO_*`` environment variables."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./oro_graph.db"


@dataclass(frozen=True)
class GraphQLLimits:
    """The graph's per-request budgets (``ORO_GRAPHQL_MAX_*``), judged at the edge (``oro_graph.edge``)."""

    max_cost: int = 25_000
    max_depth: int = 15
    max_aliases: int = 30
    max_tokens: int = 2_000  # the project's clients send at most 183 (introspection)
    max_document_chars: int = 32_768
    max_fields: int = 1_000  # field selections, fragments expanded
    max_repeated_pairs: int = 1_000  # pairs of fields at one response path
    max_batch: int = 10


# What the committed SDL states (schema.graphql must not change with the environment).
DEFAULT_GRAPHQL_LIMITS = GraphQLLimits()


class Settings(BaseSettings):
    """Every knob of the server. Bad values fail at start with the variable's name."""

    model_config = SettingsConfigDict(env_prefix="ORO_", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # Redis trouble costs one timeout: after a failure, Redis is left alone for redis_retry_seconds
    # (rate-limit counters go to the database meanwhile), then one request tries it again.
    redis_timeout_seconds: float = Field(default=0.5, gt=0, le=30)
    redis_retry_seconds: float = Field(default=5.0, gt=0, le=3600)
    secret_key: str | None = Field(default=None, repr=False)
    public_base_url: str = "http://127.0.0.1:8000"
    data_dir: Path | None = None
    storage_backend: str = "local"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"

    required_successes: int = Field(default=3, ge=1, le=100)
    max_active_runs_per_validator: int = Field(default=1, ge=1, le=1000)
    lease_seconds: int = Field(default=300, ge=1)
    timestamp_skew_seconds: int = Field(default=60, ge=1)
    submission_cooldown_seconds: int = Field(default=43200, ge=0)
    max_agent_bytes: int = Field(default=1_048_576, ge=1)
    # Agent files are parsed in a pool of worker processes, each limited in memory and CPU time, so a
    # hostile file is refused (400 INVALID_FILE) without costing the server process anything.
    agent_parse_workers: int = Field(default=2, ge=1, le=64)
    agent_parse_memory_mb: int = Field(default=512, ge=64)
    agent_parse_cpu_seconds: float = Field(default=5.0, gt=0, le=3600)
    max_upload_bytes: int = Field(default=50 * 1_048_576, ge=1)
    challenge_threshold: float = Field(default=0.0, ge=0.0)
    code_release_delay_seconds: int = Field(default=0, ge=0)
    signed_url_seconds: int = Field(default=900, ge=1)
    lease_sweep_seconds: float = Field(default=15.0, gt=0)
    # The event log behind subscriptions: heartbeats (one per validator every few seconds) are kept
    # this long, a run's other events longer; a resumed subscription replays only what is kept.
    heartbeat_retention_hours: float = Field(default=24.0, gt=0)
    run_event_retention_days: float = Field(default=90.0, gt=0)
    # Points a minute per client (its hotkey when signed, else its address): a REST request is one
    # point, a GraphQL request max(1, ceil(cost / graphql_cost_per_point)).
    rate_limit_per_minute: int = Field(default=100, ge=1)
    graphql_cost_per_point: int = Field(default=500, ge=1)
    # Proxies whose X-Forwarded-For names the client (comma-separated addresses, or "*"). Empty: the
    # socket's peer is the client, so nobody can pick the address its requests are counted under.
    forwarded_allow_ips: str = ""
    submit_rate_limit: str = "1/minute"
    # Per hotkey and signed write (claim, heartbeat, progress, complete, presign, credentials), each.
    write_rate_limit: str = "120/minute"
    graphql_debug: bool = False
    # A GraphQL request (one operation or a whole batch) running longer is stopped and answered
    # TIME_BUDGET_EXCEEDED; each event of a subscription has the same budget (oro_graph/edge/deadline.py).
    graphql_time_budget_seconds: float = Field(default=10.0, gt=0, le=3600)
    # The graph's budgets per operation (``graphql_limits``; each ORO_GRAPHQL_MAX_*), and the browser
    # origins allowed to call /graphql (a JSON list).
    graphql_max_cost: int = Field(default=DEFAULT_GRAPHQL_LIMITS.max_cost, ge=1)
    graphql_max_depth: int = Field(default=DEFAULT_GRAPHQL_LIMITS.max_depth, ge=1)
    graphql_max_aliases: int = Field(default=DEFAULT_GRAPHQL_LIMITS.max_aliases, ge=1)
    graphql_max_tokens: int = Field(default=DEFAULT_GRAPHQL_LIMITS.max_tokens, ge=1)
    graphql_max_document_chars: int = Field(default=DEFAULT_GRAPHQL_LIMITS.max_document_chars, ge=1)
    graphql_max_fields: int = Field(default=DEFAULT_GRAPHQL_LIMITS.max_fields, ge=1)
    graphql_max_repeated_pairs: int = Field(default=DEFAULT_GRAPHQL_LIMITS.max_repeated_pairs, ge=0)
    graphql_max_batch: int = Field(default=DEFAULT_GRAPHQL_LIMITS.max_batch, ge=1)
    graphql_cors_origins: list[str] = []
    # Execution capacity per process (oro_graph/edge/capacity.py): unsigned graph executions run at most
    # capacity_read_slots at a time, capacity_read_queue more wait, the next is 503 + Retry-After;
    # signed writes run on capacity_write_threads threads of their own, and while one is in flight
    # the other requests of its process wait for it, at most capacity_read_yield_seconds (0: never).
    capacity_read_slots: int = Field(default=2, ge=1, le=1000)
    capacity_read_queue: int = Field(default=64, ge=0, le=100_000)
    capacity_retry_after_seconds: float = Field(default=1.0, gt=0, le=3600)
    capacity_write_threads: int = Field(default=16, ge=1, le=1000)
    capacity_read_yield_seconds: float = Field(default=0.05, ge=0, le=10)
    response_cache: bool = True  # answer hot reads (graph queries, public REST reads) per data version
    # Races (see the README's "Races"): the cycle, the field, the draw and X of Y race runs.
    race_scheduler: bool | None = None  # None: on, except under `serve --demo`
    race_scheduler_seconds: float = Field(default=30.0, gt=0)
    race_qualifying_hours: float = Field(default=24.0, gt=0)
    race_max_hours: float = Field(default=48.0, gt=0)
    race_interval_hours: float = Field(default=0.0, ge=0)
    race_max_qualifiers: int = Field(default=20, ge=1, le=1000)
    race_problems: int = Field(default=10, ge=1)
    race_required_successes: int = Field(default=2, ge=1, le=100)
    race_max_attempts: int = Field(default=4, ge=1, le=1000)
    race_threshold_half_life_hours: float = Field(default=168.0, gt=0)
    # The public validator's split of its weights (t_top to the winner, t_burn to uid 0).
    weight_top_share: float = Field(default=0.25, ge=0.0, le=1.0)
    weight_burn_share: float = Field(default=0.75, ge=0.0, le=1.0)
    tao_per_day_top: float | None = Field(default=None, ge=0)  # the top miner's TAO a day, if known
    tao_price_usd: float | None = Field(default=None, gt=0)
    # Inference credentials: validators get an access token minted from the miner's stored credential.
    require_inference_credential: bool = True  # offer only versions whose miner has a usable credential
    chutes_token_url: str = "https://api.chutes.ai/idp/token"
    chutes_client_id: str | None = None  # unset: Chutes refresh tokens cannot be minted here
    chutes_client_secret: str | None = Field(default=None, repr=False)
    chutes_base_url: str = "https://llm.chutes.ai/v1"
    chutes_redirect_uris: str = ""  # comma-separated allow-list for the authorization-code exchange
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    inference_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    inference_token_margin_seconds: int = Field(default=60, ge=0)
    inference_breaker_seconds: int = Field(default=30, ge=1)
    # Connections (oro_graph/connections.py): an idle keep-alive connection is closed after
    # keep_alive_seconds; a request's line and headers must arrive within header_timeout_seconds
    # (also on a new connection that sends nothing), and its body must not stall longer than
    # body_timeout_seconds between two pieces.
    keep_alive_seconds: int = Field(default=5, ge=1, le=600)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # /metrics answers only `Authorization: Bearer <token>` when set; open (like /health) when unset.
    metrics_token: str | None = Field(default=None, repr=False)
    log_format: Literal["text", "json"] = "text"  # json: one object per line, with the request id
    rest_cors_origins: list[str] = []  # origins allowed to call the /v1 paths from a browser (JSON list)
    http_max_age_seconds: int = Field(default=0, ge=0)  # Cache-Control max-age of public GET answers
    workers: int = Field(default=1, ge=1)  # set by `oro-graph serve --workers N` for its processes

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        if value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgres://")
        elif value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        if not (value.startswith("sqlite:") or value.startswith("postgresql+psycopg://")):
            raise ValueError("must be a sqlite:/// path or a postgresql+psycopg:// URL")
        return value

    @field_validator("storage_backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in {"local", "s3"}:
            raise ValueError("must be 'local' or 's3'")
        return value

    @field_validator("submit_rate_limit", "write_rate_limit")
    @classmethod
    def _parse_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("must be a rate like '1/minute' or '5/hour'") from None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("chutes_token_url", "chutes_base_url", "openrouter_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def redirect_uris(self) -> frozenset[str]:
        """ORO_CHUTES_REDIRECT_URIS as a set (exact matches only, RFC 6749 section 4.1.3)."""
        return frozenset(uri.strip() for uri in self.chutes_redirect_uris.split(",") if uri.strip())

    @model_validator(mode="after")
    def _race_attempts(self) -> Settings:
        if self.race_max_attempts < self.race_required_successes:
            raise ValueError("ORO_RACE_MAX_ATTEMPTS must be at least ORO_RACE_REQUIRED_SUCCESSES")
        return self

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> Settings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("ORO_S3_BUCKET is required when ORO_STORAGE_BACKEND=s3")
        return self

    @cached_property
    def graphql_limits(self) -> GraphQLLimits:
        return GraphQLLimits(
            max_cost=self.graphql_max_cost,
            max_depth=self.graphql_max_depth,
            max_aliases=self.graphql_max_aliases,
            max_tokens=self.graphql_max_tokens,
            max_document_chars=self.graphql_max_document_chars,
            max_fields=self.graphql_max_fields,
            max_repeated_pairs=self.graphql_max_repeated_pairs,
            max_batch=self.graphql_max_batch,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def state_dir(self) -> Path:
        """Where local artifacts and the generated secret live: beside the SQLite file by default."""
        if self.data_dir is not None:
            return self.data_dir
        if self.is_sqlite:
            path = self.database_url.split("///", 1)[-1]
            if path and path != ":memory:":
                return Path(path).resolve().parent / "oro_graph_data"
        return Path.cwd() / "oro_graph_data"

    @cached_property
    def secret(self) -> bytes:
        """The signing/encryption key: ORO_SECRET_KEY, else one generated once and kept on disk."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.state_dir / "secret_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x") as handle:  # exclusive create: concurrent workers agree on one key
                handle.write(secrets.token_urlsafe(48))
            path.chmod(0o600)
        except FileExistsError:
            pass
        return path.read_text().strip().encode()


def load_settings(**overrides: object) -> Settings:
    """Read the environment; raise a one-line error naming the bad variable."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"ORO_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SystemExit(f"invalid configuration: {problems}") from None
