"""`regtrain up`: runs the API, a worker and the scheduler as child processes,
restarts a child that dies, and stops them all on SIGINT or SIGTERM, as compose or systemd would."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger("regtrain.up")

# A child that stays up this long is healthy again: its restart delay starts over.
HEALTHY_AFTER_SECONDS = 60.0
MAX_RESTART_DELAY_SECONDS = 30.0
STOP_GRACE_SECONDS = 20.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: if the supervisor is killed outright, its children get SIGTERM
    instead of running on unsupervised (Linux only; elsewhere a no-op)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_delay: float = 1.0
    restart_at: float | None = None
    restarts: int = 0

    def start(self) -> None:
        # Its own process group, so that Ctrl-C reaches the supervisor alone, which then stops
        # each child in order instead of every process receiving SIGINT at once.
        self.process = subprocess.Popen(self.argv, start_new_session=True, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("started %s (pid %d)", self.name, self.process.pid)


@dataclass
class Supervisor:
    children: list[Child]
    stopping: bool = field(default=False)

    def _request_stop(self, signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        for child in self.children:
            child.start()
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                self._watch(child, now)
            time.sleep(0.2)
        self._stop_all()
        return 0

    def _watch(self, child: Child, now: float) -> None:
        assert child.process is not None
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                child.start()
            return
        code = child.process.poll()
        if code is None:
            if now - child.started_at > HEALTHY_AFTER_SECONDS:
                child.restart_delay = 1.0
            return
        log.warning("%s exited with code %s; restarting in %.0f s", child.name, code, child.restart_delay)
        child.restart_at = now + child.restart_delay
        child.restart_delay = min(child.restart_delay * 2, MAX_RESTART_DELAY_SECONDS)

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.name, STOP_GRACE_SECONDS)
                child.process.kill()
                child.process.wait()
        log.info("all stopped")


def child_argv(command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", command, *args]


def run_up(port: int | None) -> int:
    env_port = ["--port", str(port)] if port is not None else []
    children = [
        # The supervisor has made and announced the admin key already.
        Child("api", child_argv("api", *env_port, "--admin-key-checked")),
        Child("worker", child_argv("worker")),
        Child("scheduler", child_argv("scheduler")),
    ]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return Supervisor(children).run()
