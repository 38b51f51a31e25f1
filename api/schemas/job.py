"""Job request and response bodies. Field descriptions are the API's documentation in Swagger UI."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypedDict

from api.schemas.common import FloatPair, Page, StrictModel
from models.job_status import JobStatus

OBJECTIVE = (
    "regtrain minimizes J(w) = (1/n) * sum_i loss_i + l1 * sum|w| + (l2 / 2) * sum w^2, where loss_i is "
    "cross-entropy (classification) or (1/2)(y - y_hat)^2 (regression) and the sums run over the "
    "penalized tensors (weights; biases and normalization parameters are excluded by default)."
)

# The job status enum of the table and the state machine; the old name stays for the routes' query parameter.
JobStatusName = JobStatus


class ModelSpec(StrictModel):
    type: Literal["linear", "mlp", "cnn"] = Field(
        "mlp",
        description="Network: `linear` (linear/logistic/softmax regression), `mlp` (fully connected), "
        "`cnn` (convolutions for image-shaped data such as builtin:digits, then an MLP head).",
    )
    hidden_layers: list[int] = Field(
        [100],
        max_length=16,
        description="Units in each hidden layer of an mlp (or of a cnn's head). Ignored by `linear`. The default "
        "is scikit-learn's MLPClassifier's.",
    )
    activation: Literal["relu", "tanh", "gelu"] = Field("relu", description="Hidden-layer activation.")
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Probability of zeroing each hidden unit's output during training (inverted dropout).",
    )
    channels: list[int] = Field(
        [16, 32],
        min_length=1,
        max_length=8,
        description="Output channels of each convolution block of a cnn (each block also halves the image).",
    )
    kernel_size: int = Field(3, ge=1, le=15, description="Side of the square convolution kernels of a cnn.")
    batch_norm: bool = Field(False, description="Batch normalization after each hidden layer or convolution.")

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, so that 'same' padding keeps the image centred; got {size}")
        return size

    @field_validator("hidden_layers", "channels")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        for width in widths:
            if not 1 <= width <= 65536:
                raise ValueError(f"each layer needs between 1 and 65536 units, got {width}")
        return widths


class ElasticNetSpec(StrictModel):
    alpha: float = Field(
        ge=0.0,
        description="Overall penalty strength, as scikit-learn's ElasticNet(alpha): l1 = alpha * l1_ratio.",
    )
    l1_ratio: float = Field(
        ge=0.0, le=1.0, description="Share of L1 in the mix: l2 = alpha * (1 - l1_ratio). 1 is the lasso."
    )


class RegularizationSpec(StrictModel):
    l1: float = Field(
        0.0,
        ge=0.0,
        description="Coefficient of l1 * sum|w| in the objective. " + OBJECTIVE,
    )
    l2: float = Field(
        0.0,
        ge=0.0,
        description="Coefficient of (l2 / 2) * sum w^2 in the objective (coupled L2, added to the gradient); "
        "with plain SGD it equals PyTorch's weight_decay=l2.",
    )
    elastic_net: ElasticNetSpec | None = Field(
        None,
        description="scikit-learn's ElasticNet(alpha, l1_ratio) parametrization, resolved to "
        "l1 = alpha * l1_ratio and l2 = alpha * (1 - l1_ratio) in the stored spec. Give this or l1/l2, not both.",
    )
    l1_method: Literal["proximal", "subgradient"] = Field(
        "proximal",
        description="`proximal`: soft-threshold w <- sign(w) * max(|w| - lr * l1, 0) after each optimizer "
        "step, which gives exact zeros; `subgradient`: add l1 * sign(w) to the gradient (small values, no "
        "exact zeros).",
    )
    weight_decay: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Decoupled weight decay (AdamW style) for any optimizer: w <- w * (1 - lr * weight_decay) "
        "each step, applied to the penalized tensors. Not part of the objective and never merged with l2.",
    )
    max_norm: float | None = Field(
        None,
        gt=0.0,
        description="After each step, rescale every unit's incoming weight vector (row of a weight matrix, "
        "filter of a convolution) to L2 norm at most max_norm.",
    )
    exclude: list[str] = Field(
        ["bias", "norm"],
        max_length=64,
        description="Tensors left out of every penalty: a pattern excludes a tensor when it occurs in the "
        "tensor's name (`bias`) or matches the whole name as a glob (`hidden.0.*`).",
    )

    @model_validator(mode="after")
    def _elastic_net_alone(self) -> Self:
        net = self.elastic_net
        if net is None:
            return self
        l1, l2 = net.alpha * net.l1_ratio, net.alpha * (1 - net.l1_ratio)
        # A normalized spec carries both the elastic net and the l1/l2 it resolved to; that is fine.
        given = {"l1": self.l1, "l2": self.l2}
        resolved = {"l1": l1, "l2": l2}
        if any(v != 0 and not math.isclose(v, resolved[k], rel_tol=1e-9, abs_tol=1e-15) for k, v in given.items()):
            raise ValueError(
                "elastic_net sets l1 and l2 itself (l1 = alpha * l1_ratio, l2 = alpha * (1 - l1_ratio)); "
                "give either elastic_net or l1/l2, not both"
            )
        self.l1, self.l2 = l1, l2
        return self


# The optimizer of a job that names none, by model type. A linear model gets sgd: its steps scale with the
# gradient, so the weights reach the target's scale (an unscaled regression target such as a price) in a few
# epochs, and the problem is convex. Deeper nets get Adam at 1e-3, scikit-learn's MLP default, which an
# unscaled target does not make diverge. Measured with bench/defaults.py.
DEFAULT_OPTIMIZERS: dict[str, dict[str, Any]] = {
    "linear": {"type": "sgd", "lr": 0.01, "momentum": 0.9},
    "mlp": {"type": "adam", "lr": 0.001},
    "cnn": {"type": "adam", "lr": 0.001},
}
# The learning rate of an optimizer block that names its type but no lr.
DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001}


class OptimizerSpec(StrictModel):
    type: Literal["sgd", "adam", "adamw"] = Field(
        "adam",
        description="`sgd` (with optional momentum), `adam`, or `adamw` (Adam with decoupled weight decay). "
        "Default: sgd with lr 0.01 and momentum 0.9 for a linear model, adam with lr 0.001 for mlp and cnn.",
    )
    lr: float = Field(
        0.001,
        gt=0.0,
        le=10.0,
        description="Learning rate (step size). Default: 0.01 for sgd, 0.001 for adam and adamw.",
    )
    momentum: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Heavy-ball momentum of sgd (0.9 when the whole optimizer is defaulted for a linear model, "
        "else 0). Adam and AdamW use betas.",
    )
    betas: FloatPair = Field(
        (0.9, 0.999), description="Decay rates of Adam's first and second moment estimates, each in [0, 1)."
    )

    @model_validator(mode="after")
    def _optimizer_knobs(self) -> Self:
        if self.type != "sgd" and self.momentum != 0:
            raise ValueError(f"momentum applies to sgd only; {self.type} uses betas")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError("each of betas must lie in [0, 1)")
        return self


class EarlyStoppingSpec(StrictModel):
    patience: int = Field(10, ge=1, description="Epochs without improvement of the validation data loss to wait.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest decrease of the validation data loss that counts.")


class TrainingSpec(StrictModel):
    epochs: int = Field(
        200,
        ge=1,
        description="Passes over the training split (at most the server's limit); early stopping usually ends "
        "a run sooner. 200 is scikit-learn's MLP max_iter.",
    )
    batch_size: int | None = Field(
        32,
        ge=1,
        description="Rows per step; null trains full batch (with sgd: proximal gradient descent). 32 gives a "
        "small dataset enough steps per epoch (bench/defaults.py).",
    )
    validation_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of rows held out for validation (stratified for classification).",
    )
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Share of rows held out for a final test.")
    standardize: bool = Field(
        True,
        description="Scale features by the training split's mean and population standard deviation (ddof=0, "
        "as scikit-learn's StandardScaler). Targets are not scaled.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds initialization, splits, data order and dropout.")
    early_stopping: EarlyStoppingSpec | None = Field(
        default_factory=EarlyStoppingSpec,
        description="Stop when the validation data loss stops improving, and keep the best weights. On by "
        "default (patience 10, scikit-learn's n_iter_no_change) whenever a validation split is held out; null "
        "trains every epoch.",
    )
    precision: Literal["float32", "float64"] = Field(
        "float32", description="Floating-point precision of weights and data during training."
    )
    missing: Literal["refuse", "drop", "mean"] = Field(
        "refuse",
        description="Rows with missing or non-finite values: `refuse` the job at submit (naming the columns), "
        "`drop` those rows, or `mean`: fill numbers with the training split's column mean (a missing category is "
        "all zeros; rows with a missing target are dropped).",
    )
    class_weight: Literal["balanced"] | None = Field(
        None,
        description="Classification only. `balanced`: scikit-learn's class_weight='balanced', each class weighs "
        "n / (n_classes * count_c) on the training split, and the data loss is sum_i w_i * loss_i / n. "
        "null: every row weighs 1.",
    )

    @model_validator(mode="after")
    def _splits_fit(self) -> Self:
        if "early_stopping" not in self.model_fields_set and self.validation_fraction == 0:
            # The default watches the validation loss; without a validation split it is off.
            self.early_stopping = None
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError("validation_fraction + test_fraction must leave at least 10% of rows for training")
        if self.early_stopping is not None and self.validation_fraction == 0:
            raise ValueError("early_stopping watches the validation loss: set validation_fraction above 0")
        return self


EXAMPLE_JOB: dict[str, Any] = {
    "name": "wine-elastic-net",
    "dataset": "builtin:wine",
    "model": {"type": "mlp", "hidden_layers": [32], "activation": "relu", "dropout": 0.1},
    "regularization": {"elastic_net": {"alpha": 0.001, "l1_ratio": 0.5}, "l1_method": "proximal"},
    "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
    "training": {"epochs": 20, "batch_size": 32, "validation_fraction": 0.2, "seed": 0},
}


class JobCreate(StrictModel):
    model_config = StrictModel.model_config | {"json_schema_extra": {"examples": [EXAMPLE_JOB]}}

    name: str | None = Field(None, max_length=200, description="A label for people; need not be unique.")
    dataset: str = Field(
        min_length=1,
        max_length=300,
        description="`builtin:NAME` (iris, wine, breast_cancer, digits, diabetes), a dataset id, "
        "`NAME@latest` or `NAME@VERSION`.",
    )
    target: str | None = Field(None, max_length=200, description="Target column (default: the dataset's target).")
    features: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None,
        max_length=10_000,
        description="Tables: exactly the columns to train on, in this order (also an `id` or `constant` column; "
        "not `datetime` or `high_cardinality` ones, which cannot be encoded). Default: every column whose role "
        "is `feature`. The normalized spec records the resolved list, so a retrain uses the same columns.",
    )
    exclude_columns: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None,
        max_length=10_000,
        description="Tables: columns to leave out, besides those whose role is not `feature`. Not together with "
        "`features`.",
    )
    task: Literal["classification", "regression"] | None = Field(
        None, description="Default: the dataset's task (classification for built-in class labels)."
    )
    model: ModelSpec = Field(default_factory=ModelSpec)
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto` uses a GPU when the worker has one; `cuda` waits for a GPU worker."
    )

    @model_validator(mode="before")
    @classmethod
    def _optimizer_defaults(cls, data: Any) -> Any:
        """The optimizer's defaults depend on the model (DEFAULT_OPTIMIZERS) when the block names no type,
        and lr's on the type (DEFAULT_LR); the normalized spec records the values chosen."""
        if not isinstance(data, dict):
            return data
        optimizer = data.get("optimizer", {})
        model = data.get("model", {})
        if not isinstance(optimizer, dict) or not isinstance(model, dict):
            return data
        if "type" not in optimizer:
            model_type = model.get("type", "mlp")
            optimizer = {**DEFAULT_OPTIMIZERS.get(model_type, DEFAULT_OPTIMIZERS["mlp"]), **optimizer}
        elif "lr" not in optimizer and optimizer["type"] in DEFAULT_LR:
            optimizer = {**optimizer, "lr": DEFAULT_LR[optimizer["type"]]}
        return {**data, "optimizer": optimizer}

    @model_validator(mode="after")
    def _features_or_exclusions(self) -> Self:
        if self.features is not None and self.exclude_columns is not None:
            raise ValueError(
                "give either `features` (exactly the columns to use) or `exclude_columns` (columns to leave out), "
                "not both"
            )
        return self


