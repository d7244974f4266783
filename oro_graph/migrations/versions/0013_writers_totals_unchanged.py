"""the totals' triggers skip a delta that cancels out (an unchanged result re-sent) before their lock

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from oro_graph.models import totals as cells

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The trigger functions are redefined from the code (CREATE OR REPLACE); the totals are unchanged.
    cells.reinstall(op.get_bind())


def downgrade() -> None:
    # The early return changes no total, so the functions as they are now serve 0012 too.
    pass
