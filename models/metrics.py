from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK


class EpochMetric(Base):
    """One row per job and epoch: data loss and penalty terms kept apart, validation metrics, weight norms."""

    __tablename__ = "epoch_metric"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    train_data_loss: Mapped[float] = mapped_column(Float)
    l1_penalty: Mapped[float] = mapped_column(Float)
    l2_penalty: Mapped[float] = mapped_column(Float)
    val_data_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    val_r2: Mapped[float | None] = mapped_column(Float)
    val_rmse: Mapped[float | None] = mapped_column(Float)
    # Totals over the penalized tensors at the end of the epoch.
    weight_count: Mapped[int] = mapped_column(Integer)
    l1_norm: Mapped[float] = mapped_column(Float)
    l2_norm: Mapped[float] = mapped_column(Float)
    max_abs: Mapped[float] = mapped_column(Float)
    zero_fraction: Mapped[float] = mapped_column(Float)
    near_zero_fraction: Mapped[float] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)


class LayerStat(Base):
    """Statistics of one parameter tensor at one epoch; `name` is the tensor's name in the artifact."""

    __tablename__ = "layer_stat"
    __table_args__ = (UniqueConstraint("job_id", "epoch", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    penalized: Mapped[bool] = mapped_column(Boolean)
    shape: Mapped[list[int]] = mapped_column(JSON)
    count: Mapped[int] = mapped_column(Integer)
    l1_norm: Mapped[float] = mapped_column(Float)
    l2_norm: Mapped[float] = mapped_column(Float)
    max_abs: Mapped[float] = mapped_column(Float)
    mean: Mapped[float] = mapped_column(Float)
    std: Mapped[float] = mapped_column(Float)
    zero_fraction: Mapped[float] = mapped_column(Float)
    near_zero_fraction: Mapped[float] = mapped_column(Float)
    dead_units: Mapped[int | None] = mapped_column(Integer)
    spectral_norm: Mapped[float | None] = mapped_column(Float)
    histogram: Mapped[dict[str, Any]] = mapped_column(JSON)
