"""A running regtrain: migrated database, API server and Celery worker as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.app import ADMIN_HEADERS, ADMIN_KEY
from tests.support.servers import free_port, wait_until

TERMINAL = {"succeeded", "failed", "canceled"}


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    base_url: str
    client: httpx.Client
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.home / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name}.log ---\n{self.log_tail(name)}" for name in self.processes)

    def start(self, name: str, *args: str, home: Path | None = None) -> subprocess.Popen[bytes]:
        """`home`: a REGTRAIN_HOME of the process's own (a host that shares no folder with the others)."""
        env = self.env if home is None else {**self.env, "REGTRAIN_HOME": str(home)}
        with (self.home / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post("/v1/jobs", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def wait_for(self, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 90) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.client.get(f"/v1/jobs/{job_id}").json()
            return job if job["status"] in statuses else None

        try:
            return dict(wait_until(reached, timeout=timeout, interval=0.1, what=f"job {job_id} to be {statuses}"))
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from exc

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.client.close()


def start_stack(
    home: Path,
    database_url: str | None,
    broker_url: str | None,
    extra_env: dict[str, str] | None = None,
    worker_home: Path | None = None,
) -> Stack:
    """The API runs in `home` (where every process's log goes too); the worker in `worker_home` when given."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGTRAIN_")}
    env.update(
        REGTRAIN_HOME=str(home),
        REGTRAIN_PORT=str(port),
        REGTRAIN_LOG_LEVEL="warning",
        REGTRAIN_ADMIN_KEY=ADMIN_KEY,
        # What the CLI run against this stack sends.
        REGTRAIN_API_KEY=ADMIN_KEY,
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    if database_url:
        env["REGTRAIN_DATABASE_URL"] = database_url
    if broker_url:
        env["REGTRAIN_BROKER_URL"] = broker_url
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "cli.main", "migrate"], env=env, check=True, capture_output=True)
    base_url = f"http://127.0.0.1:{port}"
    stack = Stack(
        home=home, env=env, base_url=base_url, client=httpx.Client(base_url=base_url, timeout=30, headers=ADMIN_HEADERS)
    )
    stack.start("api", "api")
    stack.start("worker", "worker", home=worker_home)
    try:
        wait_until(lambda: stack.client.get("/readyz").status_code == 200, timeout=60, what="the API to be ready")
    except TimeoutError as exc:
        stack.stop()
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc
    return stack


def wait_seconds_since(start: float) -> float:
    return time.monotonic() - start