class DatasetRef(BaseModel):
    id: str = Field(description="Dataset id (`builtin:NAME` for built-ins).")
    name: str
    version: int
    sha256: str = Field(description="SHA-256 of the exact bytes the job trains on.")


class Progress(BaseModel):
    epoch: int = Field(description="Epochs finished so far.")
    epochs: int = Field(description="Epochs asked for.")


class JobError(BaseModel):
    type: str = Field(
        description="`invalid_data` (the data or spec needs a change the message names), `internal` (the "
        "service's own fault, logged under `reference`), `diverged`, `canceled`, `worker_lost` or `timeout`."
    )
    message: str
    reference: str | None = Field(
        None, description="For `internal`: the reference the fault was logged under, to quote to an operator."
    )


class JobArtifact(BaseModel):
    partial: bool = Field(
        description="true: the job stopped before training finished (canceled, timed out or failed) and these "
        "are the weights of its last checkpoint."
    )
    epoch: int | None = Field(description="The epoch whose weights the artifact holds.")


class SplitMetrics(TypedDict):
    """Metrics of one split, in eval mode. Classification: accuracy, balanced_accuracy, f1_macro, log_loss,
    roc_auc, confusion_matrix; regression: r2, rmse, mae (the other task's are absent). Each equals
    scikit-learn's function of the same name on the same predictions."""

    data_loss: Annotated[
        float,
        Field(
            description="The objective's data term: mean cross-entropy (each row weighted by its class's weight "
            "with training.class_weight), or mean (1/2)(y - y_hat)^2."
        ),
    ]
    accuracy: NotRequired[Annotated[float, Field(description="Share of rows classified correctly.")]]
    balanced_accuracy: NotRequired[
        Annotated[float, Field(description="Mean recall over the classes present (balanced_accuracy_score).")]
    ]
    f1_macro: NotRequired[
        Annotated[float, Field(description="Unweighted mean of per-class F1 over the classes seen (f1_score, macro).")]
    ]
    log_loss: NotRequired[
        Annotated[float, Field(description="Mean -log p(true class), never class-weighted (log_loss).")]
    ]
    roc_auc: NotRequired[
        Annotated[
            float | None,
            Field(
                description="Area under the ROC curve: of the positive class for two classes, else the macro "
                "average of one-vs-rest AUCs (roc_auc_score, multi_class='ovr'); null when a class is missing "
                "from the split."
            ),
        ]
    ]
    confusion_matrix: NotRequired[
        Annotated[
            list[list[int]],
            Field(description="Counts: rows are the true class, columns the predicted one, in the job's class order."),
        ]
    ]
    r2: NotRequired[Annotated[float, Field(description="Coefficient of determination.")]]
    rmse: NotRequired[Annotated[float, Field(description="Root mean squared error.")]]
    mae: NotRequired[Annotated[float, Field(description="Mean absolute error.")]]


