"""per-problem statistics and the category filter from running totals kept by triggers

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from oro_graph.models import totals as cells

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counts(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(n, sa.Integer(), nullable=False) for n in names]


def _sums(*names: str) -> list[sa.Column[float]]:
    return [sa.Column(n, sa.Float(), nullable=False) for n in names]


def upgrade() -> None:
    cell: list[sa.Column[int] | sa.Column[float]] = []
    for prefix in ("", "inc_"):
        cell += _counts(f"{prefix}attempts", f"{prefix}passes", f"{prefix}timeouts")
        cell += _sums(f"{prefix}score_sum", f"{prefix}duration_sum")
        cell += _counts(f"{prefix}durations")
    op.create_table(
        "problemcell",
        sa.Column("agent_version_id", sa.Uuid(), nullable=False),
        sa.Column("problem_id", sa.Uuid(), nullable=False),
        sa.Column("suite_id", sa.Integer(), nullable=False),
        *cell,
        *[sa.Column(n, sa.Float(), nullable=True) for n in ("x", "y", "inc_x", "inc_y")],
        sa.PrimaryKeyConstraint("agent_version_id", "problem_id"),
    )
    op.create_table(
        "problemscore",
        sa.Column("problem_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("suite_id", sa.Integer(), nullable=False),
        *_counts("attempts", "inc_attempts"),
        sa.PrimaryKeyConstraint("problem_id", "score"),
    )
    op.create_table(
        "problemscorebucket",
        sa.Column("problem_id", sa.Uuid(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("suite_id", sa.Integer(), nullable=False),
        *_counts("attempts", "inc_attempts"),
        sa.PrimaryKeyConstraint("problem_id", "bucket"),
    )
    op.create_index("ix_problemscorebucket_suite", "problemscorebucket", ["suite_id"])
    total: list[sa.Column[int] | sa.Column[float]] = []
    for prefix in ("", "inc_"):
        total += _counts(f"{prefix}attempts", f"{prefix}passes", f"{prefix}timeouts")
        total += _sums(f"{prefix}score_sum", f"{prefix}duration_sum")
        total += _counts(f"{prefix}durations", f"{prefix}versions", f"{prefix}n")
        total += _sums(*(f"{prefix}{s}" for s in ("sx", "sy", "sxx", "syy", "sxy")))
    op.create_table(
        "problemtotal",
        sa.Column("problem_id", sa.Uuid(), nullable=False),
        sa.Column("suite_id", sa.Integer(), nullable=False),
        *total,
        sa.PrimaryKeyConstraint("problem_id"),
    )
    op.create_index("ix_problemtotal_suite_id", "problemtotal", ["suite_id"])
    op.create_table(
        "versioncategory",
        sa.Column("agent_version_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        *_counts("results"),
        *_sums("score_sum"),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("agent_version_id", "category"),
    )
    op.create_index("ix_versioncategory_category_mean", "versioncategory", ["category", "mean"])
    for table, column in (
        ("problemcell", "attempts"),
        ("problemscore", "attempts"),
        ("problemscorebucket", "attempts"),
        ("versioncategory", "results"),
    ):
        where = sa.text(f"{column} <= 0")
        op.create_index(f"ix_{table}_cleared", table, [column], postgresql_where=where, sqlite_where=where)
    bind = op.get_bind()
    cells.install(bind)
    cells.rebuild(bind)


def downgrade() -> None:
    cells.uninstall(op.get_bind())
    for table in ("versioncategory", "problemtotal", "problemscorebucket", "problemscore", "problemcell"):
        op.drop_table(table)
