"""validator loop: an index in the claim's order over open work items

A claim takes the first open work item, race work first, then the oldest
(``services.evaluations.claim._candidates``). No index matched that order, so every claim read and
sorted every open item; with this one it walks from the head and stops at the first it may take.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_workitem_claim_order",
        "workitem",
        [sa.text("(race_id IS NULL)"), "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("is_closed IS false"),
        sqlite_where=sa.text("is_closed IS 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_workitem_claim_order", table_name="workitem")
