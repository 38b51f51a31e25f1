from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false as sa_false

from models.base import Base, UTCDateTime, new_id, utcnow
from models.job_status import JobStatus, JobStatusColumn

JOB_STATUSES = tuple(status.value for status in JobStatus)


class Job(Base):
    """A unit of work a worker runs: a training job (`kind` "train") or a study (`kind` "study", whose
    members are StudyMember rows). Both share the lifecycle, leases, limits and fair claiming. Its
    `status` changes only through models.job_state.transition."""

    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status_known"),
        Index("ix_job_status_created_at", "status", "created_at"),
        Index("ix_job_created_at", "created_at"),
        # The fair claim groups a queue's queued jobs by tenant and takes a tenant's oldest.
        Index("ix_job_queue_status_tenant_id_created_at", "queue", "status", "tenant_id", "created_at"),
        # A tenant's running (or queued) jobs, counted at every claim and quota check: found without reading
        # the tenant's whole history, which an index on tenant_id alone would.
        Index("ix_job_tenant_id_status", "tenant_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id"))
    kind: Mapped[str] = mapped_column(String(8), default="train", server_default="train")
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[JobStatus] = mapped_column(JobStatusColumn(), default=JobStatus.QUEUED)
    # The normalized spec: defaults filled in, elastic net resolved to l1/l2.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    task: Mapped[str] = mapped_column(String(16))
    # Why the job has its task: given in the spec, or the rule that inferred it from the target.
    task_reason: Mapped[str] = mapped_column(String(300), default="given", server_default="given")
    device: Mapped[str] = mapped_column(String(8))
    queue: Mapped[str] = mapped_column(String(64))

    # The dataset exactly as resolved at submit time: a later upload under the same name changes nothing.
    dataset_ref: Mapped[str] = mapped_column(String(300))
    dataset_id: Mapped[str] = mapped_column(String(64))
    dataset_name: Mapped[str] = mapped_column(String(200))
    dataset_version: Mapped[int] = mapped_column(Integer)
    dataset_sha256: Mapped[str] = mapped_column(String(64))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    progress_epoch: Mapped[int] = mapped_column(Integer, default=0)
    progress_epochs: Mapped[int] = mapped_column(Integer)
    # Number of times a worker has claimed the job; the current attempt fences late writes of older ones.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts handed back on purpose (a worker shutting down): they do not count towards max_attempts.
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When its message was last published: the sweeper re-sends one that the broker lost.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Where the trained weights are, relative to the shared artifact store (REGTRAIN_HOME/artifacts).
    artifact_key: Mapped[str | None] = mapped_column(String(500))
    # The epoch whose weights the artifact holds, and whether the job ended before training finished
    # (canceled, timed out or failed: the weights of its last checkpoint, served marked as partial).
    artifact_epoch: Mapped[int | None] = mapped_column(Integer)
    artifact_partial: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # What the service decided for the user at submit time (columns left out, and why), in sentences.
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    # For error_type "internal": the reference under which the worker logged the fault.
    error_reference: Mapped[str | None] = mapped_column(String(36))

    schedule_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # The slot a scheduled run was made for (a trigger's is the moment it was asked for).
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The job this one retrains (POST /v1/jobs/{id}/retrain).
    parent_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # For a study's refit job: the study (at most one refit job per study).
    study_id: Mapped[str | None] = mapped_column(String(36), unique=True)

    # Columns grouped as readers see them; the API's JobRead reads a row through these (from_attributes).

    @property
    def dataset(self) -> dict[str, Any]:
        """The exact dataset the job trains on: id, name, version and sha256."""
        return {
            "id": self.dataset_id,
            "name": self.dataset_name,
            "version": self.dataset_version,
            "sha256": self.dataset_sha256,
        }

    @property
    def progress(self) -> dict[str, int]:
        return {"epoch": self.progress_epoch, "epochs": self.progress_epochs}

    @property
    def error(self) -> dict[str, Any] | None:
        if not self.error_type:
            return None
        return {"type": self.error_type, "message": self.error_message or "", "reference": self.error_reference}

    @property
    def artifact(self) -> dict[str, Any] | None:
        """The weights served: complete, or partial with their epoch; None when there are none."""
        if not self.artifact_key:
            return None
        return {"partial": self.artifact_partial, "epoch": self.artifact_epoch}