class TrainMetrics(SplitMetrics):
    """The training split's metrics, with the penalty terms of the objective at the final weights."""

    l1_penalty: Annotated[float, Field(description="l1 * sum|w| over the penalized tensors.")]
    l2_penalty: Annotated[float, Field(description="(l2 / 2) * sum w^2 over the penalized tensors.")]


class WeightTotals(TypedDict):
    count: int
    l1_norm: Annotated[float, Field(description="sum |w|")]
    l2_norm: Annotated[float, Field(description="sqrt(sum w^2)")]
    zero_fraction: Annotated[float, Field(description="Share of entries exactly 0.")]
    near_zero_fraction: Annotated[float, Field(description="Share of entries with |w| < 1e-3.")]


class PenalizedTensor(TypedDict):
    name: str
    l1: float
    l2: float
    weight_decay: float


class TrainingTiming(TypedDict):
    """Where the training time went, summed over the epochs."""

    steps_seconds: Annotated[float, Field(description="Forward, backward and optimizer steps.")]
    evaluation_seconds: Annotated[float, Field(description="Per-epoch evaluation (training sample, validation).")]
    reporting_seconds: Annotated[float, Field(description="Weight statistics, storing metrics and checkpoints.")]


class JobResult(BaseModel):
    """What the worker's training engine computed (worker/training/results.py, TrainingResult); a test
    holds the two field sets equal (tests/api/test_result_contract.py), so nothing the engine computes is
    dropped here."""

    epochs_run: int
    best_epoch: int = Field(
        description="Epoch with the lowest validation data loss (training loss without validation)."
    )
    weights_epoch: int = Field(description="Epoch whose weights the artifact holds (best_epoch after early stopping).")
    train: TrainMetrics = Field(
        description="Training split, eval mode, with the penalty terms l1_penalty and l2_penalty."
    )
    validation: SplitMetrics | None = Field(description="Validation split; null when validation_fraction is 0.")
    test: SplitMetrics | None = Field(None, description="Test split; null when test_fraction is 0.")
    weights: WeightTotals = Field(description="Totals over the penalized tensors of the final weights.")
    penalized: list[PenalizedTensor] = Field(description="The tensors the penalties applied to, with coefficients.")
    device: str
    seconds: float = Field(description="Wall time of training, data preparation included.")
    samples_per_second: float = Field(description="Training rows processed per second of optimizer steps.")
    timing: TrainingTiming | None = Field(
        None, description="Training time by phase; null for jobs trained before it was recorded."
    )


