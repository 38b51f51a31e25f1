from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, new_id, utcnow


class Dataset(Base):
    """One version of a named dataset. The bytes live in the content-addressed store under `sha256`;
    several versions (or names) with the same bytes share one stored copy."""

    __tablename__ = "dataset"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    # "table" (named columns, stored as Parquet) or "arrays" (X and y, stored as NPZ).
    kind: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(BigInteger)
    # The profile of every column: dtype, missing and non-finite counts, min/max/mean/std, distinct values.
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    target: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # "upload" or "synthetic"; for synthetic data, the generator's parameters.
    source: Mapped[str] = mapped_column(String(16), default="upload")
    generator: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
