"""Dataset request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

from api.schemas.common import Page, StrictModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
NAME_RULE = "1 to 200 letters, digits, '.', '_' or '-', starting with a letter or digit"
# Generated in the API process: about 160 MB of float64 at most.
MAX_SYNTHETIC_VALUES = 20_000_000


class ValueCount(BaseModel):
    value: Any
    count: int


class ColumnRead(BaseModel):
    name: str
    dtype: str = Field(description="float64, int64, bool or string for tables; the array's dtype for X and y.")
    shape: list[int] | None = Field(None, description="Arrays only: the shape of one row (X) or [] (y).")
    missing: int = Field(
        description="Missing cells: null, or (CSV, and Parquet text) a cell matching one of the dataset's `na_values`."
    )
    non_finite: int = Field(description="NaN and infinite values among the numbers (a CSV's 'NaN' text is missing).")
    min: float | None
    max: float | None
    mean: float | None
    std: float | None = Field(description="Population standard deviation (ddof=0) of the finite values.")
    distinct: int | None = Field(description="Distinct values, when there are at most 1,000; null above.")
    top_values: list[ValueCount] | None = Field(
        description="Up to 20 most frequent values with counts (text and bool columns, and few-valued ones)."
    )
    role: Literal["feature", "id", "constant", "high_cardinality", "datetime", "target"] = Field(
        "feature",
        description="What the column is for, inferred at upload. Jobs use `feature` columns and leave out `id` "
        "(unique per row: text, or integers named like an id or numbering the rows), `constant` (one distinct "
        "value, or none), `high_cardinality` (text with more distinct values than REGTRAIN_MAX_CATEGORIES) and "
        "`datetime` (ISO 8601 dates or times) unless a job lists them in `features`; `target` is the "
        "dataset's target.",
    )


class TargetSummary(BaseModel):
    column: str
    classes: list[ValueCount] | None = Field(None, description="Class balance, when the target has few values.")
    min: float | None = None
    max: float | None = None
    mean: float | None = None


class DatasetRead(BaseModel):
    id: str
    name: str
    version: int = Field(description="1 for the first upload under a name, then 2, 3, ...")
    format: Literal["csv", "parquet", "npz", "hdf5", "synthetic"]
    kind: Literal["table", "arrays"] = Field(description="Named columns, or arrays X and y (possibly images).")
    rows: int
    columns: list[ColumnRead] = Field(description="The profile of every column (for arrays: X and y).")
    target: str | None = Field(description="The default target column of jobs on this dataset.")
    target_summary: TargetSummary | None = Field(description="The target's class balance or range.")
    sha256: str = Field(description="SHA-256 of the uploaded bytes; identical bytes are stored once.")
    size_bytes: int
    source: Literal["upload", "synthetic"]
    generator: dict[str, Any] | None = Field(description="The generator's parameters, for synthetic datasets.")
    na_values: list[str] | None = Field(
        None,
        description="The cell texts read as missing (every CSV column, Parquet text columns), compared after "
        'removing surrounding spaces and tabs; "" stands for empty and blank cells. Null for arrays, '
        "synthetic data and uploads from before markers were recorded.",
    )
    warnings: list[str] = Field(
        [], description="Sentences on the columns jobs leave out by default (ids, constants, dates, ...)."
    )
    created_at: datetime


class DatasetPage(Page[DatasetRead]):
    """Datasets, newest first."""


class BuiltinRead(BaseModel):
    id: str = Field(description="Use as a job's `dataset`.")
    task: Literal["classification", "regression"]
    rows: int
    features: int
    classes: int | None
    image_shape: list[int] | None = Field(description="(C, H, W) for image data, usable by a cnn.")
    sha256: str
    description: str


class CorrelatedGroup(StrictModel):
    size: int = Field(ge=2, le=100, description="Features in the group.")
    correlation: float = Field(ge=0.0, lt=1.0, description="Pairwise correlation of the group's features.")
    informative: bool = Field(
        True, description="Whether the group's features carry signal (all of them equally) or are pure noise."
    )


class SyntheticCreate(StrictModel):
    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "correlated-groups",
                    "task": "regression",
                    "n_samples": 500,
                    "n_features": 20,
                    "n_informative": 2,
                    "groups": [{"size": 5, "correlation": 0.9}],
                    "noise": 1.0,
                    "seed": 0,
                }
            ]
        }
    }

    name: str = Field(pattern=NAME_PATTERN, description=f"Dataset name: {NAME_RULE}.")
    task: Literal["classification", "regression"] = "regression"
    n_samples: int = Field(500, ge=10, le=1_000_000)
    n_features: int = Field(20, ge=1, le=10_000)
    n_informative: int = Field(5, ge=0, description="Independent informative features, besides the groups.")
    groups: list[CorrelatedGroup] = Field(
        [],
        max_length=100,
        description="Groups of correlated features: the lasso tends to keep one feature of an informative "
        "group and zero the rest, the elastic net spreads weight across the group.",
    )
    n_classes: int = Field(2, ge=2, le=100, description="Classes, for classification.")
    noise: float = Field(
        1.0, ge=0.0, le=1e6, description="Standard deviation of the noise added to the target's signal."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1)
    target: str = Field("target", pattern=NAME_PATTERN, description="Name of the target column.")

    @model_validator(mode="after")
    def _features_fit(self) -> Self:
        if self.n_samples * self.n_features > MAX_SYNTHETIC_VALUES:
            raise ValueError(
                f"n_samples x n_features is {self.n_samples * self.n_features:,}; at most {MAX_SYNTHETIC_VALUES:,} "
                "values are generated in one request"
            )
        used = self.n_informative + sum(group.size for group in self.groups)
        if used > self.n_features:
            raise ValueError(
                f"n_informative plus the groups' sizes is {used}, more than n_features ({self.n_features})"
            )
        return self
