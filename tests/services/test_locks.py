"""The lock order is checked where locks are taken (services.locks)."""

import pytest
from sqlalchemy import text

from oro_graph.services import locks
from oro_graph.services.locks import Lock, LockOrderViolation


def test_locks_taken_in_order_pass_and_out_of_order_raise(runtime):
    with runtime.db.session() as session:
        # given: a transaction that holds a run and a work item
        locks.take(session, Lock.RUN, "run-1")
        locks.take(session, Lock.WORK_ITEM, "work-1")
        # when / then: taking again what it holds waits for nobody
        locks.take(session, Lock.RUN, "run-1")
        # when / then: a later rank is fine, an earlier one is refused
        locks.take(session, Lock.SUITE_BOARD, 1)
        with pytest.raises(LockOrderViolation, match="RACE taken after WORK_ITEM, SUITE_BOARD"):
            locks.take(session, Lock.RACE, "race-1")


def test_a_new_transaction_holds_nothing(runtime):
    with runtime.db.session() as session:
        locks.take(session, Lock.SUITE_BOARD, 1)
        session.execute(text("SELECT 1"))
        session.commit()  # the locks end with the transaction
        locks.take(session, Lock.RUN, "run-1")
        session.execute(text("SELECT 1"))
        session.rollback()
        locks.take(session, Lock.VALIDATOR_STATE, "5V")
