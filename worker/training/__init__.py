"""The PyTorch training engine: takes a config and arrays, calls a reporter. Knows nothing of the
database, Celery or HTTP, so it can be used and tested as a plain library."""

from worker.training.config import TrainConfig
from worker.training.data import ArrayDataset
from worker.training.engine import Canceled, Diverged, TrainOutcome, train
from worker.training.errors import InvalidData
from worker.training.reporting import EpochReport, NullReporter, Reporter

__all__ = [
    "ArrayDataset",
    "Canceled",
    "Diverged",
    "EpochReport",
    "InvalidData",
    "NullReporter",
    "Reporter",
    "TrainConfig",
    "TrainOutcome",
    "train",
]
