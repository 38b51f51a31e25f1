"""a tenant's jobs indexed by status: the running and queued counts of every claim and quota check read
only those jobs, not the tenant's whole history (the composite index replaces the one on tenant_id alone)

Revision ID: 2b447c16f943
Revises: b50e2e693523
Create Date: 2026-11-29 17:21:14.041131
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2b447c16f943"
down_revision: str | None = "b50e2e693523"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_tenant_id"))
        batch_op.create_index("ix_job_tenant_id_status", ["tenant_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_tenant_id_status")
        batch_op.create_index(batch_op.f("ix_job_tenant_id"), ["tenant_id"], unique=False)
