"""What the edge learns about one request, kept once for every layer after it (``EdgeRequest``).

The layers in front of the routers each need part of a request: the rate limit its client, the
persisted queries, the gate and the cache its GraphQL body. The first layer that needs the body
reads it and keeps it here (``read_body``), with its JSON value decoded once (``payload``); a later
layer finds it here instead of reading or decoding again. The gate leaves its verdict (each
admitted operation's parsed document and static cost) for the schema's ``Limits`` extension and
the cache, and the rate limit leaves the client's charge for the graph's ``rateLimit`` field.
A signed request's signature is checked once, by the first layer that needs to know its signer
(the rate limit charges the hotkey), and the verdict kept for the routes (``checked_signature``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import DocumentNode
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from oro_graph.errors import Unauthenticated

if TYPE_CHECKING:
    from oro_graph.auth import SignatureVerifier
    from oro_graph.dataversion import Snapshot
    from oro_graph.edge.cost import Cost
    from oro_graph.edge.ratelimit import RateState, WriteCharged

KEY = "oro.edge"  # the one key the edge keeps in an ASGI scope


@dataclass(frozen=True)
class Admission:
    """One operation the gate admitted: the schema's ``Limits`` extension takes its verdict as is."""

    query: str
    operation_name: str | None
    variables: dict[str, Any] | None
    document: DocumentNode | None  # None when the gate knew the request already (parse_document remembers it)
    cost: Cost
    canonical: str | None = (
        None  # the document's canonical form (``lexical.canonical``), when the gate made it
    )


@dataclass
class EdgeRequest:
    """One request's state at the edge, under one key of its ASGI scope (``EdgeRequest.of``)."""

    body: bytes | None = None  # the request's body, once a layer has read it
    rate: RateState | None = None  # the client and its latest charge (``oro_graph.edge.ratelimit``)
    # A signed write the rate limit charged with the client's point, for its route (taken once).
    write: WriteCharged | None = None
    # The data versions read with the rate-limit charge, in the same round trip to Redis, for the
    # response cache's lookup (``oro_graph.edge.responsecache``); taken once.
    versions: Snapshot | None = None
    cost: int | None = None  # the static cost of what the gate admitted, summed over a batch
    # What the gate remembers the request by (``gate.memo_key``), once a layer has worked it out: the
    # rate limit's ``Verdicts.cost_of`` and the gate ask the same of the same body.
    memo: tuple[bytes, str | None] | None = None
    admitted: list[Admission] = field(default_factory=list)
    # The signature's verdict (``checked_signature``): (hotkey, nonce), or why it was refused.
    signature: tuple[str, str] | Unauthenticated | None = None
    _payload: Any = None
    _decoded: bool = False
    _client: Receive | None = None  # what follows the body: the client's disconnect

    @classmethod
    def of(cls, scope: Scope) -> EdgeRequest:
        """The request's state, made on first use (a copied scope shares it once it exists)."""
        state: EdgeRequest | None = scope.get(KEY)
        if state is None:
            state = scope[KEY] = cls()
        return state

    @classmethod
    def get(cls, scope: Scope) -> EdgeRequest | None:
        found: EdgeRequest | None = scope.get(KEY)
        return found

    @property
    def payload(self) -> Any:
        """The body's JSON value (None if it is not JSON), decoded once."""
        if not self._decoded:
            try:
                self._payload = json.loads(self.body) if self.body else None
            except ValueError:
                self._payload = None
            self._decoded = True
        return self._payload

    def replace_body(self, body: bytes, payload: Any) -> Receive:
        """What the layers after this one see instead (a persisted query's document filled in), and
        the ``receive`` that hands it on."""
        self.body, self._payload, self._decoded = body, payload, True
        return replay(body, then=self._client)

    def admission(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None
    ) -> Admission | None:
        for admitted in self.admitted:
            if (
                admitted.query == query
                and admitted.operation_name == operation_name
                and (admitted.variables or None) == (variables or None)
            ):
                return admitted
        return None


def checked_signature(scope: Scope, verifier: SignatureVerifier) -> tuple[str, str]:
    """(hotkey, nonce) of the request's fresh signature, its nonce not spent; else Unauthenticated.

    Checked once per request: an SR25519 verification is most of what a signed call costs at the
    edge, and both the rate limit (whose budget to charge) and the route (who is calling) ask."""
    state = EdgeRequest.of(scope)
    verdict = state.signature
    if verdict is None:
        try:
            verdict = verifier.check_signature(Headers(scope=scope))
        except Unauthenticated as refused:
            verdict = refused
        state.signature = verdict
    if isinstance(verdict, Unauthenticated):
        raise verdict
    return verdict


async def read_body(scope: Scope, receive: Receive) -> tuple[EdgeRequest, Receive]:
    """The request's state with its body read, and the ``receive`` to hand on (it replays the body).

    Only the first layer to ask reads from the client; the ``receive`` it hands on replays, so a
    later layer that finds the body here hands its own ``receive`` on as it is.
    """
    state = EdgeRequest.of(scope)
    if state.body is not None:
        return state, receive
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    state.body, state._client = b"".join(chunks), receive
    return state, replay(state.body, then=receive)


def replay(body: bytes, then: Receive | None = None) -> Receive:
    """The body already read, once; then what ``then`` receives (the client's disconnect, which an
    event stream waits for), or a disconnect at once without it."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


def is_json(scope: Scope) -> bool:
    return b"json" in dict(scope.get("headers", [])).get(b"content-type", b"")


async def reply(send: Send, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
    """Answer with a JSON body."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if not any(name == b"content-type" for name, _ in raw):
        raw.insert(0, (b"content-type", b"application/json"))
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
