from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK


class StudyMember(Base):
    """One setting of a study: its parameters (the grid point and/or the variant), its member spec, and
    what cross-validation (or the validation split) measured. `fold_scores` holds one entry per fold,
    null until that fold is done, so an interrupted study resumes with the folds still missing."""

    __tablename__ = "study_member"
    __table_args__ = (UniqueConstraint("study_id", "position"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(100))
    # Dotted spec path -> value for the grid point; path values are filled in when the study starts.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The member's normalized job spec (what a job with this setting would store).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The strength used to order members for the 1-SE rule: the penalty the grid varies (larger = simpler).
    penalty: Mapped[float | None] = mapped_column(Float)
    fold_scores: Mapped[list[Any]] = mapped_column(JSON)
    mean_score: Mapped[float | None] = mapped_column(Float)
    standard_error: Mapped[float | None] = mapped_column(Float)
    train_score: Mapped[float | None] = mapped_column(Float)
    # The selection metric on each fold's training rows; train_score is their mean.
    train_scores: Mapped[list[Any] | None] = mapped_column(JSON)
    nonzero: Mapped[int | None] = mapped_column(Integer)
    zero_fraction: Mapped[float | None] = mapped_column(Float)
    epochs: Mapped[int | None] = mapped_column(Integer)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    # Per fold (or the validation split): the final and the best epoch's validation metrics.
    final_scores: Mapped[list[Any] | None] = mapped_column(JSON)
    best_scores: Mapped[list[Any] | None] = mapped_column(JSON)
