"""A signed validator write spends its nonce in the transaction of its work
(``SignatureVerifier.call_signed``): one transaction per call, and still single-use whatever the work
answers (done, refused, swept first)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import select

from benchmarks.refusals import StatementCounter
from oro_graph.auth import DatabaseNonceStore, SignatureVerifier, sign_headers
from oro_graph.errors import Forbidden, Unauthenticated
from oro_graph.models import EvaluationRun, RunStatus, UsedNonce, utcnow
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, inference
from tests.factories import claim, keypair, make_world, submit
from tests.services.test_validator_statements import EXPECTED


@contextmanager
def commits(rt: Runtime) -> Iterator[list[int]]:
    seen = [0]

    def count(_conn: Any) -> None:
        seen[0] += 1

    event.listen(rt.db.engine, "commit", count)
    try:
        yield seen
    finally:
        event.remove(rt.db.engine, "commit", count)


def spent(rt: Runtime, nonce: str) -> bool:
    with rt.db.session() as s:
        return s.exec(select(UsedNonce).where(UsedNonce.nonce == nonce)).first() is not None


def database_verifier(rt: Runtime) -> SignatureVerifier:
    """Nonces in the database (several processes, or Redis); its once-a-minute prune already done."""
    store = DatabaseNonceStore(rt.db)
    store.prune_due()
    return SignatureVerifier(60, store)


def held_run(rt: Runtime) -> tuple[Any, Any]:
    """A world whose first validator holds a run of the first miner's version."""
    world = make_world(rt)
    submit(rt, world.miners[0], "a")
    got = claim(rt, world.validators[0])
    assert got is not None
    return world, got


def test_a_signed_heartbeat_is_one_transaction_and_its_replay_changes_nothing(runtime: Runtime) -> None:
    # given a validator holding a run, and its signed heartbeat
    rt = runtime
    verifier = database_verifier(rt)
    world, got = held_run(rt)
    signed = verifier.check_signature(sign_headers(keypair("Charlie")))
    assert signed[0] == world.validators[0]
    beat = functools.partial(
        verifier.call_signed,
        rt.db,
        signed,
        evaluations.heartbeat,
        run_id=got.run.id,
        validator_hotkey=signed[0],
        settings=rt.settings,
    )

    # when it is made
    with commits(rt) as done, StatementCounter(rt.db.engine) as sql:
        run = beat()
    # then the work and the nonce took one transaction: the heartbeat's statements and the nonce's one
    assert done[0] == 1 and spent(rt, signed[1])
    first_heartbeat = EXPECTED["first heartbeat"][0 if rt.db.is_sqlite else 1]
    assert sql.count == first_heartbeat + 1  # a first heartbeat (see test_validator_statements)

    # when the same request is replayed later, then it is refused and its work rolled back
    with pytest.raises(Unauthenticated, match="already used"):
        beat(now=utcnow() + timedelta(seconds=30))
    with rt.db.session() as s:
        stored = s.exec(select(EvaluationRun).where(EvaluationRun.id == got.run.id)).one()
    assert stored.lease_expires_at == run.lease_expires_at and stored.status == RunStatus.RUNNING


def test_a_refused_signed_call_still_spends_its_nonce(runtime: Runtime) -> None:
    # given a run, and a miner (no validator permit) signing a heartbeat of it, checked by a store whose
    # prune is due (it runs before the work's transaction: on SQLite, inside it, it waited for its lock)
    rt = runtime
    verifier = SignatureVerifier(60, DatabaseNonceStore(rt.db))
    world, got = held_run(rt)
    signed = verifier.check_signature(sign_headers(keypair("Alice")))
    assert signed[0] == world.miners[0]

    def beat() -> Any:
        return verifier.call_signed(
            rt.db,
            signed,
            evaluations.heartbeat,
            run_id=got.run.id,
            validator_hotkey=signed[0],
            settings=rt.settings,
        )

    # when it is made, it is FORBIDDEN, and its nonce is spent all the same
    with pytest.raises(Forbidden):
        beat()
    assert spent(rt, signed[1])
    # so its replay is a replay (401), not another FORBIDDEN
    with pytest.raises(Unauthenticated, match="already used"):
        beat()


def test_a_signed_claim_that_sweeps_first_spends_its_nonce(runtime: Runtime) -> None:
    # given a lapsed lease (the claim sweeps it in a transaction of its own, then claims in another)
    rt = runtime
    verifier = database_verifier(rt)
    world = make_world(rt)
    submit(rt, world.miners[0], "a")
    assert claim(rt, world.validators[0]) is not None
    later = utcnow() + timedelta(seconds=rt.settings.lease_seconds + 1)
    signed = verifier.check_signature(sign_headers(keypair("Dave")))
    assert signed[0] == world.validators[1]

    # when another validator claims, signed
    got = verifier.call_signed(
        rt.db,
        signed,
        evaluations.claim_work,
        validator_hotkey=signed[0],
        settings=rt.settings,
        storage=rt.storage,
        now=later,
    )
    # then it has the work, and the nonce survived the sweep's rollback
    assert got is not None and spent(rt, signed[1])


def test_a_signed_claim_with_its_credential_read_is_one_transaction(runtime: Runtime) -> None:
    # given open work (tests claim without inference credentials unless they store one)
    rt = runtime
    assert rt.inference is not None
    verifier = database_verifier(rt)
    world = make_world(rt)
    submit(rt, world.miners[0], "a")
    signed = verifier.check_signature(sign_headers(keypair("Charlie")))

    # when the validator claims through the REST path's composition
    with commits(rt) as done:
        got = inference.claim_with_grant(
            rt.db,
            rt.inference,
            validator_hotkey=signed[0],
            settings=rt.settings,
            storage=rt.storage,
            call=functools.partial(verifier.call_signed, rt.db, signed),
        )
    # then the claim, the credential's read and the nonce took one transaction
    assert got is not None and spent(rt, signed[1])
    assert done[0] == 1
