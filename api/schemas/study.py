"""Study request and response bodies: a base job, a grid and/or named variants, cross-validation, a
selection rule and an optional refit, for choosing a regularizer and its strength."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import Page, StrictModel
from api.schemas.job import DatasetRef, JobCreate, JobError
from models.job_status import JobStatus

# The parameters whose `path` is scikit-learn's alpha grid, computed from the training data.
PATH_PARAMETERS = ("regularization.l1", "regularization.l2", "regularization.elastic_net.alpha")


class PathGrid(StrictModel):
    n: int = Field(100, ge=2, le=1000, description="Number of penalties on the path (scikit-learn's n_alphas).")
    eps: float = Field(
        1e-3, gt=0.0, lt=1.0, description="The smallest penalty is eps * alpha_max (scikit-learn's eps)."
    )


class SearchAxis(StrictModel):
    """One axis of the grid: give exactly one of `values`, `log_range` or `path`."""

    values: list[Any] | None = Field(None, min_length=1, max_length=1000, description="The values, as given.")
    log_range: Annotated[list[float], Field(min_length=3, max_length=3)] | None = Field(
        None,
        description="[low, high, n]: n values geometrically spaced from high down to low (both > 0), as "
        "numpy.geomspace(high, low, n).",
    )
    path: PathGrid | None = Field(
        None,
        description="For regularization.l1, regularization.l2 and regularization.elastic_net.alpha: "
        "scikit-learn's grid, alpha_max = max|X^T y| / (n * l1_ratio) on the centered training data, then n "
        "values geometrically down to eps * alpha_max.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [name for name in ("values", "log_range", "path") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of values, log_range or path (got {', '.join(given) or 'none'})")
        if self.log_range is not None:
            low, high, n = self.log_range
            if not (0 < low <= high) or n != int(n) or not 1 <= n <= 1000:
                raise ValueError("log_range is [low, high, n] with 0 < low <= high and n a whole number in 1..1000")
        return self


class CrossValidation(StrictModel):
    folds: int = Field(5, ge=2, le=50, description="k of k-fold cross-validation (stratified for classification).")
    shuffle: bool = Field(
        False,
        description="false gives scikit-learn's KFold/StratifiedKFold folds exactly (contiguous blocks); true "
        "shuffles rows with `seed` first.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds the shuffle when `shuffle` is true.")


Metric = Literal["data_loss", "mse", "accuracy", "balanced_accuracy", "log_loss", "r2", "rmse", "mae"]
LOWER_IS_BETTER = frozenset({"data_loss", "mse", "log_loss", "rmse", "mae"})


class Selection(StrictModel):
    metric: Metric | None = Field(
        None,
        description="Held-out metric that ranks members. Default: `mse` for regression (scikit-learn's "
        "ElasticNetCV), `accuracy` for classification (LogisticRegressionCV).",
    )
    rule: Literal["min", "1se"] = Field(
        "min",
        description="`min`: the best mean score. `1se` (glmnet's lambda.1se, needs cv): the largest penalty whose "
        "mean score is within one standard error (across folds) of the best.",
    )


EXAMPLE_STUDY: dict[str, Any] = {
    "name": "diabetes-elastic-net-cv",
    "job": {"dataset": "builtin:diabetes", "model": {"type": "linear"}, "training": {"validation_fraction": 0.0}},
    "search": {
        "regularization.elastic_net.alpha": {"path": {"n": 100, "eps": 0.001}},
        "regularization.elastic_net.l1_ratio": {"values": [0.1, 0.5, 0.9]},
    },
    "cv": {"folds": 5},
    "select": {"metric": "mse", "rule": "min"},
    "refit": True,
}


class StudyCreate(StrictModel):
    model_config = StrictModel.model_config | {"json_schema_extra": {"examples": [EXAMPLE_STUDY]}}

    name: str | None = Field(None, max_length=200, description="A label for people.")
    job: JobCreate = Field(description="The base job: exactly what POST /v1/jobs accepts.")
    search: dict[str, SearchAxis] = Field(
        default_factory=dict,
        max_length=8,
        description="A grid over dotted spec paths (e.g. `regularization.l2`); several axes form the cartesian "
        "product.",
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        max_length=64,
        description="Named partial specs merged into the base, for paired comparisons (e.g. `none`, `l1`, "
        "`dropout`). With a grid too, every variant is crossed with every grid point.",
    )
    cv: CrossValidation | None = Field(
        None, description="k-fold cross-validation over the non-test rows; null: the base job's validation split."
    )
    select: Selection = Field(default_factory=Selection)
    refit: bool = Field(
        False,
        description="Train the selected member on all non-test rows as an ordinary job (artifact, predict, "
        "weights), linked as `refit_job_id`.",
    )


class MemberScore(BaseModel):
    position: int
    variant: str | None
    params: dict[str, Any]
    mean: float | None = Field(description="Mean of the selection metric over the folds.")
    standard_error: float | None = Field(description="Its standard error across folds (null without cv).")


class StudyProgress(BaseModel):
    fits: int = Field(description="Member fits finished (a member on one fold is one fit).")
    total: int = Field(description="Member fits in the study.")


class StudyRead(BaseModel):
    id: str
    name: str | None
    status: JobStatus
    task: Literal["classification", "regression"]
    spec: dict[str, Any] = Field(description="The normalized study: the base job with its defaults, and the rest.")
    dataset: DatasetRef
    members: int = Field(description="Number of members.")
    metric: str = Field(description="The selection metric.")
    rule: Literal["min", "1se"]
    progress: StudyProgress
    best: MemberScore | None = Field(description="The member with the best mean score.")
    one_se: MemberScore | None = Field(description="glmnet's 1-SE member (with cv).")
    selected: MemberScore | None = Field(description="The member the rule selects.")
    test: dict[str, Any] | None = Field(
        description="The selected member's test-split metrics (when the base job asks for a test split); the "
        "test split never takes part in selection."
    )
    refit_job_id: str | None
    refit_error: str | None = Field(None, description="Why the refit job could not be made, if it could not.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobError | None


class StudyPage(Page[StudyRead]):
    """Studies matching the filter, newest first."""


class MemberRead(BaseModel):
    """Read from the study_member row itself."""

    model_config = ConfigDict(from_attributes=True)

    position: int
    variant: str | None
    params: dict[str, Any] = Field(description="The grid point: dotted spec path -> value.")
    spec: dict[str, Any] = Field(description="The member's normalized job spec.")
    mean: float | None = Field(
        description="Mean of the selection metric over the folds.", validation_alias=AliasChoices("mean", "mean_score")
    )
    standard_error: float | None
    fold_scores: list[float | None] = Field(description="The selection metric on each held-out fold.")
    train_score: float | None = Field(description="The selection metric on the training rows.")
    nonzero: int | None = Field(description="Penalized weights that are not exactly zero.")
    zero_fraction: float | None
    epochs: int | None = Field(description="Epochs trained (networks); null for path-solved linear members.")
    best_epoch: int | None
    final_scores: list[dict[str, Any]] | None = Field(description="Per fold, the final epoch's validation metrics.")
    best_scores: list[dict[str, Any]] | None = Field(description="Per fold, the best epoch's validation metrics.")


class MemberPage(Page[MemberRead]):
    """A study's members, in grid order (or sorted by score with `sort=score`)."""


class PathCurve(BaseModel):
    l1_ratio: float
    alphas: list[float] = Field(description="The penalties, from the largest down (scikit-learn's order).")
    coefficients: list[list[float]] = Field(description="coefficients[i][j]: feature i at alpha j.")
    intercepts: list[float] | None = None


class PathRead(BaseModel):
    features: list[str]
    paths: list[PathCurve] = Field(description="One path per l1_ratio, on all non-test training rows.")
