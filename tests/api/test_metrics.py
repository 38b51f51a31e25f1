"""GET /metrics: Prometheus text that a scraper parses, with numbers that match the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from api.main import create_app
from core.db import get_session_factory
from core.queues import ALL_QUEUES
from models import Job, JobStatus
from tests.support.app import ADMIN_HEADERS, configure, release

JOB = {"dataset": "builtin:iris", "training": {"epochs": 2}}


def samples(text: str) -> dict[str, list[Any]]:
    """Samples by sample name (counters' `_total`, histograms' `_bucket`, ...), parsed as a scraper does."""
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no HELP text"
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(found: dict[str, list[Any]], name: str, **labels: str) -> float | None:
    matching = [s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) <= 1, f"{name}{labels} is ambiguous: {matching}"
    return matching[0] if matching else None


def scrape(client: TestClient) -> dict[str, list[Any]]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


@pytest.fixture
def app_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., TestClient]]:
    """The app on a fresh SQLite home with the given settings; the client sends no key by default."""
    clients: list[TestClient] = []

    def make(**settings: str) -> TestClient:
        configure(tmp_path, monkeypatch, **settings)
        client = TestClient(create_app())
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
    release()


def test_job_counts_by_status_are_what_the_database_holds(api_client: TestClient) -> None:
    ids = [api_client.post("/v1/jobs", json=JOB).json()["id"] for _ in range(3)]
    assert api_client.post(f"/v1/jobs/{ids[0]}/cancel").status_code == 202

    found = scrape(api_client)

    with get_session_factory()() as session:
        held = {
            status: count for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status))
        }
    assert held == {JobStatus.QUEUED: 2, JobStatus.CANCELED: 1}
    for status in JobStatus:
        assert value(found, "regtrain_jobs", status=status.value, tenant="default") == held.get(status, 0)
    # The embedded broker is up: both queues are reported (no worker here, so the two messages wait).
    assert value(found, "regtrain_broker_up") == 1
    assert sum(value(found, "regtrain_queue_depth", queue=queue) or 0 for queue in ALL_QUEUES) >= 2
    # One finished job (canceled before it started): counted, but it has no duration to report.
    assert value(found, "regtrain_recent_jobs") == 1
    assert value(found, "regtrain_recent_job_duration_seconds", status="canceled", quantile="0.5") is None


def test_requests_are_counted_by_route_template_and_status(api_client: TestClient) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    route = "/v1/jobs/{job_id}"
    before = value(scrape(api_client), "regtrain_http_requests_total", method="GET", route=route, status="404") or 0

    assert api_client.get(f"/v1/jobs/{unknown}").status_code == 404
    assert api_client.get(f"/v1/jobs/{unknown}").status_code == 404
    found = scrape(api_client)

    assert value(found, "regtrain_http_requests_total", method="GET", route=route, status="404") == before + 2
    assert not any(unknown in sample.labels.get("route", "") for sample in found["regtrain_http_requests_total"])
    latency = value(found, "regtrain_http_request_duration_seconds_count", method="GET", route=route)
    assert latency is not None and latency >= 2
    # A path no route matches is counted under one label, not its own.
    api_client.get("/no/such/page")
    found = scrape(api_client)
    assert value(found, "regtrain_http_requests_total", method="GET", route="<unmatched>", status="404")


def test_by_default_a_key_with_the_read_scope_is_needed(app_with: Callable[..., TestClient]) -> None:
    client = app_with()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"] == "Unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer rt_not-a-key"}).status_code == 401
    write_only = client.post(
        "/v1/keys", json={"tenant": "default", "name": "w", "scopes": ["write"]}, headers=ADMIN_HEADERS
    )
    assert write_only.status_code == 201, write_only.text
    headers = {"Authorization": f"Bearer {write_only.json()['key']}"}
    assert client.get("/metrics", headers=headers).status_code == 403
    assert client.get("/metrics", headers=ADMIN_HEADERS).status_code == 200


def test_public_metrics_need_no_key(app_with: Callable[..., TestClient]) -> None:
    client = app_with(metrics="public")
    found = scrape(client)
    assert value(found, "regtrain_jobs", status="queued", tenant="default") == 0


def test_metrics_off_answers_404(app_with: Callable[..., TestClient]) -> None:
    client = app_with(metrics="off")
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=ADMIN_HEADERS).status_code == 404


def test_an_unreachable_broker_leaves_queue_depth_out_and_the_scrape_succeeds(
    app_with: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A port nothing listens on: the broker check fails fast with a refused connection.
    client = app_with(metrics="public", broker_url="redis://127.0.0.1:9/0")
    found = scrape(client)
    assert value(found, "regtrain_broker_up") == 0
    assert "regtrain_queue_depth" not in found
    assert value(found, "regtrain_jobs", status="queued", tenant="default") == 0
