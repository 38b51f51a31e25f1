"""A regtrain for benchmarks: migrated, with API and worker processes, in a temporary REGTRAIN_HOME on the
embedded default unless the environment given names servers."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ADMIN_KEY = "rt_bench-admin-key-0123456789abcdefghijklmnopqrstuv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StackClient(httpx.Client):
    """A client of the stack's API that can also start more of its processes (stopped with the rest)."""

    def __init__(self, home: Path, env: dict[str, str], processes: list[subprocess.Popen[bytes]], **kwargs: Any):
        super().__init__(**kwargs)
        self.home, self.env, self.processes = home, env, processes

    def start(self, role: str, log_name: str | None = None) -> subprocess.Popen[bytes]:
        with (self.home / f"{log_name or role}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", role],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process


@contextmanager
def running(roles: tuple[str, ...] = ("api", "worker"), **settings: str) -> Iterator[StackClient]:
    """A client of the API (sending the admin key) while the processes run; they stop on exit."""
    home = Path(tempfile.mkdtemp(prefix="regtrain-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGTRAIN_")}
    env.update(
        REGTRAIN_HOME=str(home),
        REGTRAIN_PORT=str(port),
        REGTRAIN_LOG_LEVEL="warning",
        REGTRAIN_ADMIN_KEY=ADMIN_KEY,
        PYTHONUNBUFFERED="1",
    )
    env.update({f"REGTRAIN_{name.upper()}": value for name, value in settings.items()})
    subprocess.run([sys.executable, "-m", "cli.main", "migrate"], env=env, check=True, capture_output=True)
    processes: list[subprocess.Popen[bytes]] = []
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    client = StackClient(home, env, processes, base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60)
    for role in roles:
        client.start(role)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API did not start; see {home}/api.log")
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """--distributed and the servers it uses, for benchmarks that compare the embedded default with them."""
    parser.add_argument("--distributed", action="store_true", help="also run on PostgreSQL + Redis")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/0")


def stacks_from(args: argparse.Namespace, distributed_name: str = "pg+redis") -> dict[str, dict[str, str]]:
    """The stacks to run, by name: the embedded default, and with --distributed PostgreSQL + Redis."""
    stacks: dict[str, dict[str, str]] = {"embedded": {}}
    if args.distributed:
        stacks[distributed_name] = {"database_url": args.database_url, "broker_url": args.broker_url}
    return stacks
