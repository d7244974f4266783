"""graphql-sse single-connection streams in the database

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eventstream",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("opened", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("token"),
    )
    with op.batch_alter_table("eventstream", schema=None) as batch_op:
        batch_op.create_index("ix_eventstream_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "eventstreamoperation",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("operation_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("token", "operation_id"),
    )
    op.create_table(
        "eventstreammessage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("eventstreammessage", schema=None) as batch_op:
        batch_op.create_index("ix_eventstreammessage_token_id", ["token", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("eventstreammessage", schema=None) as batch_op:
        batch_op.drop_index("ix_eventstreammessage_token_id")
    op.drop_table("eventstreammessage")
    op.drop_table("eventstreamoperation")
    with op.batch_alter_table("eventstream", schema=None) as batch_op:
        batch_op.drop_index("ix_eventstream_expires_at")
    op.drop_table("eventstream")
