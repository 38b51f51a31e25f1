"""Which queues a worker serves: cuda jobs only where there is CUDA, auto and cpu jobs anywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from core.queues import QUEUE_TRAIN, QUEUE_TRAIN_GPU, queue_for_device, worker_queues


def test_jobs_go_to_the_queue_of_their_device() -> None:
    assert queue_for_device("cuda") == QUEUE_TRAIN_GPU
    assert queue_for_device("auto") == QUEUE_TRAIN
    assert queue_for_device("cpu") == QUEUE_TRAIN


def test_by_default_a_worker_serves_the_gpu_queue_only_where_there_is_cuda() -> None:
    assert worker_queues(None, has_cuda=False) == [QUEUE_TRAIN]
    assert worker_queues(None, has_cuda=True) == [QUEUE_TRAIN, QUEUE_TRAIN_GPU]


def test_asked_for_queues_are_checked() -> None:
    assert worker_queues(f" {QUEUE_TRAIN_GPU},{QUEUE_TRAIN},{QUEUE_TRAIN_GPU}", has_cuda=True) == [
        QUEUE_TRAIN_GPU,
        QUEUE_TRAIN,
    ]
    no_cuda = re.escape("this machine has no CUDA device, so it cannot serve regtrain.train.gpu")
    with pytest.raises(ValueError, match=no_cuda):
        worker_queues(QUEUE_TRAIN_GPU, has_cuda=False)
    unknown = re.escape("unknown queue 'gpu'; the queues are regtrain.train, regtrain.train.gpu")
    with pytest.raises(ValueError, match=unknown):
        worker_queues("gpu", has_cuda=True)
    with pytest.raises(ValueError, match="unknown queue"):
        worker_queues(" , ", has_cuda=True)


def test_a_worker_without_cuda_refuses_the_gpu_queue_with_a_sentence(tmp_path: object) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so a worker may serve the gpu queue here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGTRAIN_")} | {"REGTRAIN_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "worker", "--queues", QUEUE_TRAIN_GPU],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "this machine has no CUDA device, so it cannot serve regtrain.train.gpu" in done.stderr
