"""partial artifacts, submit warnings, error references

Revision ID: df01481919a9
Revises: c072fce21eef
Create Date: 2026-11-29 08:40:14.745910
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "df01481919a9"
down_revision: str | None = "c072fce21eef"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("artifact_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("artifact_partial", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("warnings", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("error_reference", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("error_reference")
        batch_op.drop_column("warnings")
        batch_op.drop_column("artifact_partial")
        batch_op.drop_column("artifact_epoch")
