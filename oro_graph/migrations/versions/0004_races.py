"""races: races, their qualifiers, miners' pins, the scheduler's lease; race work on work items and runs

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

import oro_graph.models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = oro_graph.models.base.UTCDateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
)
# Names for the constraints the first migration left unnamed, so SQLite's batch mode can drop them.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    op.create_table(
        "race",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("race_number", sa.Integer(), nullable=False),
        sa.Column("suite_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("qualifying_threshold", sa.Float(), nullable=False),
        sa.Column("max_qualifiers", sa.Integer(), nullable=False),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        sa.Column("required_successes", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("qualifying_closes_at", UTC, nullable=False),
        sa.Column("race_started_at", UTC, nullable=True),
        sa.Column("race_deadline_at", UTC, nullable=True),
        sa.Column("race_completed_at", UTC, nullable=True),
        sa.Column("cancelled_at", UTC, nullable=True),
        sa.Column("seed_commitment", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("secret", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("secret_revealed", sa.Boolean(), nullable=False),
        sa.Column("draw_seed", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("problem_ids", JSON, nullable=True),
        sa.Column("winner_agent_version_id", sa.Uuid(), nullable=True),
        sa.Column("winner_score", sa.Float(), nullable=True),
        sa.Column("qualifier_count", sa.Integer(), nullable=False),
        sa.Column("scored_count", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["suite_id"], ["suite.id"]),
        sa.ForeignKeyConstraint(["winner_agent_version_id"], ["agentversion.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("race_number", name="uq_race_race_number"),
    )
    with op.batch_alter_table("race") as batch_op:
        batch_op.create_index("ix_race_suite_status", ["suite_id", "status"])
        batch_op.create_index("ix_race_suite_id", ["suite_id"])
        batch_op.create_index("ix_race_status", ["status"])

    op.create_table(
        "racequalifier",
        sa.Column("race_id", sa.Uuid(), nullable=False),
        sa.Column("agent_version_id", sa.Uuid(), nullable=False),
        sa.Column("miner_hotkey", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("qualification_type", sa.String(length=32), nullable=False),
        sa.Column("qualifying_score", sa.Float(), nullable=True),
        sa.Column("entered_at", UTC, nullable=False),
        sa.Column("race_score", sa.Float(), nullable=True),
        sa.Column("race_rank", sa.Integer(), nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("did_not_finish", sa.Boolean(), nullable=False),
        sa.Column("eliminated_at", UTC, nullable=True),
        sa.Column("details", JSON, nullable=True),
        sa.ForeignKeyConstraint(["race_id"], ["race.id"]),
        sa.ForeignKeyConstraint(["agent_version_id"], ["agentversion.id"]),
        sa.PrimaryKeyConstraint("race_id", "agent_version_id"),
    )
    with op.batch_alter_table("racequalifier") as batch_op:
        batch_op.create_index("ix_racequalifier_agent_version_id", ["agent_version_id"])
        batch_op.create_index("ix_racequalifier_miner_hotkey", ["miner_hotkey"])

    op.create_table(
        "raceselection",
        sa.Column("miner_hotkey", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("agent_version_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["miner_hotkey"], ["miner.hotkey"]),
        sa.ForeignKeyConstraint(["agent_version_id"], ["agentversion.id"]),
        sa.PrimaryKeyConstraint("miner_hotkey"),
    )
    op.create_table(
        "schedulerlease",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    # Work items: one qualifying item per version (as before), plus one race item per qualifier.
    is_pg = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("workitem", naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column("race_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("max_attempts", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_foreign_key("fk_workitem_race_id_race", "race", ["race_id"], ["id"])
        batch_op.drop_constraint(
            "workitem_agent_version_id_key" if is_pg else "uq_workitem_agent_version_id", type_="unique"
        )
        batch_op.create_index(
            "ux_workitem_qualifying",
            ["agent_version_id"],
            unique=True,
            postgresql_where=sa.text("race_id IS NULL"),
            sqlite_where=sa.text("race_id IS NULL"),
        )
        batch_op.create_index(
            "ux_workitem_race",
            ["race_id", "agent_version_id"],
            unique=True,
            postgresql_where=sa.text("race_id IS NOT NULL"),
            sqlite_where=sa.text("race_id IS NOT NULL"),
        )
    with op.batch_alter_table("evaluationrun") as batch_op:
        batch_op.add_column(sa.Column("race_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key("fk_evaluationrun_race_id_race", "race", ["race_id"], ["id"])
        batch_op.create_index("ix_evaluationrun_race_id", ["race_id"])


def downgrade() -> None:
    with op.batch_alter_table("evaluationrun") as batch_op:
        batch_op.drop_index("ix_evaluationrun_race_id")
        batch_op.drop_constraint("fk_evaluationrun_race_id_race", type_="foreignkey")
        batch_op.drop_column("race_id")
    op.execute("DELETE FROM workitem WHERE race_id IS NOT NULL")
    with op.batch_alter_table("workitem") as batch_op:
        batch_op.drop_index("ux_workitem_race")
        batch_op.drop_index("ux_workitem_qualifying")
        batch_op.drop_constraint("fk_workitem_race_id_race", type_="foreignkey")
        batch_op.drop_column("failed_attempts")
        batch_op.drop_column("max_attempts")
        batch_op.drop_column("race_id")
        batch_op.create_unique_constraint("workitem_agent_version_id_key", ["agent_version_id"])
    op.drop_table("schedulerlease")
    op.drop_table("raceselection")
    op.drop_table("racequalifier")
    op.drop_table("race")
