"""Read a subnet's neurons from a Subtensor node, and make the registry match them.

Two storage items of the SubtensorModule pallet say who is on a subnet:
``Keys`` (a double map ``(netuid, uid) -> hotkey``) and ``ValidatorPermit`` (``netuid -> Vec<bool>``,
indexed by uid). Both are read at the same finalised block so they describe one moment of the chain.
"""

from __future__ import annotations

from typing import Any

from oro_graph.db import Database
from oro_graph.services.registry import ChainNeuron, SyncReport, sync_registry

PALLET = "SubtensorModule"
SS58_FORMAT = 42  # Bittensor's address format (the runtime's System.SS58Prefix)
PAGE_SIZE = 256  # keys per state_getKeysPaged request; subnets have at most a few thousand uids
# The payloads are JSON, which json.loads checks anyway; websocket-client's pure-Python UTF-8 check
# of the runtime metadata (about 1 MB) alone costs seconds.
WS_OPTIONS = {"skip_utf8_validation": True}


class _MetadataCache:
    """Decoded runtime metadata, per node URL and spec version, for the life of the process.

    Decoding a runtime's metadata takes seconds of CPU; a process that syncs the registry more than
    once (a periodic sync, tests) decodes each runtime version of each node only once. Passed to
    substrate-interface as its ``cache_region`` (it calls ``get`` and ``set`` only).
    """

    def __init__(self) -> None:
        self._store: dict[tuple[str, str], Any] = {}

    def bound(self, url: str) -> _BoundCache:
        return _BoundCache(self._store, url)


class _BoundCache:
    def __init__(self, store: dict[tuple[str, str], Any], url: str) -> None:
        self._store, self._url = store, url

    def get(self, key: str) -> Any:
        return self._store.get((self._url, key))

    def set(self, key: str, value: Any) -> None:
        self._store[(self._url, key)] = value


METADATA = _MetadataCache()


class ChainReadError(RuntimeError):
    """The node answered, but not with a subnet we can read."""


def fetch_neurons(url: str, netuid: int, *, substrate: Any | None = None) -> list[ChainNeuron]:
    """The hotkey, uid and validator permit of every neuron of ``netuid``, ordered by uid.

    ``substrate`` is for callers that already hold a connected ``SubstrateInterface``;
    otherwise one is opened on ``url`` and closed afterwards.
    """
    own = substrate is None
    if substrate is None:
        from substrateinterface import SubstrateInterface

        substrate = SubstrateInterface(
            url=url, ss58_format=SS58_FORMAT, cache_region=METADATA.bound(url), ws_options=dict(WS_OPTIONS)
        )
    try:
        block_hash = substrate.get_chain_finalised_head()
        keys = substrate.query_map(PALLET, "Keys", [netuid], block_hash=block_hash, page_size=PAGE_SIZE)
        hotkeys = {int(_value(uid)): str(_value(hotkey)) for uid, hotkey in keys}
        permits = _value(substrate.query(PALLET, "ValidatorPermit", [netuid], block_hash=block_hash)) or []
    finally:
        if own:
            substrate.close()
    if not hotkeys:
        raise ChainReadError(f"subnet {netuid} has no neurons at block {block_hash} (does it exist?)")
    return [
        ChainNeuron(hotkey=hotkey, uid=uid, validator_permit=bool(uid < len(permits) and permits[uid]))
        for uid, hotkey in sorted(hotkeys.items())
    ]


def sync_from_chain(db: Database, url: str, netuid: int) -> SyncReport:
    """Read the subnet from the node, then apply it to the registry in one transaction."""
    neurons = fetch_neurons(url, netuid)
    return db.call(sync_registry, neurons)


def _value(obj: Any) -> Any:
    """The plain Python value of a scalecodec object (``.value``), or the object itself."""
    return getattr(obj, "value", obj)
