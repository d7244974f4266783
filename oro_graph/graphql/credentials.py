"""A miner's inference credentials as the graph shows them (never their secrets)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from oro_graph.services import credentials

InferenceReadiness = credentials.Readiness
strawberry.enum(
    InferenceReadiness,
    name="InferenceReadiness",
    description="Whether validators can get an inference token for a miner's versions, and if not, why. "
    "NO_CREDENTIAL, REFRESH_REFUSED and PROVIDER_NOT_CONFIGURED make its open versions wait (they are not "
    "offered to validators); PROVIDER_UNAVAILABLE means the last refresh failed on the provider's side and "
    "claims keep trying.",
)


@strawberry.type(description="One provider's credential as its miner sees it; the secret is never returned.")
class InferenceCredentialStatus:
    provider: str = strawberry.field(
        description="chutes (an OAuth refresh token) or openrouter (an API key)."
    )
    connected: bool = strawberry.field(description="Whether a credential is stored for this provider.")
    updated_at: datetime | None = strawberry.field(description="When it was last stored (UTC).")
    is_default: bool = strawberry.field(description="Whether claims mint from this provider first.")
    usable: bool = strawberry.field(
        description="Whether claims can mint from it: stored, not refused by the provider, and the "
        "provider is configured here."
    )
    last_refreshed_at: datetime | None = strawberry.field(
        description="The last successful token refresh (UTC)."
    )
    last_refresh_error_code: InferenceReadiness | None = strawberry.field(
        description="REFRESH_REFUSED or PROVIDER_UNAVAILABLE when the last refresh failed; null otherwise."
    )
    last_refresh_error: str | None = strawberry.field(description="Why the last refresh failed, for people.")
    last_refresh_error_at: datetime | None = strawberry.field(
        description="When the last refresh failed (UTC)."
    )

    @classmethod
    def of(cls, status: credentials.CredentialStatus) -> InferenceCredentialStatus:
        return cls(
            provider=status.provider,
            connected=status.connected,
            updated_at=status.updated_at,
            is_default=status.is_default,
            usable=status.usable,
            last_refreshed_at=status.last_refreshed_at,
            last_refresh_error_code=credentials.Readiness(status.error_code) if status.error_code else None,
            last_refresh_error=status.error_detail,
            last_refresh_error_at=status.error_at,
        )


@strawberry.type(
    description="The calling miner's inference credentials and whether its versions are offered."
)
class MinerInferenceAuth:
    readiness: InferenceReadiness = strawberry.field(
        description="READY, or why validators cannot get a token for this miner "
        "(its open versions then wait)."
    )
    detail: str = strawberry.field(description="The readiness in a sentence, saying what to do about it.")
    default_provider: str | None = strawberry.field(description="The provider claims mint from first.")
    credentials: list[InferenceCredentialStatus] = strawberry.field(
        description="One entry per known provider, connected or not."
    )
