"""API keys: no key or an unknown one is 401, a missing scope 403; revocation takes effect on the very
next request; the key is shown once and stored nowhere in clear (no table, no log); the first start
makes the admin key from REGTRAIN_ADMIN_KEY or writes a new one to home/admin.key (0600); the admin
endpoints. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_app
from api.services.keys import authenticate, ensure_admin_key, hash_key
from core.db import get_engine, get_session_factory
from core.settings import get_settings
from models import ApiKey, Base
from tests.support.app import ADMIN_KEY, clear_process_caches, configure, default_tenant_id, release
from tests.support.files import csv_bytes, iris_like

JOB = {"dataset": "builtin:iris", "training": {"epochs": 1}}
SCHEDULE = {"name": "s", "cron": "0 3 * * *", "job": JOB}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(client: TestClient, *scopes: str, tenant: str = "default", name: str = "test") -> dict[str, Any]:
    response = client.post("/v1/keys", json={"tenant": tenant, "name": name, "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return dict(response.json())


def listed(client: TestClient, key_id: str) -> dict[str, Any]:
    items = client.get("/v1/keys", params={"limit": 500}).json()["items"]
    return dict(next(item for item in items if item["id"] == key_id))


def assert_error(response: Any, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert body["detail"].endswith("."), "a sentence"
    for word in words:
        assert word in body["detail"], body["detail"]


def test_requests_without_a_valid_key_are_refused(api_client: TestClient) -> None:
    anonymous = TestClient(api_client.app)  # no default Authorization header
    for method, path in (
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs"),
        ("GET", f"/v1/jobs/{uuid.uuid4()}"),
        ("GET", "/v1/keys"),
    ):
        missing = anonymous.request(method, path, json=JOB if method == "POST" else None)
        assert_error(missing, 401, "Unauthorized", "Authorization: Bearer <key>")
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token rt_abc", ADMIN_KEY):
        malformed = anonymous.get("/v1/jobs", headers={"Authorization": header})
        assert_error(malformed, 401, "Unauthorized", "Authorization: Bearer <key>")
    for key in ("rt_" + "x" * 43, ADMIN_KEY + "x", ADMIN_KEY[:-1]):
        unknown = anonymous.get(f"/v1/jobs/{uuid.uuid4()}", headers=bearer(key))
        assert_error(unknown, 401, "Unauthorized", "unknown or has been revoked")
    # 401 comes before anything about the id or the body: nothing is probeable without a key.
    assert anonymous.delete(f"/v1/keys/{uuid.uuid4()}").status_code == 401
    assert anonymous.post("/v1/jobs", json={"nonsense": 1}).status_code == 401
    # Health checks need no key.
    assert anonymous.get("/healthz").status_code == 200
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text


def test_a_401_names_the_bearer_scheme(api_client: TestClient) -> None:
    """RFC 9110 section 11.6.1: a 401 response MUST carry WWW-Authenticate with the scheme to use."""
    anonymous = TestClient(api_client.app)
    for response in (anonymous.get("/v1/jobs"), anonymous.get("/v1/jobs", headers=bearer("rt_" + "x" * 43))):
        assert response.status_code == 401
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(response.headers)


def test_a_read_key_reads_and_changes_nothing(api_client: TestClient) -> None:
    dataset = api_client.post(
        "/v1/datasets",
        data={"name": "flowers", "target": "species"},
        files={"file": ("a.csv", csv_bytes(*iris_like(30)))},
    ).json()
    job = api_client.post("/v1/jobs", json=JOB).json()
    schedule = api_client.post("/v1/schedules", json=SCHEDULE).json()
    reader = bearer(new_key(api_client, "read")["key"])
    for path in (
        "/v1/jobs",
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/metrics",
        "/v1/datasets",
        "/v1/datasets/builtin",
        f"/v1/datasets/{dataset['id']}",
        "/v1/schedules",
        f"/v1/schedules/{schedule['id']}",
        f"/v1/schedules/{schedule['id']}/runs",
    ):
        assert api_client.get(path, headers=reader).status_code == 200, path
    refused = [
        api_client.post("/v1/jobs", json=JOB, headers=reader),
        api_client.delete(f"/v1/datasets/{dataset['id']}", headers=reader),
        api_client.post("/v1/schedules", json=SCHEDULE, headers=reader),
        api_client.post(f"/v1/jobs/{job['id']}/cancel", headers=reader),
        api_client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False}, headers=reader),
        api_client.post("/v1/datasets/synthetic", json={"name": "s", "n_samples": 20, "n_features": 2}, headers=reader),
    ]
    for response in refused:
        assert_error(response, 403, "Forbidden", "'write'", "(read)")
    assert api_client.get("/v1/jobs").json()["total"] == 1
    assert api_client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    assert api_client.get(f"/v1/datasets/{dataset['id']}").status_code == 200
    assert api_client.get("/v1/schedules").json()["total"] == 1
    assert api_client.get(f"/v1/schedules/{schedule['id']}").json()["enabled"] is True


def test_a_write_key_does_not_imply_read(api_client: TestClient) -> None:
    """The documented rule (KeyCreate.scopes): read is GET routes, write is create, change, cancel and
    delete; only admin implies both. A write-only key (a pipeline that submits) cannot list or read."""
    writer = bearer(new_key(api_client, "write")["key"])
    job = api_client.post("/v1/jobs", json=JOB, headers=writer)
    assert job.status_code == 201, job.text
    for path in ("/v1/jobs", f"/v1/jobs/{job.json()['id']}", "/v1/datasets", "/v1/datasets/builtin", "/v1/schedules"):
        assert_error(api_client.get(path, headers=writer), 403, "Forbidden", "'read'", "(write)")
    assert api_client.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=writer).status_code == 202


def test_only_admin_keys_manage_tenants_and_keys(api_client: TestClient) -> None:
    key = new_key(api_client, "read", "write")
    other = bearer(key["key"])
    for response in (
        api_client.post("/v1/tenants", json={"name": "sneaky"}, headers=other),
        api_client.get("/v1/tenants", headers=other),
        api_client.post("/v1/keys", json={"tenant": "default", "name": "x", "scopes": ["admin"]}, headers=other),
        api_client.get("/v1/keys", headers=other),
        api_client.delete(f"/v1/keys/{key['id']}", headers=other),
    ):
        assert_error(response, 403, "Forbidden", "'admin'", "(read, write)")
    assert [t["name"] for t in api_client.get("/v1/tenants").json()["items"]] == ["default"]
    assert api_client.get("/v1/keys").json()["total"] == 2
    assert api_client.get("/v1/jobs", headers=other).status_code == 200, "its own revoke was refused"


def test_a_revoked_key_fails_on_the_very_next_request(api_client: TestClient) -> None:
    key = new_key(api_client, "read", "write")
    headers = bearer(key["key"])
    assert api_client.get("/v1/jobs", headers=headers).status_code == 200
    revoked = api_client.delete(f"/v1/keys/{key['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None and "key" not in revoked.json()
    assert_error(api_client.get("/v1/jobs", headers=headers), 401, "Unauthorized", "revoked")
    assert_error(api_client.post("/v1/jobs", json=JOB, headers=headers), 401, "Unauthorized")
    again = api_client.delete(f"/v1/keys/{key['id']}")
    assert again.status_code == 200, again.text
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"], "revoking twice keeps the first time"
    assert listed(api_client, key["id"])["revoked_at"] == revoked.json()["revoked_at"]
    assert api_client.get("/v1/jobs", headers=headers).status_code == 401
    assert_error(api_client.delete(f"/v1/keys/{uuid.uuid4()}"), 404, "NotFound", "There is no API key")
    # The admin key still works: revoking one key touches no other.
    assert api_client.get("/v1/jobs").status_code == 200


def test_a_key_is_shown_once_and_stored_nowhere_in_clear(
    api_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created_at = datetime.now(UTC)
    tenant = api_client.post("/v1/tenants", json={"name": "team-b"})
    assert tenant.status_code == 201, tenant.text
    keys = [new_key(api_client, "read", "write", tenant="team-b"), new_key(api_client, "admin", name="second admin")]
    for key in keys:
        assert key["key"].startswith("rt_") and len(key["key"]) >= 40, key
        assert key["prefix"] == key["key"][: len(key["prefix"])] and 4 <= len(key["prefix"]) < 20
        assert key["last_used_at"] is None and key["revoked_at"] is None
        # Used, so that the key travels through authentication (and whatever it logs).
        assert api_client.get("/v1/jobs", headers=bearer(key["key"])).status_code == 200
        assert api_client.post("/v1/jobs", json=JOB, headers=bearer(key["key"])).status_code == 201

    listing = api_client.get("/v1/keys")
    assert listing.status_code == 200 and listing.json()["total"] == 3
    for item in listing.json()["items"]:
        assert set(item) == {
            "id",
            "tenant",
            "tenant_id",
            "name",
            "prefix",
            "scopes",
            "created_at",
            "last_used_at",
            "revoked_at",
        }
    secrets = [key["key"] for key in keys] + [ADMIN_KEY]
    for secret in secrets:
        assert secret not in listing.text and hash_key(secret) not in listing.text
    by_id = {item["id"]: item for item in listing.json()["items"]}
    assert by_id[keys[0]["id"]]["tenant"] == "team-b" and by_id[keys[0]["id"]]["scopes"] == ["read", "write"]
    assert by_id[keys[1]["id"]]["prefix"] == keys[1]["prefix"]
    # last_used_at is set by the first request.
    for key in keys:
        used = by_id[key["id"]]["last_used_at"]
        assert used is not None
        assert created_at - timedelta(seconds=5) <= datetime.fromisoformat(used) <= datetime.now(UTC)

    # Every column of every table: the hash is there, the key is not.
    stored: list[str] = []
    with get_engine().connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                stored.extend(str(value) for value in row)
    assert {hash_key(secret) for secret in secrets} <= set(stored), "the scan did not read the api_key table"
    for secret in secrets:
        assert not [value for value in stored if secret in value]
    # Nor in any file of the home (the databases, the broker, their journals).
    home = get_settings().home
    assert not get_settings().admin_key_path.exists(), "REGTRAIN_ADMIN_KEY was set: no key file is written"
    for path in home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not [s for s in secrets if s.encode() in content], path
    # Nor in any log record, at any level, of any logger.
    assert caplog.records, "logging was captured"
    logged = caplog.text + "".join(str(record.args) + str(record.__dict__) for record in caplog.records)
    for secret in secrets:
        assert secret not in logged


def test_the_first_start_with_admin_key_set_makes_that_key_of_the_default_tenant(api_client: TestClient) -> None:
    assert not get_settings().admin_key_path.exists()
    with get_session_factory()() as session:
        caller = authenticate(session, ADMIN_KEY)
        assert caller.tenant_id == default_tenant_id(session)
        assert caller.scopes == {"read", "write", "admin"}
        # A restart with keys present makes nothing.
        assert not ensure_admin_key(session, get_settings()).created
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_the_first_start_without_admin_key_writes_one_to_the_home(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    configure(tmp_path / "home", monkeypatch, database_url)
    monkeypatch.delenv("REGTRAIN_ADMIN_KEY")
    clear_process_caches()
    settings = get_settings()
    assert settings.admin_key is None
    caplog.set_level(logging.DEBUG)
    try:
        with TestClient(create_app()) as client:  # the first start
            path = tmp_path / "home" / "admin.key"
            assert settings.admin_key_path == path and path.is_file()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            key = path.read_text().strip()
            assert key.startswith("rt_") and len(key) >= 40
            assert key not in caplog.text, "the key is in the file, not in the log"
            assert str(path.resolve()) in caplog.text, "the log says where the key is"

            assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
            keys = client.get("/v1/keys", headers=bearer(key)).json()["items"]
            assert [(k["tenant"], k["scopes"], k["prefix"]) for k in keys] == [
                ("default", ["read", "write", "admin"], key[: len(k["prefix"])]) for k in keys
            ]
        with get_session_factory()() as session:
            caller = authenticate(session, key)
            assert caller.tenant_id == default_tenant_id(session)
            assert caller.scopes == {"read", "write", "admin"}
            second = ensure_admin_key(session, settings)
            assert not second.created and second.written_to is None
            assert session.scalar(select(func.count()).select_from(ApiKey)) == 1
        with TestClient(create_app()) as restarted:  # a second start
            assert restarted.get("/healthz").status_code == 200
        with get_session_factory()() as session:
            assert session.scalar(select(func.count()).select_from(ApiKey)) == 1
        assert path.read_text().strip() == key, "a second start keeps the file"
    finally:
        release()


def test_admin_endpoints_refuse_bad_input(api_client: TestClient) -> None:
    assert_error(
        api_client.post("/v1/keys", json={"tenant": "nobody", "name": "x", "scopes": ["read"]}),
        404,
        "NotFound",
        "There is no tenant",
    )
    assert_error(api_client.get("/v1/keys", params={"tenant": "nobody"}), 404, "NotFound", "There is no tenant")
    for scopes in (["root"], [], ["read", "delete"], "read"):
        bad = api_client.post("/v1/keys", json={"tenant": "default", "name": "x", "scopes": scopes})
        assert bad.status_code == 422, (scopes, bad.text)
    first = api_client.post("/v1/tenants", json={"name": "team-b"})
    assert first.status_code == 201, first.text
    assert_error(api_client.post("/v1/tenants", json={"name": "team-b"}), 409, "Conflict", "'team-b' already exists")
    assert api_client.post("/v1/tenants", json={"name": "default"}).status_code == 409
    assert api_client.post("/v1/tenants", json={"name": "no spaces"}).status_code == 422
    # A key by the tenant's id works as by its name; only the keys made so far exist.
    by_id = new_key(api_client, "read", tenant=first.json()["id"])
    assert by_id["tenant"] == "team-b" and by_id["tenant_id"] == first.json()["id"]
    assert [t["name"] for t in api_client.get("/v1/tenants").json()["items"]] == ["default", "team-b"]
    assert api_client.get("/v1/keys", params={"tenant": "team-b"}).json()["total"] == 1
    assert api_client.get("/v1/keys").json()["total"] == 2
