from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, Field, model_validator

from api.schemas.common import StrictModel

MAX_PREDICT_ROWS = 10_000


class PredictRequest(StrictModel):
    rows: list[list[float | None]] | None = Field(
        None,
        description="Rows of numbers in the order of the job's feature columns (spec.features for tables; images "
        "flattened in C, H, W order), "
        "raw (unstandardized): the job's standardization statistics are applied. null is a missing value.",
        examples=[[[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]]],
    )
    records: list[dict[str, float | bool | str | None]] | None = Field(
        None,
        description="Rows as {column: value} objects with the original values (text for categories), for data "
        "with named columns. Each needs the job's feature columns (spec.features); other keys (the target, an id, "
        "columns the job left out) are ignored. A category not seen in training encodes as all zeros; null is a "
        "missing value.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.rows is None) == (self.records is None):
            raise ValueError("give either rows or records, not both and not neither")
        given = self.rows if self.rows is not None else self.records
        assert given is not None
        if not given:
            raise ValueError("give at least one row")
        return self


class PartialWeights(BaseModel):
    epoch: int | None = Field(description="The epoch whose weights made these predictions.")


class PredictionRead(BaseModel):
    predictions: list[Any] = Field(description="Class labels (classification) or predicted values (regression).")
    probabilities: list[list[float]] | None = Field(
        None, description="Class probabilities per row, in the order of `classes` (classification only)."
    )
    classes: list[Any] | None = Field(None, description="The class labels, in the order of the probabilities.")
    partial: PartialWeights | None = Field(
        None,
        description="Present only when the job stopped before training finished (canceled, timed out or failed): "
        "these predictions come from the weights of its last checkpoint, at this epoch.",
    )
