"""Tenant isolation (BOLA): tenant B's key, on every route that takes an id, with tenant A's ids,
answers exactly as it does for an id that never existed, and changes nothing; listings, dataset
references and Idempotency-Keys are per tenant. The matrix is checked against the app's routes and its
OpenAPI paths, so a new route with an id cannot escape it. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.main import create_app
from core.settings import get_settings
from core.storage import dataset_object_key, get_store, store_key
from tests.support.app import clear_process_caches
from tests.support.files import csv_bytes, iris_like

# Distinctive names: none of them may ever appear in an answer to tenant B.
A_DATASET = "flowers-of-tenant-a"
A_SYNTHETIC = "synthetic-of-tenant-a"
A_SCHEDULE = "schedule-of-tenant-a"
A_STUDY = "study-of-tenant-a"
A_KEY_NAME = "key-of-tenant-a"
JOB = {"dataset": "builtin:iris", "training": {"epochs": 1}}
IDEMPOTENCY_KEY = "same-key-in-both-tenants"


@dataclass(frozen=True)
class Case:
    """One (method, route) of the matrix. `owner_status` is what tenant A gets on its own resource: it
    proves the request reaches the resource, so that B's 404 means "not yours" and not "bad URL"."""

    owner_status: int
    stranger_status: int = 404
    body: dict[str, Any] | None = None
    # A's own calls run in this order, so that the ones that change things come last.
    order: int = 0


MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/v1/datasets/{dataset_id}"): Case(200),
    # Every one of A's datasets is used by a queued job, so A's own delete is refused and nothing goes.
    ("DELETE", "/v1/datasets/{dataset_id}"): Case(409),
    ("GET", "/v1/jobs/{job_id}"): Case(200),
    ("GET", "/v1/jobs/{job_id}/metrics"): Case(200),
    # No worker runs: A's stream tells that the job is queued, then ends at the test's stream limit.
    ("GET", "/v1/jobs/{job_id}/events"): Case(200),
    # No worker runs: A hears "no weight statistics yet", which is not the unknown-id sentence.
    ("GET", "/v1/jobs/{job_id}/weights"): Case(404),
    ("GET", "/v1/jobs/{job_id}/artifact"): Case(409),
    # No worker runs: A hears that the job has recorded no epochs yet.
    ("GET", "/v1/jobs/{job_id}/plots/{plot}.{format}"): Case(409),
    ("POST", "/v1/jobs/{job_id}/predict"): Case(409, body={"rows": [[1.0, 2.0]]}),
    ("POST", "/v1/jobs/{job_id}/retrain"): Case(201, order=1),
    ("POST", "/v1/jobs/{job_id}/cancel"): Case(202, order=2),
    ("GET", "/v1/schedules/{schedule_id}"): Case(200),
    ("GET", "/v1/schedules/{schedule_id}/runs"): Case(200),
    ("POST", "/v1/schedules/{schedule_id}/trigger"): Case(201, order=1),
    ("PATCH", "/v1/schedules/{schedule_id}"): Case(200, body={"name": "renamed", "enabled": False}, order=1),
    ("DELETE", "/v1/schedules/{schedule_id}"): Case(204, order=3),
    ("GET", "/v1/studies/{study_id}"): Case(200),
    ("GET", "/v1/studies/{study_id}/members"): Case(200),
    ("GET", "/v1/studies/{study_id}/events"): Case(200),
    # No worker runs: the study is queued, so A hears "not finished yet".
    ("GET", "/v1/studies/{study_id}/path"): Case(409),
    ("GET", "/v1/studies/{study_id}/plots/{plot}.{format}"): Case(409),
    ("POST", "/v1/studies/{study_id}/cancel"): Case(202, order=2),
    # Keys are managed by admin keys (for every tenant): B's read+write key lacks the scope, and that
    # answer is the same for A's key as for a key that never existed.
    ("DELETE", "/v1/keys/{key_id}"): Case(200, stranger_status=403, order=3),
}

