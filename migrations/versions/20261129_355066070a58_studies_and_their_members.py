"""studies and their members: a study is a job row of kind "study"; its refit job names it in study_id

Revision ID: 355066070a58
Revises: df01481919a9
Create Date: 2026-11-29 08:45:51.555183
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "355066070a58"
down_revision: str | None = "df01481919a9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "study_member",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=100), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("penalty", sa.Float(), nullable=True),
        sa.Column("fold_scores", sa.JSON(), nullable=False),
        sa.Column("mean_score", sa.Float(), nullable=True),
        sa.Column("standard_error", sa.Float(), nullable=True),
        sa.Column("train_score", sa.Float(), nullable=True),
        sa.Column("train_scores", sa.JSON(), nullable=True),
        sa.Column("nonzero", sa.Integer(), nullable=True),
        sa.Column("zero_fraction", sa.Float(), nullable=True),
        sa.Column("epochs", sa.Integer(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("final_scores", sa.JSON(), nullable=True),
        sa.Column("best_scores", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["job.id"], name=op.f("fk_study_member_study_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_member")),
        sa.UniqueConstraint("study_id", "position", name=op.f("uq_study_member_study_id_position")),
    )
    with op.batch_alter_table("study_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_member_study_id"), ["study_id"], unique=False)

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=8), server_default="train", nullable=False))
        batch_op.add_column(sa.Column("study_id", sa.String(length=36), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_job_study_id"), ["study_id"])


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_job_study_id"), type_="unique")
        batch_op.drop_column("study_id")
        batch_op.drop_column("kind")

    with op.batch_alter_table("study_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_member_study_id"))

    op.drop_table("study_member")
