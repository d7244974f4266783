"""The live server's handle and the clients tests use against it."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from bittensor_wallet import Keypair
from oro_sdk import BittensorAuthClient, Client, RetryConfig

from oro_graph.runtime import Runtime

TIMEOUT = httpx.Timeout(60.0)  # generous: a loaded machine answers late, never wrongly


@dataclass(frozen=True)
class Wallet:
    """The part of ``bittensor_wallet.Wallet`` the client uses: ``.hotkey``, a signing keypair."""

    hotkey: Keypair


def wallet(name: str) -> Wallet:
    """//Alice etc.: the same SS58 addresses tests.factories.register puts in the registry."""
    return Wallet(Keypair.create_from_uri(f"//{name}"))


@dataclass
class LiveServer:
    base_url: str
    runtime: Runtime

    def public(self, headers: dict[str, str] | None = None) -> Client:
        return Client(base_url=self.base_url, timeout=TIMEOUT, headers=headers or {})

    def signed(self, name: str) -> BittensorAuthClient:
        # No retries: a test must see the first answer (and the client retries GETs on 429/503).
        return BittensorAuthClient(
            base_url=self.base_url,
            wallet=wallet(name),
            timeout=TIMEOUT,
            retry_config=RetryConfig(max_retries=0),
        )

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=TIMEOUT)
