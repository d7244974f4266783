"""an index on the event log by topic: the raceChanges subscription reads every race's events

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_event_topic", "event", ["topic", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_event_topic", table_name="event")
