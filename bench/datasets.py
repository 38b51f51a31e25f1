"""Dataset upload and loading: a large numeric CSV through a real regtrain stack, in one run.

  data        a numeric CSV (10 float columns x0..x9 and an integer target `label` with 3 classes,
              header row), written in chunks with NumPy to about --megabytes MB (10^6 bytes)
  baseline    pyarrow.csv.read_csv of the same file in this process: its time, and this process's
              RSS growth (the whole table in memory), as the reference the upload is compared with
  upload      a migrated database, API and one worker as subprocesses on the embedded default (SQLite,
              SQLite broker) in a temporary REGTRAIN_HOME; POST /v1/datasets with the file streamed
              from disk as multipart; the request is timed to its response (received, stored and
              profiled), while a thread reads the API process's VmRSS from /proc every 50 ms. The same
              thread notes when the spooled upload appears under incoming/ (the body is parsed) and when
              the staging folder appears (ingest starts), which splits the request into phases.
  jobs        a warm-up job on builtin:iris (the worker's first task pays one-off costs that have
              nothing to do with the dataset), then two identical jobs on NAME@latest (linear model,
              2 epochs, batch 4096): the time from POST /v1/jobs until progress.epoch >= 1, split into
              the queue wait (created_at -> started_at), the first epoch's own seconds (its metrics)
              and the rest, which is the worker loading and preparing the dataset. The worker caches a
              loaded dataset by sha256, so the second job skips the parse and the feature encoding.

Targets: the API's RSS grows by less than 150 MiB while it takes a 200 MB CSV; the second
job reaches its first epoch sooner than the first. One run at a time: the machine's other work shows
in every figure.

    python -m bench.datasets [--megabytes 200]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

FEATURES, CLASSES = 10, 3
CHUNK_ROWS = 100_000
SEED = 0
RSS_TARGET_MIB = 150
SAMPLE_SECONDS = 0.05
DATASET_NAME = "bench-numeric"
JOB_BODY: dict[str, Any] = {
    "dataset": f"{DATASET_NAME}@latest",
    "model": {"type": "linear"},
    "training": {"epochs": 2, "batch_size": 4096},
}
# Run first, so that the first measured job does not also pay for the worker's first task.
WARM_UP_BODY: dict[str, Any] = {"dataset": "builtin:iris", "model": {"type": "linear"}, "training": {"epochs": 1}}
TERMINAL = {"succeeded", "failed", "canceled"}
MB, MIB = 1_000_000, 2**20


def write_csv(path: Path, megabytes: float) -> int:
    """Writes about `megabytes` MB of CSV a chunk at a time and returns its row count.

    The classes come from a random linear teacher with noise, so a linear model has something to learn.
    """
    rng = np.random.default_rng(SEED)
    teacher = rng.standard_normal((FEATURES, CLASSES))
    wanted = int(megabytes * MB)
    fmt = ["%.6f"] * FEATURES + ["%d"]
    rows = 0
    with path.open("wb") as out:
        out.write((",".join([*(f"x{i}" for i in range(FEATURES)), "label"]) + "\n").encode())
        chunk = CHUNK_ROWS
        while out.tell() < wanted:
            X = rng.standard_normal((chunk, FEATURES))
            y = (X @ teacher + rng.standard_normal((chunk, CLASSES))).argmax(axis=1)
            before = out.tell()
            np.savetxt(out, np.column_stack([X, y]), fmt=fmt, delimiter=",")
            rows += chunk
            bytes_per_row = (out.tell() - before) / chunk
            # The last chunk is cut to the rows still missing, so the file lands near the size asked.
            chunk = max(1, min(CHUNK_ROWS, math.ceil((wanted - out.tell()) / bytes_per_row)))
    return rows


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return math.nan


@dataclass
class Sampler:
    """VmRSS of one process every SAMPLE_SECONDS on a thread, and the first moment each probe is true."""

    pid: int
    probes: dict[str, Callable[[], bool]] = field(default_factory=dict)
    samples: list[tuple[float, float]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.before = rss_mib(self.pid)
        self.started = time.perf_counter()

    def _run(self) -> None:
        while True:
            now = time.perf_counter() - self.started
            self.samples.append((now, rss_mib(self.pid)))
            for name, probe in self.probes.items():
                if name not in self.marks and probe():
                    self.marks[name] = now
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter() - self.started, rss_mib(self.pid)))

    def peak(self, start: float = 0.0, end: float = math.inf) -> float:
        # Half-open: a probe is read just after the sample of the same tick, so that sample may already
        # belong to the next phase.
        window = [rss for at, rss in self.samples if start <= at < end]
        return max(window, default=math.nan)


def baseline(path: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    with Sampler(os.getpid()) as sampler:
        started = time.perf_counter()
        table = pa_csv.read_csv(path)
        seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "rows": table.num_rows,
        "columns": table.num_columns,
        "table_mib": table.nbytes / MIB,
        "before_mib": sampler.before,
        "peak_mib": sampler.peak(),
    }
    del table
    pa.default_memory_pool().release_unused()
    return result


def upload(stack: Any, path: Path) -> dict[str, Any]:
    incoming = stack.home / "incoming"
    datasets = stack.home / "datasets"
    probes = {
        "spooled": lambda: incoming.is_dir() and any(incoming.glob("*.upload")),
        "ingesting": lambda: any(datasets.glob("staging-*")),
    }
    pid = stack.processes["api"].pid
    with path.open("rb") as handle, Sampler(pid, probes) as sampler:
        started = time.perf_counter() - sampler.started
        response = stack.client.post(
            "/v1/datasets",
            data={"name": DATASET_NAME, "target": "label"},
            files={"file": (path.name, handle, "text/csv")},
            headers=_fresh_key(),
            timeout=None,
        )
        ended = time.perf_counter() - sampler.started
    if response.status_code != 201:
        raise SystemExit(f"upload failed: {response.status_code} {response.text}\n{stack.logs()}")
    spooled = sampler.marks.get("spooled", math.nan)
    ingesting = sampler.marks.get("ingesting", math.nan)
    return {
        "seconds": ended - started,
        "rows": response.json()["rows"],
        "before_mib": sampler.before,
        "peak_mib": sampler.peak(),
        "after_mib": rss_mib(pid),
        # Phases, from when the files appear: parsing the body into Starlette's spool, copying it under
        # incoming/ with its sha256, then the CSV -> Parquet conversion and the profile.
        "phases": [
            ("receive multipart", started, spooled, sampler.peak(started, spooled)),
            ("copy + sha256", spooled, ingesting, sampler.peak(spooled, ingesting)),
            ("ingest + profile", ingesting, ended, sampler.peak(ingesting)),
        ],
    }


def _fresh_key() -> dict[str, str]:
    # A new key per request: each upload and each job is meant to create, never to replay.
    return {"Idempotency-Key": str(uuid.uuid4())}


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def submit(stack: Any, body: dict[str, Any]) -> str:
    response = stack.client.post("/v1/jobs", json=body, headers=_fresh_key())
    if response.status_code != 201:
        raise SystemExit(f"job submit failed: {response.status_code} {response.text}")
    return str(response.json()["id"])


def warm_up(stack: Any) -> float:
    started = time.perf_counter()
    job = stack.wait_for(submit(stack, WARM_UP_BODY), timeout=600)
    if job["status"] != "succeeded":
        raise SystemExit(f"warm-up job {job['status']}: {job['error']}\n{stack.logs()}")
    return time.perf_counter() - started


def job_to_first_epoch(stack: Any) -> dict[str, Any]:
    started = time.perf_counter()
    job_id = submit(stack, JOB_BODY)
    while True:
        job = stack.client.get(f"/v1/jobs/{job_id}").json()
        if job["progress"]["epoch"] >= 1:
            first_epoch = time.perf_counter() - started
            break
        if job["status"] in TERMINAL:
            raise SystemExit(f"job {job_id} ended {job['status']} before its first epoch: {job['error']}")
        time.sleep(SAMPLE_SECONDS)
    job = stack.wait_for(job_id, timeout=3600)
    total = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job_id} {job['status']}: {job['error']}\n{stack.logs()}")
    epochs = stack.client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    queued = (_timestamp(job["started_at"]) - _timestamp(job["created_at"])).total_seconds()
    epoch_one = float(epochs[0]["seconds"])
    return {
        "first_epoch": first_epoch,
        "queued": queued,
        "epoch_one": epoch_one,
        "started": first_epoch - queued,
        "load": first_epoch - queued - epoch_one,
        "total": total,
        "accuracy": (job["result"].get("validation") or {}).get("accuracy"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=200, help="Size of the generated CSV in MB (10^6 bytes).")
    args = parser.parse_args()

    from tests.support.stack import start_stack

    with tempfile.TemporaryDirectory(prefix="regtrain-bench-datasets-") as scratch:
        path = Path(scratch) / "numeric.csv"
        started = time.perf_counter()
        rows = write_csv(path, args.megabytes)
        size = path.stat().st_size
        print(f"  wrote {size / MB:,.0f} MB, {rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        reference = baseline(path)
        print(f"  pyarrow read_csv {reference['seconds']:.1f} s", file=sys.stderr)

        stack = start_stack(
            Path(scratch) / "home",
            database_url=None,
            broker_url=None,
            extra_env={"REGTRAIN_MAX_UPLOAD_BYTES": str(2**30)},
        )
        try:
            uploaded = upload(stack, path)
            print(f"  upload {uploaded['seconds']:.1f} s", file=sys.stderr)
            warm_up_seconds = warm_up(stack)
            print(f"  warm-up job {warm_up_seconds:.1f} s", file=sys.stderr)
            first = job_to_first_epoch(stack)
            print(f"  first job {first['first_epoch']:.1f} s to its first epoch", file=sys.stderr)
            second = job_to_first_epoch(stack)
            print(f"  second job {second['first_epoch']:.1f} s to its first epoch", file=sys.stderr)
        finally:
            stack.stop()

    growth = uploaded["peak_mib"] - uploaded["before_mib"]
    verdict = "meets" if growth < RSS_TARGET_MIB else "MISSES"
    print(f"\ndataset benchmark: {size / MB:,.0f} MB CSV, {rows:,} rows x {FEATURES + 1} columns")
    print(
        f"upload + profile      {uploaded['seconds']:6.1f} s  ({size / MB / uploaded['seconds']:5.1f} MB/s)   "
        f"API RSS {uploaded['before_mib']:.0f} -> {uploaded['peak_mib']:.0f} MiB peak "
        f"(+{growth:.0f} MiB: {verdict} target < {RSS_TARGET_MIB} MiB), {uploaded['after_mib']:.0f} MiB after; "
        f"{uploaded['rows']:,} rows profiled"
    )
    for phase, start, end, peak in uploaded["phases"]:
        print(f"  {phase:<19} {end - start:6.1f} s                  API RSS peak {peak:.0f} MiB")
    print(
        f"pyarrow read_csv      {reference['seconds']:6.1f} s  ({size / MB / reference['seconds']:5.1f} MB/s)   "
        f"this process +{reference['peak_mib'] - reference['before_mib']:.0f} MiB "
        f"(reference: the whole {reference['table_mib']:.0f} MiB table in memory)"
    )
    print(f"warm-up job (builtin:iris, 1 epoch, not measured below) done after {warm_up_seconds:.1f} s")
    for label, job in (("first job ", first), ("second job", second)):
        print(
            f"{label} POST -> first epoch {job['first_epoch']:6.1f} s   (queued {job['queued']:.1f} s, "
            f"load + prepare {job['load']:.1f} s, epoch 1 {job['epoch_one']:.1f} s); "
            f"done after {job['total']:.1f} s, validation accuracy {job['accuracy']:.3f}"
        )

    def ratio(key: str) -> float:
        return first[key] / second[key] if second[key] > 0 else math.inf

    print(
        f"first / second job: {ratio('first_epoch'):.1f}x on POST -> first epoch (with the queue wait: the "
        f"embedded broker is polled about once a second), {ratio('started'):.1f}x on start -> first epoch, "
        f"{ratio('load'):.1f}x on load + prepare (the worker caches the loaded dataset by sha256)"
    )


if __name__ == "__main__":
    main()
