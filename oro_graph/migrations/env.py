"""Alembic environment: the target is SQLModel.metadata; the URL comes from the caller or ORO_DATABASE_URL."""

from __future__ import annotations

import warnings

from alembic import context
from sqlalchemy.exc import SAWarning
from sqlmodel import SQLModel

import oro_graph.models  # noqa: F401  (registers every table on the metadata)
from oro_graph.db import make_engine
from oro_graph.models import totals

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from oro_graph.settings import load_settings

    url = load_settings().database_url


def _include_name(name: str | None, type_: str, _parents: object) -> bool:
    # The totals' staging tables are made by their triggers' install, not by a model (PostgreSQL only).
    return not (type_ == "table" and name in totals.STAGING)


engine = make_engine(url)
with engine.connect() as connection, warnings.catch_warnings():
    # SQLite's reflection skips expression indexes (ix_workitem_claim_order), and alembic's comparison
    # then leaves them out on both sides: nothing to warn about.
    warnings.filterwarnings(
        "ignore", message="Skipped unsupported reflection of expression-based index", category=SAWarning
    )
    warnings.filterwarnings(
        "ignore", message="autogenerate skipping metadata-specified expression-based index"
    )
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several server processes may start at once: one migrates, the others wait, then see head.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7250115)")
        context.run_migrations()
    connection.commit()
engine.dispose()
