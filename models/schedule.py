from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK, UTCDateTime, new_id, utcnow


class Schedule(Base):
    """A cron schedule that submits its job template at each slot."""

    __tablename__ = "schedule"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    # A POST /v1/jobs body; `NAME@latest` in it resolves when a slot fires.
    job_template: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # While the previous run is queued or running: "skip" the slot, or "queue" another run.
    overlap: Mapped[str] = mapped_column(String(8))
    # Slots missed while no scheduler ran: "skip" them, or "run_once" for all of them.
    catch_up: Mapped[str] = mapped_column(String(16))
    # The next slot to fire; null while disabled.
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduleRun(Base):
    """One slot of one schedule. The unique key is what makes a slot fire exactly once, however many
    schedulers run: the first to insert the row wins, in the same transaction as its job."""

    __tablename__ = "schedule_run"
    __table_args__ = (UniqueConstraint("schedule_id", "scheduled_for"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedule.id", ondelete="CASCADE"), index=True)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    # "started" (a job was submitted), "skipped_overlap", "skipped_missed" or "failed" (see detail).
    outcome: Mapped[str] = mapped_column(String(24))
    job_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
