"""graph frontend: indexes behind the filters and per-problem statistics

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agentversion", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agentversion_suite_submitted", ["suite_id", "submitted_at", "id"], unique=False
        )
    with op.batch_alter_table("problemresult", schema=None) as batch_op:
        batch_op.create_index(
            "ix_problemresult_problem_run_score", ["problem_id", "run_id", "score"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("problemresult", schema=None) as batch_op:
        batch_op.drop_index("ix_problemresult_problem_run_score")
    with op.batch_alter_table("agentversion", schema=None) as batch_op:
        batch_op.drop_index("ix_agentversion_suite_submitted")
