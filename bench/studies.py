"""Studies through the API, against the same work done the old way, in one run:

  stack       the API and one worker (concurrency 1) as processes on the embedded default (SQLite
              database, SQLite broker) in a temporary REGTRAIN_HOME, with the admin key
  data        a synthetic classification table (POST /v1/datasets/synthetic): --rows rows, 100 features,
              10 classes
  jobs        K MLPs 100-256-256-10 (batch --batch, --epochs epochs, each its own l2) submitted as K jobs
              through POST /v1/jobs: the time from the first POST to the last job's success
  study       the same K settings as one study (variants, no cv: each member trains on the base job's
              split, as its job does): the time from POST /v1/studies to success
  warm-up     one short job and one small study first, untimed: the worker's first job and first study
              pay one-off costs (imports, caches, connections) that neither way should be charged
  serving     a study of 1,000 members (not run): GET /v1/studies/{id}/members, a page of 500 in grid
              order and sorted by score, timed over HTTP

Targets: study >= 3x faster than the K jobs end to end (CPU); the members page in
under 1 s. The machine's other work shows in every figure: run it alone.

    python -m bench.studies [--members 16] [--epochs 3] [--rows 4000] [--batch 256]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import httpx

from bench.stack import running


def wait(client: httpx.Client, path: str, done: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if body.get("status") in done:
            return dict(body)
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    with running() as client:
        run(client, args)


def run(client: httpx.Client, args: argparse.Namespace) -> None:
    synthetic = client.post(
        "/v1/datasets/synthetic",
        json={
            "name": "wide",
            "task": "classification",
            "n_samples": args.rows,
            "n_features": 100,
            "n_informative": 20,
            "n_classes": 10,
        },
    )
    assert synthetic.status_code == 201, synthetic.text
    base = {
        "dataset": "wide@latest",
        "model": {"type": "mlp", "hidden_layers": [256, 256]},
        "optimizer": {"type": "adam", "lr": 0.001},
        "training": {"epochs": args.epochs, "batch_size": args.batch, "early_stopping": None},
    }
    l2s = [10 ** (-5 + 3 * i / max(args.members - 1, 1)) for i in range(args.members)]
    # The worker's first job and first study pay one-off costs (imports, caches): pay them before timing.
    short = {**base, "training": {**base["training"], "epochs": 1}}
    warm = client.post("/v1/jobs", json=short).json()
    wait(client, f"/v1/jobs/{warm['id']}", {"succeeded", "failed"}, 300)
    warm = client.post("/v1/studies", json={"job": short, "variants": {"a": {}, "b": {"regularization": {"l2": 0.1}}}})
    assert warm.status_code == 201, warm.text
    wait(client, f"/v1/studies/{warm.json()['id']}", {"succeeded", "failed"}, 300)

    started = time.perf_counter()
    ids = []
    for l2 in l2s:
        response = client.post("/v1/jobs", json={**base, "regularization": {"l2": l2}})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    for job_id in ids:
        done = wait(client, f"/v1/jobs/{job_id}", {"succeeded", "failed"}, 1800)
        assert done["status"] == "succeeded", done["error"]
    jobs_seconds = time.perf_counter() - started

    started = time.perf_counter()
    response = client.post(
        "/v1/studies",
        json={
            "job": base,
            "variants": {f"l2={l2:.2g}": {"regularization": {"l2": l2}} for l2 in l2s},
            "select": {"metric": "accuracy"},
        },
    )
    assert response.status_code == 201, response.text
    study = wait(client, f"/v1/studies/{response.json()['id']}", {"succeeded", "failed"}, 1800)
    assert study["status"] == "succeeded", study["error"]
    study_seconds = time.perf_counter() - started

    big = client.post(
        "/v1/studies",
        json={
            "job": {"dataset": "builtin:iris", "model": {"type": "linear"}},
            "search": {"regularization.l2": {"log_range": [1e-6, 1.0, 1000]}},
        },
    )
    assert big.status_code == 201, big.text
    client.post(f"/v1/studies/{big.json()['id']}/cancel")
    timings: dict[str, list[float]] = {"position": [], "score": []}
    for _ in range(5):
        for sort in timings:
            t0 = time.perf_counter()
            page = client.get(f"/v1/studies/{big.json()['id']}/members", params={"limit": 500, "sort": sort})
            timings[sort].append(time.perf_counter() - t0)
            assert page.status_code == 200 and len(page.json()["items"]) == 500

    print()
    print(f"{args.members} MLPs 100-256-256-10, batch {args.batch}, {args.epochs} epochs, {args.rows} rows")
    print(f"  {args.members} jobs through the API      {jobs_seconds:8.2f} s")
    print(f"  one study of {args.members} members        {study_seconds:8.2f} s")
    print(f"  ratio jobs / study                {jobs_seconds / study_seconds:8.2f}x   (target >= 3x on CPU)")
    for sort, values in timings.items():
        print(f"  1,000-member study, page of 500 by {sort:<8} median {statistics.median(values) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
