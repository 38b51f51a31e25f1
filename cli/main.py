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

from cli.keys import USAGE_ERROR, announce_admin_key, redact
from cli.keys import add_commands as add_key_commands
from core.settings import Settings, get_settings


def cmd_migrate(_: argparse.Namespace) -> int:
    from core.celery_app import prepare_sqlite_broker
    from core.migrate import upgrade

    settings = get_settings()
    settings.ensure_home()
    upgrade(settings.resolved_database_url)
    prepare_sqlite_broker(settings)
    print(f"database at head: {redact(settings.resolved_database_url)}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    settings.ensure_home()
    # `regtrain up` has done this before starting its api child; standalone (compose, several hosts),
    # each API process does it: the first one makes the key, the others find it.
    if not args.admin_key_checked and (code := announce_admin_key(start_without_database=True)):
        return code
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

    import worker.runner
    import worker.studies  # noqa: F401

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
    from scheduler.loop import run

    get_settings().ensure_home()
    run()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from cli.supervisor import run_up

    cmd_migrate(args)
    if code := announce_admin_key():
        return code
    settings = get_settings()
    port = args.port or settings.port
    print(f"regtrain: API at http://{settings.host}:{port} (Swagger UI at /docs); data in {settings.home.resolve()}")
    return run_up(args.port)


def cmd_submit(args: argparse.Namespace) -> int:
    settings = get_settings()
    base = (args.url or settings.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    client = ApiClient(base, _client_key(settings))
    spec = json.loads(Path(args.spec).read_text())
    status, job = client.request("POST", "/v1/jobs", spec)
    if status != 201:
        print(json.dumps(job, indent=2), file=sys.stderr)
        return 1
    print(f"job {job['id']} {job['status']}")
    if not args.follow:
        return 0
    printed = 0
    while True:
        _, job = client.request("GET", f"/v1/jobs/{job['id']}")
        _, metrics = client.request("GET", f"/v1/jobs/{job['id']}/metrics")
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


def _client_key(settings: Settings) -> str | None:
    """REGTRAIN_API_KEY, else the first admin key when this host's REGTRAIN_HOME holds it and it is readable."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    try:
        return settings.admin_key_path.read_text().strip() or None
    except OSError:
        return None


class ApiClient:
    """JSON over HTTP to a running API, with the key as a bearer token. A refused key (401, 403) ends the
    command: the server's sentence on stderr, exit status 2."""

    def __init__(self, base_url: str, key: str | None) -> None:
        self.base_url = base_url
        self.key = key

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{self.base_url}{path}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.key is not None:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            status, answer = error.code, json.loads(error.read() or b"null")
        except urllib.error.URLError as error:
            raise SystemExit(f"regtrain: cannot reach the API at {url}: {error.reason}") from error
        if status in (401, 403):
            detail = answer.get("detail") if isinstance(answer, dict) else None
            print(f"regtrain: {detail or f'the API refused the request ({status})'}", file=sys.stderr)
            if self.key is None:
                print(
                    "regtrain: no key was sent: set REGTRAIN_API_KEY, or run where REGTRAIN_HOME holds admin.key.",
                    file=sys.stderr,
                )
            raise SystemExit(USAGE_ERROR)
        return status, answer


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
    # Set by `regtrain up`, which made and announced the admin key before starting this process.
    api.add_argument("--admin-key-checked", action="store_true", help=argparse.SUPPRESS)
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
    submit.add_argument("--url", help="API base URL (default REGTRAIN_URL, else http://REGTRAIN_HOST:REGTRAIN_PORT).")
    submit.set_defaults(func=cmd_submit)

    add_key_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
