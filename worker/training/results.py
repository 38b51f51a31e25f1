"""The typed result of a training run: what the engine computes and the worker stores in job.result.

The API's response schema (api/schemas/job.py, JobResult) carries every field of these classes; a test
(tests/api/test_result_contract.py) holds the two field sets equal, so a field cannot be computed here
and dropped on the way out. `to_json` is the stored form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SplitMetrics:
    """One split in eval mode. Classification: accuracy, balanced_accuracy, f1_macro, log_loss,
    roc_auc (binary, or the macro one-vs-rest average; None when a class is missing from the split)
    and confusion_matrix (rows true class, columns predicted, in the job's class order). Regression:
    r2, rmse and mae. Each is scikit-learn's function of the same name on the same predictions
    (worker/training/metrics.py); the other task's metrics are None and left out of the stored form.
    data_loss is the objective's data term (class-weighted when the job weighs classes); log_loss
    never is."""

    data_loss: float
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    f1_macro: float | None = None
    log_loss: float | None = None
    roc_auc: float | None = None
    confusion_matrix: list[list[int]] | None = None
    r2: float | None = None
    rmse: float | None = None
    mae: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class TrainMetrics(SplitMetrics):
    """The training split, with the objective's penalty terms at the final weights."""

    l1_penalty: float = 0.0
    l2_penalty: float = 0.0


@dataclass(frozen=True)
class WeightTotals:
    """Totals over the penalized tensors of the final weights."""

    count: int
    l1_norm: float
    l2_norm: float
    zero_fraction: float
    near_zero_fraction: float


@dataclass(frozen=True)
class PenalizedTensor:
    name: str
    l1: float
    l2: float
    weight_decay: float


@dataclass(frozen=True)
class TrainingTiming:
    """Seconds summed over the epochs, by phase."""

    steps_seconds: float
    evaluation_seconds: float
    reporting_seconds: float


@dataclass(frozen=True)
class TrainingResult:
    epochs_run: int
    best_epoch: int
    # The epoch whose weights are kept (best_epoch after early stopping).
    weights_epoch: int
    train: TrainMetrics
    validation: SplitMetrics | None
    weights: WeightTotals
    penalized: list[PenalizedTensor]
    device: str
    # Wall time of the whole run, data preparation included.
    seconds: float
    # Training rows per second of optimizer steps.
    samples_per_second: float
    timing: TrainingTiming
    test: SplitMetrics | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form: nested plain dicts, split metrics without the metrics of the other task,
        and no `test` key when there is no test split."""
        stored: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, SplitMetrics):
                stored[field.name] = value.to_json()
            elif isinstance(value, list):
                stored[field.name] = [asdict(item) for item in value]
            elif hasattr(value, "__dataclass_fields__"):
                stored[field.name] = asdict(value)
            elif value is not None or field.name != "test":
                stored[field.name] = value
        return stored
