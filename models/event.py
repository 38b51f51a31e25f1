from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK, UTCDateTime, utcnow


class JobEvent(Base):
    """What happened to a job or a study, in order: status changes, finished epochs, a study's progress.
    Written in the same transaction as the change it tells of, so the event stream (GET .../events) never
    announces what was rolled back and never misses what was committed. The id orders a job's events and
    is the stream's event id (Last-Event-ID resumes after it)."""

    __tablename__ = "job_event"
    __table_args__ = (Index("ix_job_event_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    # "status", "epoch" (jobs) or "progress" (studies).
    kind: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
