"""The `regtrain` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from core.settings import get_settings


def cmd_migrate(_: argparse.Namespace) -> int:
    from core.celery_app import prepare_sqlite_broker
    from core.migrate import upgrade

    settings = get_settings()
    settings.ensure_home()
    upgrade(settings.resolved_database_url)
    prepare_sqlite_broker(settings)
    print(f"database at head: {_redact(settings.resolved_database_url)}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    settings.ensure_home()
    uvicorn.run(
        "api.main:app",
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        workers=args.workers,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from core.celery_app import prepare_sqlite_broker
    from core.queues import QUEUE_TRAIN, QUEUE_TRAIN_GPU
    from worker.celery_app import app

    settings = get_settings()
    settings.ensure_home()
    prepare_sqlite_broker(settings)
    # Loaded before the pool forks, so that no job waits for torch or scikit-learn to import.
    import sklearn.datasets  # noqa: F401
    import torch

    import worker.runner  # noqa: F401

    queues = args.queues
    if queues is None:
        queues = f"{QUEUE_TRAIN},{QUEUE_TRAIN_GPU}" if torch.cuda.is_available() else QUEUE_TRAIN
    concurrency = args.concurrency or settings.worker_concurrency
    app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level.upper()}",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            # Threads, not forked processes: SIGTERM then reaches the code that hands running jobs back.
            "--pool=threads",
            f"--hostname=regtrain-{socket.gethostname()}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def cmd_scheduler(_: argparse.Namespace) -> int:
    from api.scheduler import run

    get_settings().ensure_home()
    run()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from cli.supervisor import run_up

    cmd_migrate(args)
    settings = get_settings()
    port = args.port or settings.port
    print(f"regtrain: API at http://{settings.host}:{port} (Swagger UI at /docs); data in {settings.home.resolve()}")
    return run_up(args.port)


def cmd_submit(args: argparse.Namespace) -> int:
    settings = get_settings()
    base = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    spec = json.loads(Path(args.spec).read_text())
    status, job = _request("POST", f"{base}/v1/jobs", spec)
    if status != 201:
        print(json.dumps(job, indent=2), file=sys.stderr)
        return 1
    print(f"job {job['id']} {job['status']}")
    if not args.follow:
        return 0
    printed = 0
    while True:
        _, job = _request("GET", f"{base}/v1/jobs/{job['id']}")
        _, metrics = _request("GET", f"{base}/v1/jobs/{job['id']}/metrics")
        for epoch in metrics["epochs"][printed:]:
            print(_epoch_line(epoch, job["progress"]["epochs"]))
        printed = len(metrics["epochs"])
        if job["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.5)
    print(f"job {job['id']} {job['status']}")
    print(json.dumps(job["result"] if job["status"] == "succeeded" else job["error"], indent=2))
    return 0 if job["status"] == "succeeded" else 1


def _epoch_line(epoch: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {epoch['epoch']}/{epochs}", f"train_data_loss {epoch['train_data_loss']:.4g}"]
    for key in ("val_data_loss", "val_accuracy", "val_r2", "zero_fraction"):
        if epoch.get(key) is not None:
            parts.append(f"{key} {epoch[key]:.4g}")
    return "  ".join(parts)


def _request(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except urllib.error.URLError as error:
        raise SystemExit(f"regtrain: cannot reach the API at {url}: {error.reason}") from error


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regtrain", description="Training as a service.")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="Bring the database schema to the latest version.").set_defaults(
        func=cmd_migrate
    )

    api = commands.add_parser("api", help="Serve the HTTP API.")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument("--workers", type=int, default=1, help="Server processes.")
    api.set_defaults(func=cmd_api)

    worker = commands.add_parser("worker", help="Train queued jobs.")
    worker.add_argument("--queues", help="Comma-separated queues (default: cpu queue, plus gpu if CUDA is present).")
    worker.add_argument("--concurrency", type=int, help="Jobs trained at once (default REGTRAIN_WORKER_CONCURRENCY).")
    worker.set_defaults(func=cmd_worker)

    commands.add_parser("scheduler", help="Fire due schedules (any number may run at once).").set_defaults(
        func=cmd_scheduler
    )

    up = commands.add_parser(
        "up", help="Migrate, then run the API, a worker and the scheduler, restarting them if they die."
    )
    up.add_argument("--port", type=int)
    up.set_defaults(func=cmd_up)

    submit = commands.add_parser("submit", help="Submit a job spec (JSON file) to a running API.")
    submit.add_argument("spec")
    submit.add_argument("--follow", action="store_true", help="Print each epoch and the final result.")
    submit.add_argument("--url", help="API base URL (default from REGTRAIN_HOST/REGTRAIN_PORT).")
    submit.set_defaults(func=cmd_submit)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