class JobRead(BaseModel):
    """Read from the job row itself (models.job.Job and its grouped properties)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    status: JobStatus
    task: Literal["classification", "regression"]
    task_reason: str = Field(description="`given`, or the rule that inferred the task from the target.")
    spec: JobCreate = Field(description="The normalized spec: defaults filled in, elastic_net resolved to l1/l2.")
    dataset: DatasetRef
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress
    attempts: int = Field(description="How many times a worker has started this job.")
    result: JobResult | None
    error: JobError | None
    artifact: JobArtifact | None = Field(
        None,
        description="The weights /artifact and /predict serve: complete once succeeded, partial (marked, with the "
        "epoch) for a job that stopped after finishing an epoch; null when there are none.",
    )
    schedule_id: str | None = Field(description="The schedule that made this job, if any.")
    scheduled_for: datetime | None = Field(description="The schedule's slot this job was made for.")
    parent_id: str | None = Field(description="The job this one retrains, if any.")
    warnings: list[str] = Field(
        [], description="What the service decided at submit, in sentences: the columns it left out, and why."
    )


class JobPage(Page[JobRead]):
    """Jobs matching the filter, newest first."""


class EpochRead(TypedDict):
    epoch: int
    train_data_loss: float
    l1_penalty: float
    l2_penalty: float
    # Null when the job holds out no validation split (training.validation_fraction 0).
    val_data_loss: NotRequired[float | None]
    val_accuracy: NotRequired[float | None]
    val_r2: NotRequired[float | None]
    val_rmse: NotRequired[float | None]
    l1_norm: float
    l2_norm: float
    zero_fraction: float
    lr: float
    seconds: float


class MetricsRead(BaseModel):
    epochs: list[EpochRead] = Field(description="One entry per finished epoch, oldest first.")


class Histogram(BaseModel):
    edges: list[float] = Field(description="Bin edges, fixed at the first epoch so epochs compare.")
    counts: list[int] = Field(description="Weights per bin; the outermost bins also count values beyond the edges.")


class LayerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="The tensor's name in the artifact.")
    penalized: bool
    shape: list[int]
    count: int
    l1_norm: float = Field(description="sum |w|")
    l2_norm: float = Field(description="sqrt(sum w^2)")
    max_abs: float
    mean: float
    std: float = Field(description="Population standard deviation.")
    zero_fraction: float = Field(description="Share of entries exactly 0.")
    near_zero_fraction: float = Field(description="Share of entries with |w| < 1e-3.")
    dead_units: int | None = Field(description="Units (rows; filters for convolutions) whose weights are all 0.")
    spectral_norm: float | None = Field(
        description="Largest singular value (of the (out, -1) reshaped kernel for convolutions)."
    )
    histogram: Histogram


class WeightTotalsRead(BaseModel):
    count: int
    l1_norm: float
    l2_norm: float
    max_abs: float
    zero_fraction: float
    near_zero_fraction: float


class WeightsRead(BaseModel):
    epoch: int
    epochs_recorded: list[int] = Field(description="Epochs for which statistics are stored.")
    layers: list[LayerRead]
    total: WeightTotalsRead = Field(description="Totals over the penalized tensors.")


class RetrainRead(BaseModel):
    job: JobRead = Field(description="The new job; its parent_id is the retrained job.")
    changes: dict[str, Any] = Field(
        description="What differs from the parent: `dataset` {from, to} with version and sha256; empty if nothing."
    )
