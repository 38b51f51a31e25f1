"""tenants and API keys; every dataset, job, schedule and idempotency key belongs to a tenant

Rows that existed before tenants belong to the tenant named "default", which the first admin key
(created when the service first starts) also belongs to. Idempotency keys are kept 24 hours and their
primary key gains the tenant, so the table is recreated empty.

Revision ID: c072fce21eef
Revises: 4336b91f484b
Create Date: 2026-11-29 08:14:55.746700
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "c072fce21eef"
down_revision: str | None = "4336b91f484b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = ("dataset", "job", "schedule")


def _idempotency_table(with_tenant: bool) -> None:
    columns = [
        sa.Column("scope", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
    ]
    if with_tenant:
        columns.insert(0, sa.Column("tenant_id", sa.String(length=36), nullable=False))
        constraints: list[sa.Constraint] = [
            sa.ForeignKeyConstraint(
                ["tenant_id"], ["tenant.id"], name=op.f("fk_idempotency_key_tenant_id_tenant"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("tenant_id", "scope", "key", name=op.f("pk_idempotency_key")),
        ]
    else:
        constraints = [sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_key"))]
    op.create_table("idempotency_key", *columns, *constraints)
    with op.batch_alter_table("idempotency_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_key_created_at"), ["created_at"], unique=False)


def upgrade() -> None:
    tenant = op.create_table(
        "tenant",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("max_queued_jobs", sa.Integer(), nullable=True),
        sa.Column("max_running_jobs", sa.Integer(), nullable=True),
        sa.Column("max_stored_bytes", sa.BigInteger(), nullable=True),
        sa.Column("served_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant")),
        sa.UniqueConstraint("name", name=op.f("uq_tenant_name")),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_api_key_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_tenant_id"), ["tenant_id"], unique=False)

    default_id = str(uuid.uuid4())
    op.bulk_insert(tenant, [{"id": default_id, "name": "default", "created_at": datetime.now(UTC)}])

    for table in OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("tenant_id", sa.String(length=36), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET tenant_id = :tenant").bindparams(tenant=default_id))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("tenant_id", existing_type=sa.String(length=36), nullable=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_tenant_id"), ["tenant_id"], unique=False)
            batch_op.create_foreign_key(batch_op.f(f"fk_{table}_tenant_id_tenant"), "tenant", ["tenant_id"], ["id"])
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_dataset_name_version"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_dataset_tenant_id_name_version"), ["tenant_id", "name", "version"]
        )

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(
            "ix_job_queue_status_tenant_id_created_at", ["queue", "status", "tenant_id", "created_at"], unique=False
        )

    op.drop_table("idempotency_key")
    _idempotency_table(with_tenant=True)


def downgrade() -> None:
    op.drop_table("idempotency_key")
    _idempotency_table(with_tenant=False)

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_queue_status_tenant_id_created_at")

    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_dataset_tenant_id_name_version"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_dataset_name_version"), ["name", "version"])
    for table in reversed(OWNED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_tenant_id_tenant"), type_="foreignkey")
            batch_op.drop_index(batch_op.f(f"ix_{table}_tenant_id"))
            batch_op.drop_column("tenant_id")

    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_tenant_id"))
    op.drop_table("api_key")
    op.drop_table("tenant")
