"""events of jobs and studies: status changes, finished epochs and a study's progress, in order

Revision ID: b50e2e693523
Revises: 355066070a58
Create Date: 2026-11-29 10:58:51.306142
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "b50e2e693523"
down_revision: str | None = "355066070a58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EPOCH_COLUMNS = (
    "train_data_loss",
    "l1_penalty",
    "l2_penalty",
    "val_data_loss",
    "val_accuracy",
    "val_r2",
    "val_rmse",
    "l1_norm",
    "l2_norm",
    "zero_fraction",
    "near_zero_fraction",
    "lr",
    "seconds",
)


def upgrade() -> None:
    job_event = op.create_table(
        "job_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_job_event_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_event")),
    )
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.create_index("ix_job_event_job_id_id", ["job_id", "id"], unique=False)
    _backfill(job_event)


def _backfill(job_event: sa.Table) -> None:
    """Jobs from before events get their recorded epochs and their current status, so that their stream
    replays what is known and ends as theirs would."""
    connection = op.get_bind()
    now = datetime.now(UTC)
    jobs = connection.execute(
        sa.text("SELECT id, status, attempts, progress_epochs, error_type, error_message FROM job ORDER BY created_at")
    ).all()
    for job_id, status, attempts, total_epochs, error_type, error_message in jobs:
        epochs = connection.execute(
            sa.text(f"SELECT epoch, {', '.join(EPOCH_COLUMNS)} FROM epoch_metric WHERE job_id = :job ORDER BY epoch"),
            {"job": job_id},
        ).all()
        rows = []
        for epoch, *values in epochs:
            data = {"epoch": epoch, "total_epochs": total_epochs, **dict(zip(EPOCH_COLUMNS, values, strict=True))}
            rows.append({"job_id": job_id, "kind": "epoch", "data": data, "created_at": now})
        error = {"type": error_type, "message": error_message or ""} if error_type else None
        status_data = {"status": status, "attempt": attempts, "at": now.isoformat(), "error": error}
        rows.append({"job_id": job_id, "kind": "status", "data": status_data, "created_at": now})
        op.bulk_insert(job_event, rows)


def downgrade() -> None:
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.drop_index("ix_job_event_job_id_id")
    op.drop_table("job_event")
