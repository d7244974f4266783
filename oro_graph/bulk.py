"""Bulk loads: many rows into a table in one go, binary COPY on PostgreSQL and executemany on SQLite.

Database infrastructure beside ``db.py``: the demo world loads its millions of rows through it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import Any

import numpy as np
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Table, Uuid, insert, text
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # then no flags and no header extension
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")


class BulkWriter:
    """Rows into a table: binary COPY on PostgreSQL, executemany on SQLite.

    A column is a sequence of plain values (None for NULL; UUIDs as 32 hex digits) or a numpy
    array: UUIDs as rows of 16 bytes, times as datetime64[us] (NaT for NULL), numbers as floats
    (NaN for NULL), booleans as booleans.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def rows(self, table: Table, names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        if not self.postgres:
            self._insert(table, names, rows)
            return
        columns = list(zip(*rows, strict=True)) or [() for _ in names]
        self.columns(table, names, [dict(zip(names, columns, strict=True))])

    def columns(self, table: Table, names: Sequence[str], batches: Iterable[dict[str, Any]]) -> None:
        """Rows given as batches of columns.

        On PostgreSQL all batches go through one COPY, so the server loads one batch while the
        next is being encoded.
        """
        kinds = [_pg_kind(table.c[c].type) for c in names]
        if not self.postgres:
            for data in batches:
                columns = [_plain(kind, data[c]) for kind, c in zip(kinds, names, strict=True)]
                self._insert(table, names, zip(*columns, strict=True))
            return
        with self._copy(table, names) as copy:
            for data in batches:
                copy.write(
                    _binary_rows([_binary(kind, data[c]) for kind, c in zip(kinds, names, strict=True)])
                )

    @contextmanager
    def foreign_keys_checked_once(self, *tables: Table) -> Iterator[None]:
        """On PostgreSQL, check the tables' foreign keys once after the load instead of once per row.

        The constraints are dropped and re-added (with their own definitions) in this transaction, as
        the PostgreSQL manual advises for bulk loads ("Populating a Database"); re-adding validates
        every row, so nothing unchecked is committed. SQLite checks rows as they come, cheaply.
        """
        if not self.postgres:
            yield
            return
        constraints = [
            (table.name, name, definition)
            for table in tables
            for name, definition in self.session.execute(
                text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = CAST(:table AS regclass) AND contype = 'f' ORDER BY conname"
                ),
                {"table": table.name},
            ).all()
        ]
        for table, name, _ in constraints:
            self.session.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
        yield
        for table, name, definition in constraints:
            self.session.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))

    @contextmanager
    def _copy(self, table: Table, columns: Sequence[str]) -> Iterator[Any]:
        self.session.flush()
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        # Binary: the server parses text timestamps, UUIDs and floats three times slower than it stores them.
        statement = f'COPY "{table.name}" ({", ".join(columns)}) FROM STDIN (FORMAT BINARY)'
        with raw.cursor() as cursor:
            # A worker thread sends while this one encodes the next batch (the server loads meanwhile).
            with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
                copy.write(_COPY_SIGNATURE)
                yield copy
                copy.write(_COPY_TRAILER)

    def _insert(self, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        uuids = {c for c in columns if isinstance(table.c[c].type, Uuid)}
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(
                {
                    c: uuid.UUID(hex=v) if c in uuids and v is not None else v
                    for c, v in zip(columns, row, strict=True)
                }
            )
            if len(batch) >= 5000:
                self.session.execute(insert(table), batch)
                batch = []
        if batch:
            self.session.execute(insert(table), batch)


def _pg_kind(column_type: Any) -> str:
    """The PostgreSQL type of a column without its length: how binary COPY encodes its values."""
    return column_type.compile(dialect=postgresql.dialect()).split("(")[0]


def _plain(kind: str, values: Sequence[Any] | np.ndarray) -> Sequence[Any]:
    """A column as plain values for executemany (see ``BulkWriter``)."""
    if not isinstance(values, np.ndarray):
        return values
    if kind == "UUID":
        text = values.tobytes().hex()
        return [text[i : i + 32] for i in range(0, len(text), 32)]
    if kind == "TIMESTAMP WITH TIME ZONE":
        return [None if t is None else t.replace(tzinfo=UTC) for t in values.astype(object)]
    if kind == "INTEGER":
        return [None if x != x else int(x) for x in values.tolist()]
    return [None if x != x else x for x in values.tolist()]


def _binary(kind: str, values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A column in the binary COPY format: each value's bytes (zero padded to a common width) and length
    (-1 for NULL)."""
    if kind in ("VARCHAR", "JSONB"):
        # Each distinct object is encoded once: columns repeat a few statuses, reasons and documents.
        ids = np.fromiter(map(id, values), dtype=np.int64, count=len(values))
        _, first, rows = np.unique(ids, return_index=True, return_inverse=True)
        encoded = [
            None if v is None else (b"\x01" + json.dumps(v).encode() if kind == "JSONB" else v.encode())
            for v in (values[i] for i in first)
        ]
        padded = np.array([b or b"" for b in encoded], dtype=bytes)
        lengths = np.array([-1 if b is None else len(b) for b in encoded], dtype=np.int32)
        return padded.view(np.uint8).reshape(len(encoded), padded.dtype.itemsize)[rows], lengths[rows]
    if kind == "UUID":
        if isinstance(values, np.ndarray):
            return values, np.full(len(values), 16, dtype=np.int32)
        null = np.array([v is None for v in values], dtype=bool)
        raw = bytes.fromhex("".join("0" * 32 if v is None else v for v in values))
        data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 16)
        return data, np.where(null, -1, 16).astype(np.int32)
    if kind == "TIMESTAMP WITH TIME ZONE":
        if not isinstance(values, np.ndarray):
            values = np.array(
                [None if t is None else t.astimezone(UTC).replace(tzinfo=None) for t in values],
                dtype="datetime64[us]",
            )
        null = np.isnat(values)
        data = (values - _PG_EPOCH).astype(">i8")  # microseconds since 2000-01-01
    elif kind == "BOOLEAN":
        null = np.array([v is None for v in values], dtype=bool)
        data = np.asarray(values, dtype=bool)
    else:
        numbers = np.asarray(values, dtype=float)
        null = np.isnan(numbers)
        data = np.where(null, 0, numbers).astype({"FLOAT": ">f8", "INTEGER": ">i4"}[kind])  # FLOAT: double
    width = data.dtype.itemsize
    return data.view(np.uint8).reshape(len(data), width), np.where(null, -1, width).astype(np.int32)


def _binary_rows(columns: Sequence[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Tuples in the binary COPY format from columns encoded by ``_binary``.

    Every row is laid out at the widest size of each field; a mask keeps the bytes each value uses.
    """
    n = len(columns[0][1])
    out = np.empty((n, 2 + sum(4 + data.shape[1] for data, _ in columns)), dtype=np.uint8)
    keep = np.empty(out.shape, dtype=bool)
    out[:, :2] = np.frombuffer(len(columns).to_bytes(2, "big"), dtype=np.uint8)
    keep[:, :2] = True
    at = 2
    for data, lengths in columns:
        width = 4 + data.shape[1]
        out[:, at : at + 4] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        out[:, at + 4 : at + width] = data
        if (lengths == data.shape[1]).all():
            keep[:, at : at + width] = True
        else:
            keep[:, at : at + width] = np.arange(width) < 4 + np.maximum(lengths, 0)[:, None]
        at += width
    return out[keep].tobytes()
