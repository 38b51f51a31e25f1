"""`regtrain up` on the embedded default: writes the first admin key, serves the API, restarts a child that
dies, stops all of them on SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, wait_until

pytestmark = pytest.mark.integration


def children_of(pid: int) -> dict[str, int]:
    """The supervisor's direct children by role (api or worker), read from their command lines."""
    roles = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            roles[cmdline[3].decode()] = int(child)
    return roles


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGTRAIN_")}
    env.update(REGTRAIN_HOME=str(tmp_path / "home"), REGTRAIN_PORT=str(port), REGTRAIN_LOG_LEVEL="warning")
    with (tmp_path / "up.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=60, what="regtrain up to serve")
        # Written before the API starts: the first start's admin key.
        client.headers["Authorization"] = f"Bearer {(tmp_path / 'home' / 'admin.key').read_text().strip()}"
        yield process, client
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        client.close()


def test_up_restarts_a_killed_worker_and_stops_everything_on_sigterm(
    up: tuple[subprocess.Popen[bytes], httpx.Client],
) -> None:
    process, client = up
    children = wait_until(
        lambda: (c := children_of(process.pid)) and {"api", "worker"} <= set(c) and c,
        timeout=20,
        what="api and worker children",
    )
    os.kill(children["worker"], signal.SIGKILL)
    restarted = wait_until(
        lambda: (c := children_of(process.pid)).get("worker") not in (None, children["worker"]) and c,
        timeout=20,
        what="the worker to be restarted",
    )
    assert restarted["api"] == children["api"], "only the dead child is restarted"

    # The restarted worker trains jobs.
    job = client.post("/v1/jobs", json={"dataset": "builtin:iris", "training": {"epochs": 2}}).json()
    wait_until(
        lambda: client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded",
        timeout=60,
        what="a job on the restarted worker",
    )

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not any(alive(pid) for pid in restarted.values())


def test_up_writes_the_admin_key_and_says_where_without_printing_it(
    up: tuple[subprocess.Popen[bytes], httpx.Client], tmp_path: Path
) -> None:
    key_file = (tmp_path / "home" / "admin.key").resolve()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key.startswith("rt_")
    output = (tmp_path / "up.log").read_text()
    assert f"regtrain: admin key written to {key_file} (mode 0600); send it as Authorization: Bearer <key>" in output
    assert output.count("admin key") == 1, "the api child does not announce it again"
    assert key not in output


def test_up_stops_on_sigint(up: tuple[subprocess.Popen[bytes], httpx.Client]) -> None:
    process, _ = up
    children = wait_until(
        lambda: (c := children_of(process.pid)) and {"api", "worker"} <= set(c) and c,
        timeout=20,
        what="api and worker children",
    )
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert not any(alive(pid) for pid in children.values())
