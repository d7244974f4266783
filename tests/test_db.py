"""The transaction wrapper: a connection lost mid-transaction is the client's 503, never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from oro_graph.db import Database
from oro_graph.errors import ServiceUnavailable


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_connection_lost_mid_transaction_is_service_unavailable(db: Database) -> None:
    with pytest.raises(ServiceUnavailable, match="database is unavailable"):
        with db.session(write=True) as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with db.engine.connect() as other:  # the server drops this session's connection
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            session.execute(text("SELECT 1"))
    # and the pool hands out working connections afterwards
    with db.session() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1
