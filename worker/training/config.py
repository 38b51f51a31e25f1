"""The engine's view of a job spec: plain dataclasses built from the normalized spec dict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class ModelConfig:
    type: Literal["linear", "mlp", "cnn"] = "mlp"
    hidden_layers: tuple[int, ...] = (64,)
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    dropout: float = 0.0
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    batch_norm: bool = False


@dataclass(frozen=True)
class RegularizationConfig:
    l1: float = 0.0
    l2: float = 0.0
    l1_method: Literal["proximal", "subgradient"] = "proximal"
    weight_decay: float = 0.0
    max_norm: float | None = None
    exclude: tuple[str, ...] = ("bias", "norm")


@dataclass(frozen=True)
class OptimizerConfig:
    type: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int = 5
    min_delta: float = 0.0


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 10
    batch_size: int | None = 64
    validation_fraction: float = 0.2
    test_fraction: float = 0.0
    standardize: bool = True
    seed: int = 0
    early_stopping: EarlyStoppingConfig | None = None
    precision: Literal["float32", "float64"] = "float32"
    missing: Literal["refuse", "drop", "mean"] = "refuse"
    # "balanced": scikit-learn's class_weight, n / (n_classes * count_c) on the training split.
    class_weight: Literal["balanced"] | None = None


@dataclass(frozen=True)
class TrainConfig:
    task: Task
    model: ModelConfig = field(default_factory=ModelConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @classmethod
    def from_spec(cls, spec: dict[str, Any], task: Task) -> TrainConfig:
        """Build from a normalized job spec (every default already filled, elastic net resolved)."""
        model = dict(spec["model"])
        model["hidden_layers"] = tuple(model["hidden_layers"])
        model["channels"] = tuple(model["channels"])
        reg = {k: v for k, v in spec["regularization"].items() if k != "elastic_net"}
        reg["exclude"] = tuple(reg["exclude"])
        optimizer = dict(spec["optimizer"])
        optimizer["betas"] = tuple(optimizer["betas"])
        training = dict(spec["training"])
        stopping = training.pop("early_stopping", None)
        return cls(
            task=task,
            model=ModelConfig(**model),
            regularization=RegularizationConfig(**reg),
            optimizer=OptimizerConfig(**optimizer),
            training=TrainingConfig(**training, early_stopping=EarlyStoppingConfig(**stopping) if stopping else None),
            device=spec.get("device", "auto"),
        )
