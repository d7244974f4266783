"""``oro-graph export``: the graph's main tables as typed Parquet or CSV files, for DuckDB, Polars or Spark.

    oro-graph export --format parquet --out oro-export/

writes ``versions``, ``runs``, ``problem_results``, ``validators`` and ``problems`` (one file each, columns
and types in ``oro_graph.services.export.TABLES``) and ``_export.json`` (what was written, and the newest
problem-result stamp). Run again into the same directory and only problem results stamped since the last
export (less a safety overlap) are read from the database and merged in by id; the other tables, which have
no update stamp, are read whole. Files are written beside the old ones and swapped in only once every table
is complete, so a failed export leaves the previous one intact.

Needs pyarrow, from the ``analysis`` extra (``pip install 'oro-graph[analysis]'``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oro_graph.db import Database
from oro_graph.services import export as tables

FORMATS = ("parquet", "csv")
STATE_FILE = "_export.json"
# A result committed late can carry a stamp a little older than the newest one already exported
# (a transaction stamps rows before it commits): re-read this much before the mark; merging by id
# makes the overlap harmless.
OVERLAP = timedelta(minutes=10)
INSTALL_HINT = "pip install 'oro-graph[analysis]'  (in a checkout: pip install -e '.[analysis]')"


class MissingExtra(RuntimeError):
    """A command needs a package of an extra that is not installed."""


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingExtra(f"export needs pyarrow, from the 'analysis' extra: {INSTALL_HINT}") from exc
    return pyarrow


@dataclass
class ExportReport:
    out: Path
    format: str
    incremental: bool
    read: dict[str, int] = field(default_factory=dict)  # rows read from the database per table
    rows: dict[str, int] = field(default_factory=dict)  # rows in each written file
    files: dict[str, Path] = field(default_factory=dict)


def arrow_schema(table: tables.Table) -> Any:
    pa = require_pyarrow()
    kinds = {
        "uuid": pa.string(),
        "str": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "time": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(name, kinds[kind]) for name, kind in table.columns])


def read_table(path: Path, table: tables.Table) -> Any:
    """One exported file back as a pyarrow Table with the export's types (CSV carries none of its own)."""
    pa = require_pyarrow()
    schema = arrow_schema(table)
    if path.suffix == ".parquet":
        return pa.parquet.read_table(path, schema=schema)
    return pa.csv.read_csv(
        path,
        convert_options=pa.csv.ConvertOptions(
            column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    ).select(schema.names)


def _write(data: Any, path: Path, fmt: str) -> None:
    pa = require_pyarrow()
    if fmt == "parquet":
        pa.parquet.write_table(data, path)
    else:
        pa.csv.write_csv(data, path)


def _source_id(url: str) -> str:
    from sqlalchemy.engine import make_url

    return hashlib.sha256(make_url(url).render_as_string(hide_password=True).encode()).hexdigest()[:16]


def _previous(out: Path, fmt: str, source: str) -> dict[str, Any] | None:
    """The last export's state, when it is usable for an incremental one (same format, same database,
    every file still there)."""
    try:
        state = json.loads((out / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if state.get("format") != fmt or state.get("source") != source:
        return None
    if not all((out / f"{t.name}.{fmt}").is_file() for t in tables.TABLES):
        return None
    return state


def export(
    db: Database,
    out: Path,
    fmt: str = "parquet",
    *,
    full: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> ExportReport:
    """Write every table to ``out`` (created if needed); incremental when ``out`` holds a previous export
    of the same database in the same format, unless ``full``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    pa = require_pyarrow()
    out.mkdir(parents=True, exist_ok=True)
    source = _source_id(db.settings.database_url)
    previous = None if full else _previous(out, fmt, source)
    since: dict[str, datetime] = {}
    if previous is not None:
        for name, entry in previous.get("tables", {}).items():
            if entry.get("stamp_max"):
                since[name] = datetime.fromisoformat(entry["stamp_max"]) - OVERLAP
    report = ExportReport(out=out, format=fmt, incremental=bool(since))
    schemas = {t.name: arrow_schema(t) for t in tables.TABLES}
    batches: dict[str, list[Any]] = {t.name: [] for t in tables.TABLES}

    def sink(table: tables.Table, rows: list[tuple[Any, ...]]) -> None:
        columns = list(zip(*rows, strict=True))
        arrays = []
        for (name, kind), values in zip(table.columns, columns, strict=True):
            if kind == "uuid":
                values = tuple(None if v is None else str(v) for v in values)
            arrays.append(pa.array(values, type=schemas[table.name].field(name).type))
        batches[table.name].append(pa.RecordBatch.from_arrays(arrays, schema=schemas[table.name]))
        if progress is not None:
            progress(table.name, len(rows))

    report.read = db.call(tables.snapshot, sink, since=since)
    staged: list[tuple[Path, Path]] = []
    try:
        state_tables: dict[str, Any] = {}
        for table in tables.TABLES:
            data = pa.Table.from_batches(batches.pop(table.name), schema=schemas[table.name])
            final = out / f"{table.name}.{fmt}"
            if table.name in since:
                data = _merge(read_table(final, table), data, table.key)
            temp = out / f".{table.name}.{fmt}.tmp"
            _write(data, temp, fmt)
            staged.append((temp, final))
            report.rows[table.name] = data.num_rows
            report.files[table.name] = final
            entry: dict[str, Any] = {"rows": data.num_rows}
            if table.stamp is not None:
                newest = pa.compute.max(data[_stamp_column(table)]).as_py() if data.num_rows else None
                entry["stamp_max"] = newest.isoformat() if newest is not None else None
            state_tables[table.name] = entry
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    for temp, final in staged:
        os.replace(temp, final)
    state = {
        "format": fmt,
        "source": source,
        "exported_at": datetime.now(UTC).isoformat(),
        "incremental": report.incremental,
        "tables": state_tables,
    }
    temp_state = out / f".{STATE_FILE}.tmp"
    temp_state.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(temp_state, out / STATE_FILE)
    return report


def _stamp_column(table: tables.Table) -> str:
    return next(name for name, _ in table.columns if name == "updated_at")


def _merge(old: Any, delta: Any, key: str) -> Any:
    """``old`` with every row whose key is in ``delta`` replaced by delta's, delta's new rows appended."""
    pa = require_pyarrow()
    pc = pa.compute
    kept = old.filter(pc.invert(pc.is_in(old[key], value_set=delta[key])))
    return pa.concat_tables([kept, delta]).sort_by([("updated_at", "ascending"), (key, "ascending")])
