"""`regtrain api` on its own (as compose and multi-host deployments run it) makes the first admin key from
REGTRAIN_ADMIN_KEY without printing it; `regtrain submit` sends REGTRAIN_API_KEY to REGTRAIN_URL, and a
refused key ends it with the server's sentence and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from api.services.keys import authenticate, new_key
from core.db import make_engine
from tests.support.servers import free_port, wait_until

pytestmark = pytest.mark.integration


def environment(home: Path, **settings: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("REGTRAIN_")}
    env.update(REGTRAIN_HOME=str(home), REGTRAIN_LOG_LEVEL="warning", **settings)
    return env


def regtrain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=120
    )


@dataclass
class Api:
    url: str
    home: Path
    admin_key: str
    output: Path


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("api")
    home, port, admin_key = directory / "home", free_port(), new_key()
    env = environment(home, REGTRAIN_ADMIN_KEY=admin_key)
    assert regtrain(env, "migrate").returncode == 0
    output = directory / "api.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "api", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200, timeout=60, what="regtrain api to serve")
        yield Api(url=url, home=home, admin_key=admin_key, output=output)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_api_makes_the_admin_key_from_the_setting_without_printing_it(api: Api) -> None:
    output = api.output.read_text()
    assert 'regtrain: admin key of tenant "default" created from REGTRAIN_ADMIN_KEY' in output
    assert api.admin_key not in output
    assert not (api.home / "admin.key").exists(), "a key from the setting is not written anywhere"
    engine = make_engine(f"sqlite:///{api.home / 'regtrain.sqlite'}")
    try:
        with Session(engine, expire_on_commit=False) as session:
            assert authenticate(session, api.admin_key).allows("admin")
    finally:
        engine.dispose()


def test_api_refuses_to_start_with_a_short_admin_key(tmp_path: Path) -> None:
    env = environment(tmp_path / "home", REGTRAIN_ADMIN_KEY="short")
    assert regtrain(env, "migrate").returncode == 0
    result = regtrain(env, "api", "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "regtrain: REGTRAIN_ADMIN_KEY must have at least 32 characters; `regtrain keys new` prints one."
    ]


def test_submit_sends_the_key_and_stops_with_the_servers_sentence_when_it_is_refused(api: Api, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"dataset": "builtin:iris", "training": {"epochs": 1}}))
    created = regtrain(environment(api.home), "keys", "create", "--tenant", "default", "--name", "submit test")
    key = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("key "))
    key_id = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("id "))
    # Another home: the key and the address come from REGTRAIN_API_KEY and REGTRAIN_URL alone.
    client = environment(tmp_path / "elsewhere", REGTRAIN_URL=api.url, REGTRAIN_API_KEY=key)

    accepted = regtrain(client, "submit", str(spec))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("job ") and accepted.stdout.strip().endswith("queued")

    assert regtrain(environment(api.home), "keys", "revoke", key_id).returncode == 0
    refused = regtrain(client, "submit", str(spec))
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "regtrain: This API key is not valid: it is unknown or has been revoked."
    ]
