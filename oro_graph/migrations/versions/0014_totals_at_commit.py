"""the totals' triggers stage their deltas, added at commit under the totals' lock (PostgreSQL)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from oro_graph.models import totals as cells

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The trigger functions and the staging tables are made from the code; the totals are unchanged
    # (a staged delta is added at its transaction's commit: committed totals are the same).
    cells.reinstall(op.get_bind())


def downgrade() -> None:
    # Adding a delta at commit instead of at its statement gives the same committed totals, so the
    # functions as they are now serve 0013 too.
    pass
