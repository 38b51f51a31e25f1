"""What the engine tells the outside world, and how it is asked to stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    train_data_loss: float
    l1_penalty: float
    l2_penalty: float
    validation: dict[str, float] | None
    totals: dict[str, float]
    # Per-layer statistics; None on epochs the recording schedule skips (long runs).
    layers: list[dict[str, Any]] | None = None
    lr: float = 0.0
    seconds: float = 0.0


class Reporter(Protocol):
    def on_epoch(self, report: EpochReport) -> None:
        """Called once per finished epoch, after its metrics and weight statistics are computed."""

    def on_layers(self, epoch: int, layers: list[dict[str, Any]]) -> None:
        """Per-layer statistics of the kept weights, when their epoch's report did not carry them."""

    def should_stop(self) -> bool:
        """Checked at every step boundary, so it must be cheap (read a flag, never a query)."""
        ...


class NullReporter:
    def __init__(self) -> None:
        self.reports: list[EpochReport] = []
        self.layers: dict[int, list[dict[str, Any]]] = {}

    def on_epoch(self, report: EpochReport) -> None:
        self.reports.append(report)
        if report.layers is not None:
            self.layers[report.epoch] = report.layers

    def on_layers(self, epoch: int, layers: list[dict[str, Any]]) -> None:
        self.layers[epoch] = layers

    def should_stop(self) -> bool:
        return False
