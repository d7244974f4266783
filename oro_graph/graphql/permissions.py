"""Who may call a field, declared on it (``permission_classes``) rather than checked in its body.

Each class asks ``Context.require`` (a registered, unbanned signer with the role, and for a write the
hotkey's budget for it), so a refusal is the same top-level FORBIDDEN or UNAUTHENTICATED error as
before, and an exhausted write budget still becomes the field's ``RateLimitExceededError`` member
(the schema's exception handlers wrap the permission too). The resolver then reads the verified
signer with ``info.context.signer()``, which is verified once per request.
"""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission

from oro_graph.graphql.context import Info
from oro_graph.models import Role


class _Requires(BasePermission):
    role: ClassVar[Role]
    write: ClassVar[str | None] = None  # one of ratelimit.WRITES, charged to the signer's budget

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        await info.context.require(self.role, write=self.write)  # raises the refusal itself
        return True


class IsMiner(_Requires):
    """Signed by a registered miner."""

    role = Role.MINER


class IsMinerStoringCredentials(_Requires):
    """Signed by a registered miner, within its budget for credential writes."""

    role = Role.MINER
    write = "credentials"


class IsValidatorPresigning(_Requires):
    """Signed by a hotkey with a validator permit, within its budget for upload URLs."""

    role = Role.VALIDATOR
    write = "presign"
