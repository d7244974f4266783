"""Registry sync from a Subtensor node, against recorded node responses served on loopback.

No chain is reachable here. ``FakeNode`` speaks JSON-RPC over a websocket like a Subtensor node and
answers from ``fixtures/subtensor/``: real node-subtensor runtime metadata (spec 461) and a storage
snapshot encoded with it (see ``make_recording.py`` for what is recorded and what is made).
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from substrateinterface import Keypair
from websockets.sync.server import ServerConnection, serve

from oro_graph import chain
from oro_graph.db import Database
from oro_graph.models import Hotkey, Role
from oro_graph.services import registry
from oro_graph.services.registry import ChainNeuron

FIXTURES = Path(__file__).parent / "fixtures" / "subtensor"
PERMITS = {0, 3, 7, 12}


def fixture_hotkey(uid: int) -> str:
    return Keypair.create_from_uri(f"//oro-chain-fixture/{uid}").ss58_address


class FakeNode:
    """A loopback JSON-RPC websocket server answering from one block's recorded state."""

    def __init__(self, storage: dict[str, str] | None = None) -> None:
        recording = json.loads((FIXTURES / "recording.json").read_text())
        self.block_hash: str = recording["block_hash"]
        self.rpc: dict[str, Any] = recording["rpc"]
        self.storage: dict[str, str] = storage if storage is not None else recording["storage"]
        self.metadata = gzip.decompress((FIXTURES / "metadata_v14.hex.gz").read_bytes()).decode()
        self.calls: list[tuple[str, list[Any]]] = []
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeNode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def _handle(self, ws: ServerConnection) -> None:
        for message in ws:
            request = json.loads(message)
            self.calls.append((request["method"], request.get("params", [])))
            try:
                body = {"result": self.answer(request["method"], request.get("params", []))}
            except KeyError as exc:
                body = {"error": {"code": -32601, "message": f"Method not found: {exc}"}}
            ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], **body}))

    def answer(self, method: str, params: list[Any]) -> Any:
        if method == "rpc_methods":
            return {
                "methods": [
                    *self.rpc,
                    "state_getMetadata",
                    "state_getKeysPaged",
                    "state_queryStorageAt",
                    "state_getStorageAt",
                    "state_getStorage",
                ]
            }
        if method == "state_getMetadata":
            return self.metadata
        if method in ("state_getRuntimeVersion", "chain_getRuntimeVersion"):
            return self.rpc["chain_getRuntimeVersion"]
        if (
            method in ("chain_getHeader", "chain_getBlockHash")
            and params
            and params[0] not in (None, self.block_hash)
        ):
            return None  # only one block is recorded
        if method == "state_getKeysPaged":
            prefix, count, start = params[0], params[1], params[2] if len(params) > 2 else None
            keys = [k for k in sorted(self.storage) if k.startswith(prefix) and (start is None or k > start)]
            return keys[:count]
        if method == "state_queryStorageAt":
            return [{"block": self.block_hash, "changes": [[k, self.storage.get(k)] for k in params[0]]}]
        if method in ("state_getStorageAt", "state_getStorage"):
            return self.storage.get(params[0])
        return self.rpc[method]


@pytest.fixture(scope="module")
def node_server() -> Iterator[FakeNode]:
    """One node for the module: same URL, so the process decodes its runtime metadata once."""
    with FakeNode() as server:
        yield server


@pytest.fixture
def node(node_server: FakeNode) -> FakeNode:
    node_server.calls.clear()
    return node_server


def test_fetch_neurons_decodes_hotkeys_uids_and_permits(node: FakeNode) -> None:
    neurons = chain.fetch_neurons(node.url, 15)

    assert neurons == [ChainNeuron(fixture_hotkey(uid), uid, uid in PERMITS) for uid in range(16)]
    methods = [m for m, _ in node.calls]
    assert "state_getKeysPaged" in methods
    # Both storage items are read at the finalised block, so they describe the same moment.
    assert methods.index("chain_getFinalizedHead") < methods.index("state_getKeysPaged")
    storage_reads = [p for m, p in node.calls if m in ("state_queryStorageAt", "state_getStorageAt")]
    assert storage_reads and all(p[-1] == node.block_hash for p in storage_reads)


def test_fetch_neurons_reads_the_recorded_subnet_1_entry(node: FakeNode) -> None:
    """Subnet 1's ``Keys`` entry is a raw key/value pair recorded from a live localnet."""
    [neuron] = chain.fetch_neurons(node.url, 1)

    assert neuron == ChainNeuron("5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM", 0, False)


def test_fetch_neurons_pages_through_large_subnets(monkeypatch: pytest.MonkeyPatch, node: FakeNode) -> None:
    monkeypatch.setattr(chain, "PAGE_SIZE", 5)

    neurons = chain.fetch_neurons(node.url, 15)

    assert [n.uid for n in neurons] == list(range(16))
    assert sum(1 for m, _ in node.calls if m == "state_getKeysPaged") >= 4


def test_unknown_subnet_is_an_error(node: FakeNode) -> None:
    with pytest.raises(chain.ChainReadError, match="subnet 99 has no neurons"):
        chain.fetch_neurons(node.url, 99)


def test_runtime_metadata_is_decoded_once_per_node_and_version() -> None:
    with FakeNode() as fresh:
        chain.fetch_neurons(fresh.url, 15)
        chain.fetch_neurons(fresh.url, 15)
        assert [m for m, _ in fresh.calls].count("state_getMetadata") == 1
    # another node (URL) is never answered from this one's cache
    chain.METADATA.bound("ws://node-a").set("METADATA_461", "a's")
    assert chain.METADATA.bound("ws://node-b").get("METADATA_461") is None
    assert chain.METADATA.bound("ws://node-a").get("METADATA_461") == "a's"


def test_unreachable_node_raises() -> None:
    with pytest.raises(Exception):  # noqa: B017 - the library raises its own connection errors
        chain.fetch_neurons("ws://127.0.0.1:9", 15)


def _registry(db: Database) -> dict[str, Hotkey]:
    with db.session() as session:
        return {row.ss58: row for row in session.exec(select(Hotkey))}


def test_sync_from_chain_makes_the_registry_match(db: Database, node: FakeNode) -> None:
    # given: a hand-added hotkey, a banned one, a neuron that left the subnet and one whose permit changed
    db.call(registry.add_hotkey, fixture_hotkey(100), role=Role.MINER, name="operator-added")
    db.call(registry.add_hotkey, fixture_hotkey(101), role=Role.MINER, uid=40)
    db.call(registry.set_banned, fixture_hotkey(101))
    db.call(registry.add_hotkey, fixture_hotkey(102), role=Role.MINER, uid=41)
    db.call(registry.add_hotkey, fixture_hotkey(3), role=Role.MINER, uid=3)

    # when
    report = chain.sync_from_chain(db, node.url, 15)

    # then
    assert (report.added, report.updated, report.deregistered) == (15, 1, 1)
    rows = _registry(db)
    for uid in range(16):
        row = rows[fixture_hotkey(uid)]
        assert (row.uid, row.validator_permit) == (uid, uid in PERMITS)
        assert row.role == (Role.VALIDATOR if uid in PERMITS else Role.MINER)
    assert fixture_hotkey(100) in rows and rows[fixture_hotkey(101)].banned
    assert fixture_hotkey(102) not in rows

    # a second sync of the same block changes nothing
    again = chain.sync_from_chain(db, node.url, 15)
    assert (again.added, again.updated, again.deregistered) == (0, 0, 0)
