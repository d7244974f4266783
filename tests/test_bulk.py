"""The bulk writer: binary COPY on PostgreSQL, executemany on SQLite, the same values either way."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select

from oro_graph.bulk import BulkWriter
from oro_graph.demo.store import STATE_COLUMNS
from oro_graph.models import ValidatorState
from oro_graph.runtime import Runtime


def test_bulk_writer_stores_awkward_values_exactly(runtime: Runtime) -> None:
    # given: rows of plain values and a batch of numpy columns (binary COPY on PostgreSQL)
    at = datetime(2026, 10, 1, 12, 30, 45, 123456, tzinfo=UTC)
    document = {"path": "C:\\tmp\tx\r\ny", "name": "ünïcødé", "n": [1, 2.5, None]}
    rows = [
        ("tab\there", at, None, 0.1 + 0.2, None, 1e-300, 7, document, None),
        ("back\\slash ünï", None, at, None, 123456.789, 2.0**60, None, None, at),
    ]
    columns = {
        "hotkey": ["new\nline", "plain"],
        "last_claim_at": np.array([at.replace(tzinfo=None), "NaT"], dtype="datetime64[us]"),
        "last_seen_at": np.array(["NaT", "1999-12-31T23:59:59.999999"], dtype="datetime64[us]"),
        "cpu_pct": np.array([math.pi, np.nan]),
        "ram_pct": [None, -1.5],
        "disk_pct": np.array([np.nan, 5e-324]),
        "docker_container_count": np.array([np.nan, 2.0**31 - 1]),
        "service_versions": [None, {"validator": "2.4.0"}],
        "metrics_reported_at": [at, None],
    }

    # when
    with runtime.db.session(write=True) as session:
        writer = BulkWriter(session)
        writer.rows(ValidatorState.__table__, STATE_COLUMNS, rows)
        writer.columns(ValidatorState.__table__, STATE_COLUMNS, [columns])

    # then
    with runtime.db.session() as session:
        table = ValidatorState.__table__
        stored = {row[0]: tuple(row) for row in session.execute(select(*(table.c[c] for c in STATE_COLUMNS)))}
    assert stored == {
        "tab\there": rows[0],
        "back\\slash ünï": rows[1],
        "new\nline": ("new\nline", at, None, math.pi, None, None, None, None, at),
        "plain": (
            "plain",
            None,
            datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            None,
            -1.5,
            5e-324,
            2**31 - 1,
            {"validator": "2.4.0"},
            None,
        ),
    }
