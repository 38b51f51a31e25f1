"""How soon a finished epoch reaches a reader of GET /v1/jobs/{id}/events.

  stack       the API and one worker as processes, on the embedded default (SQLite database, SQLite
              broker) and, with --distributed, on PostgreSQL + Redis (REGTRAIN_DATABASE_URL and
              REGTRAIN_BROKER_URL from --database-url / --broker-url)
  job         builtin:digits, an MLP 64-256-10, batch 32, --epochs epochs (about 0.1-0.2 s each here),
              streamed from submit to the end
  measured    per epoch event: the time from its record (the `at` the worker stamps as it writes the
              epoch, in the transaction that commits it) to its arrival at this reader; the
              baseline is the same clock read twice (the floor of the measurement itself). The
              stream polls every 0.2 s, so the expected median is about 0.1 s.

Target: every epoch's event within 1 s of its record.

    python -m bench.events [--epochs 30] [--distributed --database-url ... --broker-url ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import httpx

from bench.stack import add_stack_options, running, stacks_from
from tests.support.sse import parse


def latencies(client: httpx.Client, epochs: int) -> list[float]:
    body = {
        "dataset": "builtin:digits",
        "model": {"type": "mlp", "hidden_layers": [256]},
        "training": {"epochs": epochs, "batch_size": 32, "early_stopping": None},
    }
    job = client.post("/v1/jobs", json=body)
    assert job.status_code == 201, job.text
    seen = []
    with client.stream("GET", f"/v1/jobs/{job.json()['id']}/events", timeout=httpx.Timeout(60, read=120)) as stream:
        for event in parse(stream.iter_lines()):
            if event.kind == "epoch":
                arrived = datetime.now(UTC)
                seen.append((arrived - datetime.fromisoformat(event.data["at"])).total_seconds())
    if len(seen) != epochs:
        raise SystemExit(f"the stream held {len(seen)} epoch events, not {epochs}")
    return seen


def report(name: str, values: list[float]) -> None:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(
        f"{name:<12} epochs {len(values):>3}  record -> reader: median {statistics.median(values) * 1000:6.1f} ms  "
        f"p95 {p95 * 1000:6.1f} ms  max {max(values) * 1000:6.1f} ms  "
        f"within 1 s: {sum(v <= 1.0 for v in values)}/{len(values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    add_stack_options(parser)
    args = parser.parse_args()

    floor = []
    for _ in range(1000):
        before = datetime.now(UTC)
        floor.append((datetime.now(UTC) - before).total_seconds())
    print(f"baseline     clock read twice: median {statistics.median(floor) * 1e6:.2f} us")
    stacks = stacks_from(args, "distributed")
    for name, settings in stacks.items():
        with running(**settings) as client:
            started = time.monotonic()
            report(name, latencies(client, args.epochs))
            print(f"{'':<12} job streamed in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
