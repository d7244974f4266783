"""inference tokens: cached access tokens, refresh errors and the default provider

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import oro_graph.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inferencecredential", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("access_ciphertext", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("access_expires_at", oro_graph.models.base.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("last_refreshed_at", oro_graph.models.base.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch_op.add_column(
            sa.Column("error_detail", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
        batch_op.add_column(sa.Column("error_at", oro_graph.models.base.UTCDateTime(), nullable=True))
    # Every miner that already stored a credential keeps minting from it: it becomes the default.
    op.execute("UPDATE inferencecredential SET is_default = true")
    with op.batch_alter_table("inferencecredential", schema=None) as batch_op:
        batch_op.alter_column("is_default", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("inferencecredential", schema=None) as batch_op:
        batch_op.drop_column("error_at")
        batch_op.drop_column("error_detail")
        batch_op.drop_column("error_code")
        batch_op.drop_column("last_refreshed_at")
        batch_op.drop_column("access_expires_at")
        batch_op.drop_column("access_ciphertext")
        batch_op.drop_column("is_default")
