"""Queue and task names: the API enqueues by name and never imports the worker."""

from __future__ import annotations

TASK_TRAIN_JOB = "regtrain.train_job"

# CPU-only workers consume QUEUE_TRAIN; GPU workers consume both, so "auto" jobs run wherever there is room.
QUEUE_TRAIN = "regtrain.train"
QUEUE_TRAIN_GPU = "regtrain.train.gpu"
ALL_QUEUES = (QUEUE_TRAIN, QUEUE_TRAIN_GPU)


def queue_for_device(device: str) -> str:
    return QUEUE_TRAIN_GPU if device == "cuda" else QUEUE_TRAIN
