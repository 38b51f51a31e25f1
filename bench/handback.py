"""A job handed back at shutdown runs again as soon as a worker is available, not after the sweeper.

  job       a digits MLP long enough to be mid-training when its worker stops
  each try  the worker gets SIGTERM once the job has recorded an epoch: it hands the job back (queued,
            a message on the broker) and exits. Then a new worker process starts; `available` is when
            it prints `regtrain worker: ready`, `running` is the job's next attempt's started_at.
  figure    running - available, per try, and POST -> queued again after the SIGTERM

The scheduler runs with its default sweep delay (REGTRAIN_SWEEP_AFTER_SECONDS), so a job left for the
sweeper would show up as tens of seconds. Target: within 2 s of the worker being available.

    python -m bench.handback [--tries 5] [--distributed]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from datetime import datetime
from typing import Any

from bench.stack import StackClient, add_stack_options, running, stacks_from

JOB = {
    "dataset": "builtin:digits",
    "model": {"hidden_layers": [64]},
    "training": {"epochs": 400, "batch_size": 32, "early_stopping": None},
}
READY = b"regtrain worker: ready"


def wait(condition: Any, timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def start_worker(client: StackClient, name: str) -> tuple[Any, float]:
    """Starts a worker and returns it with the wall-clock time it said it was ready."""
    log = client.home / f"{name}.log"
    process = client.start("worker", name)
    wait(lambda: log.exists() and READY in log.read_bytes(), 120, f"{name} to be ready")
    return process, time.time()


def one_try(client: StackClient, worker: Any, index: int) -> tuple[float, float, Any]:
    job_id = client.post("/v1/jobs", json=JOB).json()["id"]
    wait(lambda: client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1, 120, "an epoch", 0.05)
    os.killpg(worker.pid, signal.SIGTERM)
    asked = time.monotonic()
    wait(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued", 30, "the hand-back")
    handed_back = time.monotonic() - asked
    worker.wait(timeout=60)
    worker, available = start_worker(client, f"worker-{index + 1}")

    def resumed() -> dict[str, Any] | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] == "running" and job["attempts"] >= 2 else None

    job = wait(resumed, 120, "the job to run again")
    started = datetime.fromisoformat(job["started_at"]).timestamp()
    client.post(f"/v1/jobs/{job_id}/cancel")
    return handed_back, started - available, worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=5)
    add_stack_options(parser)
    args = parser.parse_args()
    stacks = stacks_from(args)
    for name, settings in stacks.items():
        with running(("api", "scheduler"), **settings) as client:
            worker, _ = start_worker(client, "worker-0")
            handed, resumed = [], []
            for index in range(args.tries):
                handed_back, after_ready, worker = one_try(client, worker, index)
                handed.append(handed_back)
                resumed.append(after_ready)
            print(
                f"{name:<10} {args.tries} tries  SIGTERM -> queued: median {statistics.median(handed):.2f} s, "
                f"max {max(handed):.2f} s  worker ready -> job running again: median "
                f"{statistics.median(resumed):.2f} s, max {max(resumed):.2f} s (target <= 2 s)"
            )


if __name__ == "__main__":
    main()