# Which of A's resources fill each path parameter.
PARAMETERS = {
    "dataset_id": "datasets",
    "job_id": "jobs",
    "schedule_id": "schedules",
    "study_id": "studies",
    "key_id": "keys",
}
# Path parameters that are not ids, and the values the matrix sends in them.
FILLED = {
    "/v1/jobs/{job_id}/plots/{plot}.{format}": {"plot": "learning_curves", "format": "svg"},
    "/v1/studies/{study_id}/plots/{plot}.{format}": {"plot": "cv_curve", "format": "png"},
}
NOT_FOUND_SENTENCE = {
    "dataset_id": "There is no dataset with id",
    "job_id": "There is no job with id",
    "schedule_id": "There is no schedule with id",
    "study_id": "There is no study with id",
}


def routes_with_ids(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route whose path holds an id, read from the router (which also sees
    routes left out of the schema) and from the OpenAPI document; the two must agree."""
    routed = set()
    # FastAPI includes routers lazily: app.routes holds the included routers, not their routes.
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        # The dashboard's pages are not API operations (tests/api/test_ui_pages.py checks their tenancy).
        if "{" in path and not path.startswith("/ui/"):
            assert isinstance(route.original_route, APIRoute), f"{path} takes an id but is not an API route"
            routed |= {(method, path) for method in route.methods or () if method not in ("HEAD", "OPTIONS")}
    documented = {
        (method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations
    }
    assert routed == {pair for pair in documented if "{" in pair[1]}, "the router and the OpenAPI paths disagree"
    return routed


def parameter(path: str) -> str:
    names = [name for name in re.findall(r"\{(\w+)\}", path) if name not in FILLED.get(path, {})]
    assert len(names) == 1, f"{path}: the matrix fills exactly one id per route"
    assert names[0] in PARAMETERS, f"{path}: no tenant-A resource is known for {{{names[0]}}}; add it to the matrix"
    return names[0]


def url(path: str, name: str, id_: str) -> str:
    """The route's path with `id_` in its id parameter `name`, and its other parameters filled."""
    for parameter_name, value in {name: id_, **FILLED.get(path, {})}.items():
        path = path.replace(f"{{{parameter_name}}}", value)
    return path


def test_the_matrix_covers_every_route_with_an_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGTRAIN_HOME", str(tmp_path))
    clear_process_caches()
    try:
        routes = routes_with_ids(create_app())
    finally:
        clear_process_caches()
    assert routes - MATRIX.keys() == set(), "routes with an id that the BOLA matrix does not cover"
    assert MATRIX.keys() - routes == set(), "matrix entries for routes that no longer exist"
    for _, path in routes:
        parameter(path)
    # A's resources of each kind (see World).
    per_kind = {"datasets": 2, "jobs": 3, "schedules": 1, "studies": 1, "keys": 1}
    cases = sum(per_kind[PARAMETERS[parameter(path)]] for _, path in MATRIX)
    assert (len(MATRIX), cases) == (23, 43)
    print(f"\nBOLA matrix: {len(MATRIX)} (method, route) pairs, {cases} cases on tenant A's ids, per database")


@dataclass
class World:
    """Tenant A ("default", the admin key) with one of everything, and tenant B with a read+write key."""

    b: dict[str, str]
    a_key: str
    ids: dict[str, list[str]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def upload(client: TestClient, name: str, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    content = csv_bytes(*iris_like(30))
    return client.post(
        "/v1/datasets",
        data={"name": name, "target": "species"},
        files={"file": ("data.csv", content)},
        headers=headers,
        **extra,
    )


@pytest.fixture
def world(api_client: TestClient) -> World:
    created(api_client.post("/v1/tenants", json={"name": "tenant-b"}))
    key = created(api_client.post("/v1/keys", json={"tenant": "tenant-b", "name": "b", "scopes": ["read", "write"]}))
    b = {"Authorization": f"Bearer {key['key']}"}

    dataset = created(upload(api_client, A_DATASET))
    synthetic = created(
        api_client.post(
            "/v1/datasets/synthetic", json={"name": A_SYNTHETIC, "n_samples": 40, "n_features": 4, "n_informative": 2}
        )
    )
    job = created(api_client.post("/v1/jobs", json={**JOB, "dataset": dataset["id"], "name": "job-on-upload-of-a"}))
    on_synthetic = created(
        api_client.post("/v1/jobs", json={**JOB, "dataset": f"{A_SYNTHETIC}@latest", "name": "job-on-synthetic-of-a"})
    )
    repeatable = created(api_client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": IDEMPOTENCY_KEY}))
    schedule = created(
        api_client.post(
            "/v1/schedules",
            json={"name": A_SCHEDULE, "cron": "0 3 * * *", "job": {**JOB, "dataset": f"{A_DATASET}@latest"}},
        )
    )
    study = created(
        api_client.post(
            "/v1/studies",
            json={
                "name": A_STUDY,
                "job": {**JOB, "dataset": f"{A_DATASET}@latest"},
                "search": {"regularization.l2": {"values": [0.0, 0.01]}},
            },
        )
    )
    a_key = created(api_client.post("/v1/keys", json={"tenant": "default", "name": A_KEY_NAME, "scopes": ["read"]}))
    ids = {
        "datasets": [dataset["id"], synthetic["id"]],
        "jobs": [job["id"], on_synthetic["id"], repeatable["id"]],
        "schedules": [schedule["id"]],
        "studies": [study["id"]],
        "keys": [a_key["id"]],
    }
    secrets = [
        A_DATASET,
        A_SYNTHETIC,
        A_SCHEDULE,
        A_STUDY,
        A_KEY_NAME,
        "job-on-upload-of-a",
        "job-on-synthetic-of-a",
        dataset["sha256"],
        synthetic["sha256"],
        a_key["key"],
        a_key["prefix"],
        *(value for values in ids.values() for value in values),
    ]
    return World(b=b, a_key=a_key["key"], ids=ids, secrets=secrets)


def call(client: TestClient, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    return client.request(method, path, headers=headers, json=body)


def snapshot(client: TestClient, world: World) -> dict[str, Any]:
    """What A sees of its own things."""
    seen: dict[str, Any] = {}
    for kind in ("datasets", "jobs", "schedules", "studies"):
        for id_ in world.ids[kind]:
            response = client.get(f"/v1/{kind}/{id_}")
            assert response.status_code == 200, response.text
            seen[id_] = response.json()
    seen["runs"] = client.get(f"/v1/schedules/{world.ids['schedules'][0]}/runs").json()
    seen["jobs"] = client.get("/v1/jobs").json()
    seen["datasets"] = client.get("/v1/datasets").json()
    seen["keys"] = client.get("/v1/keys", params={"tenant": "default"}).json()
    return seen


def test_another_tenants_ids_answer_exactly_as_unknown_ids(api_client: TestClient, world: World) -> None:
    before = snapshot(api_client, world)
    checked = 0
    for (method, path), case in MATRIX.items():
        name = parameter(path)
        unknown = str(uuid.uuid4())
        baseline = call(api_client, method, url(path, name, unknown), world.b, case.body)
        assert baseline.status_code == case.stranger_status, (method, path, baseline.text)
        if case.stranger_status == 404:
            assert baseline.json()["detail"].startswith(NOT_FOUND_SENTENCE[name]), baseline.text
        for id_ in world.ids[PARAMETERS[name]]:
            response = call(api_client, method, url(path, name, id_), world.b, case.body)
            where = f"{method} {path} with tenant A's {id_} as tenant B"
            assert response.status_code == case.stranger_status, f"{where}: {response.status_code} {response.text}"
            # Word for word the answer to an id that never existed: nothing tells B the id is taken.
            assert response.json() == {
                **baseline.json(),
                "detail": baseline.json()["detail"].replace(unknown, id_),
            }, where
            leaked = [secret for secret in world.secrets if secret != id_ and secret in response.text]
            assert leaked == [], f"{where}: the answer holds tenant A's {leaked}"
            checked += 1
    assert checked == 43

    # B's cancel, delete, patch, trigger and retrain changed nothing of A's, and made nothing anywhere.
    assert snapshot(api_client, world) == before
    assert api_client.get("/v1/jobs", headers=world.b).json()["total"] == 0
    assert all(job["status"] == "queued" for job in before["jobs"]["items"])
    victim = {"Authorization": f"Bearer {world.a_key}"}
    assert api_client.get("/v1/jobs", headers=victim).status_code == 200, "B's revoke reached A's key"

    # A itself, on the same routes and the same ids, reaches its resources.
    for (method, path), case in sorted(MATRIX.items(), key=lambda item: item[1].order):
        name = parameter(path)
        id_ = world.ids[PARAMETERS[name]][0]
        response = call(api_client, method, url(path, name, id_), {}, case.body)
        assert response.status_code == case.owner_status, f"{method} {path} as tenant A: {response.text}"
        if response.status_code == 404:
            assert not response.json()["detail"].startswith("There is no"), response.text


def test_listings_show_only_the_callers_rows(api_client: TestClient, world: World) -> None:
    for path, mine in (("/v1/jobs", 3), ("/v1/datasets", 2), ("/v1/schedules", 1), ("/v1/studies", 1)):
        theirs = api_client.get(path, headers=world.b)
        assert theirs.status_code == 200, theirs.text
        assert (theirs.json()["total"], theirs.json()["items"]) == (0, []), path
        assert api_client.get(path).json()["total"] == mine, path
    assert api_client.get("/v1/jobs", params={"status": "queued"}, headers=world.b).json()["total"] == 0
    assert api_client.get("/v1/datasets", params={"name": A_DATASET}, headers=world.b).json()["total"] == 0

    # B's own rows, under the same dataset name as A's: a name is per tenant, so B's is version 1.
    b_dataset = created(upload(api_client, A_DATASET, headers=world.b))
    assert b_dataset["version"] == 1
    b_job = created(api_client.post("/v1/jobs", json={**JOB, "dataset": f"{A_DATASET}@latest"}, headers=world.b))
    assert b_job["dataset"]["id"] == b_dataset["id"]
    b_schedule = created(
        api_client.post("/v1/schedules", json={"name": "b", "cron": "0 3 * * *", "job": JOB}, headers=world.b)
    )
    for path, b_id in (
        ("/v1/jobs", b_job["id"]),
        ("/v1/datasets", b_dataset["id"]),
        ("/v1/schedules", b_schedule["id"]),
    ):
        b_sees = [item["id"] for item in api_client.get(path, headers=world.b).json()["items"]]
        a_sees = [item["id"] for item in api_client.get(path).json()["items"]]
        assert b_sees == [b_id], path
        assert b_id not in a_sees and set(a_sees) == set(world.ids[path.removeprefix("/v1/")]), path
    assert [d["version"] for d in api_client.get("/v1/datasets", params={"name": A_DATASET}).json()["items"]] == [1]
    # And A cannot reach B's either.
    assert api_client.get(f"/v1/jobs/{b_job['id']}").status_code == 404
    assert api_client.get(f"/v1/datasets/{b_dataset['id']}").status_code == 404
    assert api_client.get(f"/v1/schedules/{b_schedule['id']}").status_code == 404


def test_dataset_references_resolve_only_in_the_callers_tenant(api_client: TestClient, world: World) -> None:
    a_id = world.ids["datasets"][0]
    never = f"never-uploaded-{uuid.uuid4().hex[:8]}"
    for ref, unknown in (
        (f"{A_DATASET}@latest", f"{never}@latest"),
        (f"{A_DATASET}@1", f"{never}@1"),
        (a_id, str(uuid.uuid4())),
    ):
        refused = api_client.post("/v1/jobs", json={**JOB, "dataset": ref}, headers=world.b)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith(f"There is no dataset {ref!r}"), refused.text
        baseline = api_client.post("/v1/jobs", json={**JOB, "dataset": unknown}, headers=world.b)
        assert refused.json()["detail"] == baseline.json()["detail"].replace(unknown, ref)
        assert created(api_client.post("/v1/jobs", json={**JOB, "dataset": ref}))["dataset"]["id"] == a_id

        template = {"name": "b", "cron": "0 3 * * *", "job": {**JOB, "dataset": ref}}
        schedule = api_client.post("/v1/schedules", json=template, headers=world.b)
        assert schedule.status_code == 422, schedule.text
        assert "There is no dataset" in schedule.json()["detail"]

    b_schedule = created(
        api_client.post("/v1/schedules", json={"name": "b", "cron": "0 3 * * *", "job": JOB}, headers=world.b)
    )
    patched = api_client.patch(
        f"/v1/schedules/{b_schedule['id']}", json={"job": {**JOB, "dataset": a_id}}, headers=world.b
    )
    assert patched.status_code == 422, patched.text
    assert "There is no dataset" in patched.json()["detail"]
    assert api_client.get(f"/v1/schedules/{b_schedule['id']}", headers=world.b).json()["job"] == b_schedule["job"]
    assert api_client.get("/v1/jobs", headers=world.b).json()["total"] == 0

    # The built-ins belong to every tenant.
    builtins = api_client.get("/v1/datasets/builtin")
    assert builtins.status_code == 200 and "builtin:iris" in [b["id"] for b in builtins.json()]
    assert api_client.get("/v1/datasets/builtin", headers=world.b).json() == builtins.json()
    for headers in (world.b, {}):
        assert created(api_client.post("/v1/jobs", json=JOB, headers=headers))["dataset"]["id"] == "builtin:iris"


def test_idempotency_keys_are_per_tenant(api_client: TestClient, world: World) -> None:
    a_job = world.ids["jobs"][2]
    again = {"Idempotency-Key": IDEMPOTENCY_KEY}
    b_first = created(api_client.post("/v1/jobs", json=JOB, headers={**world.b, **again}))
    assert b_first["id"] not in world.ids["jobs"], "B was answered with A's job"
    assert created(api_client.post("/v1/jobs", json=JOB, headers={**world.b, **again}))["id"] == b_first["id"]
    assert created(api_client.post("/v1/jobs", json=JOB, headers=again))["id"] == a_job
    assert [j["id"] for j in api_client.get("/v1/jobs", headers=world.b).json()["items"]] == [b_first["id"]]
    assert b_first["id"] not in [j["id"] for j in api_client.get("/v1/jobs").json()["items"]]
    assert api_client.get(f"/v1/jobs/{a_job}", headers=world.b).status_code == 404

    # The same for uploads: B's identical file under A's key is B's own new dataset.
    a_upload = created(upload(api_client, "same-file", headers={"Idempotency-Key": "upload-key"}))
    b_upload = created(upload(api_client, "same-file", headers={**world.b, "Idempotency-Key": "upload-key"}))
    assert b_upload["id"] != a_upload["id"]
    assert created(upload(api_client, "same-file", headers={"Idempotency-Key": "upload-key"}))["id"] == a_upload["id"]
    assert api_client.get(f"/v1/datasets/{b_upload['id']}", headers=world.b).status_code == 200
    assert api_client.get(f"/v1/datasets/{a_upload['id']}", headers=world.b).status_code == 404

    # Identical bytes are stored once for both tenants: B deleting its copy leaves A's file in place.
    assert b_upload["sha256"] == a_upload["sha256"]
    assert api_client.delete(f"/v1/datasets/{b_upload['id']}", headers=world.b).status_code == 204
    kept = dataset_object_key(store_key(a_upload["sha256"], a_upload["na_values"]), a_upload["kind"])
    assert get_store(get_settings()).exists(kept)
    assert (
        created(api_client.post("/v1/jobs", json={**JOB, "dataset": a_upload["id"]}))["dataset"]["id"] == a_upload["id"]
    )
