"""Queue and task names: the API enqueues by name and never imports the worker."""

from __future__ import annotations

TASK_TRAIN_JOB = "regtrain.train_job"

# CPU-only workers consume QUEUE_TRAIN; GPU workers consume both, so "auto" jobs run wherever there is room.
QUEUE_TRAIN = "regtrain.train"
QUEUE_TRAIN_GPU = "regtrain.train.gpu"
ALL_QUEUES = (QUEUE_TRAIN, QUEUE_TRAIN_GPU)


def queue_for_device(device: str) -> str:
    return QUEUE_TRAIN_GPU if device == "cuda" else QUEUE_TRAIN


# What each queue carries, for `regtrain worker` to say what it serves.
QUEUE_JOBS = {QUEUE_TRAIN: "jobs with device cpu or auto", QUEUE_TRAIN_GPU: "jobs with device cuda"}


def worker_queues(requested: str | None, has_cuda: bool) -> list[str]:
    """The queues a worker consumes: those asked for (comma-separated), by default the cpu queue and, on
    a machine with CUDA, the gpu queue too. A worker without CUDA never takes the gpu queue, so a job that
    asks for cuda only ever runs where there is one."""
    if requested is None:
        return [QUEUE_TRAIN, QUEUE_TRAIN_GPU] if has_cuda else [QUEUE_TRAIN]
    queues = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in queues if name not in ALL_QUEUES]
    if unknown or not queues:
        raise ValueError(
            f"unknown queue {', '.join(map(repr, unknown)) or '(none given)'}; the queues are {', '.join(ALL_QUEUES)}."
        )
    if QUEUE_TRAIN_GPU in queues and not has_cuda:
        raise ValueError(
            f"this machine has no CUDA device, so it cannot serve {QUEUE_TRAIN_GPU} ({QUEUE_JOBS[QUEUE_TRAIN_GPU]}); "
            f"serve {QUEUE_TRAIN} here and run a worker on a GPU machine for cuda jobs."
        )
    return list(dict.fromkeys(queues))
