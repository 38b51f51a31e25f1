"""The event streams' contract without a worker: what a queued, canceled or finished job or study tells,
resuming, the answer after the end, and the refusals. Streams of real training are read in
tests/integration/test_events_end_to_end.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.sse import Event, parse_text

JOB = {"dataset": "builtin:iris", "model": {"type": "linear"}, "training": {"epochs": 3}}
STUDY = {"job": JOB, "variants": {"none": {}, "l1": {"regularization": {"l1": 0.001}}}}


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def stream(client: TestClient, url: str, **kwargs: Any) -> list[Event]:
    response = client.get(url, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.text.startswith("retry: 1000\n\n")
    return parse_text(response.text)


def test_a_queued_job_tells_it_is_queued_and_the_stream_ends_at_its_limit(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    events = stream(api_client, f"/v1/jobs/{job['id']}/events")
    assert [(e.kind, e.data["status"], e.data["attempt"], e.data["error"]) for e in events] == [
        ("status", "queued", 0, None)
    ]
    # Still queued: the stream ended at the server's limit, and a reconnect from there waits for news.
    assert stream(api_client, f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": str(events[-1].id)}) == []


def test_a_canceled_job_replays_its_story_and_then_has_nothing_to_reconnect_for(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    assert api_client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    url = f"/v1/jobs/{job['id']}/events"
    events = stream(api_client, url)
    assert [e.data["status"] for e in events] == ["queued", "canceled"]
    assert events[0].id < events[1].id
    # Resuming after the first event gives the rest, by header or by query parameter; the header wins.
    assert stream(api_client, url, headers={"Last-Event-ID": str(events[0].id)}) == events[1:]
    assert stream(api_client, url, params={"after": events[0].id}) == events[1:]
    assert stream(api_client, url, params={"after": 0}, headers={"Last-Event-ID": str(events[0].id)}) == events[1:]
    # Everything was sent and the job is over: 204 tells an EventSource not to reconnect.
    done = api_client.get(url, headers={"Last-Event-ID": str(events[-1].id)})
    assert done.status_code == 204 and done.content == b""


def test_a_study_stream_tells_its_status(api_client: TestClient) -> None:
    study = created(api_client.post("/v1/studies", json=STUDY))
    url = f"/v1/studies/{study['id']}/events"
    assert [e.data["status"] for e in stream(api_client, url)] == ["queued"]
    assert api_client.post(f"/v1/studies/{study['id']}/cancel").status_code == 202
    assert [e.data["status"] for e in stream(api_client, url)] == ["queued", "canceled"]


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "0x10", "12 13"])
def test_a_last_event_id_that_is_no_event_id_is_refused(api_client: TestClient, value: str) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    response = api_client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": value})
    assert response.status_code == 422, response.text
    assert "Last-Event-ID must be the id of an event this stream sent" in response.json()["detail"]


def test_a_negative_after_is_refused(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    response = api_client.get(f"/v1/jobs/{job['id']}/events", params={"after": -1})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "after"]


def test_unknown_ids_and_the_wrong_kind_are_404(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    study = created(api_client.post("/v1/studies", json=STUDY))
    unknown = api_client.get("/v1/jobs/00000000-0000-0000-0000-000000000000/events")
    assert unknown.status_code == 404 and "There is no job with id" in unknown.json()["detail"]
    # A study is not a job, and a job is not a study.
    assert api_client.get(f"/v1/jobs/{study['id']}/events").status_code == 404
    assert api_client.get(f"/v1/studies/{job['id']}/events").status_code == 404


def test_a_stream_needs_a_key(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    response = api_client.get(f"/v1/jobs/{job['id']}/events", headers={"Authorization": ""})
    assert response.status_code == 401


def test_every_event_fits_the_documented_event_schema(api_client: TestClient) -> None:
    """OpenAPI describes a stream by the schema of one event; schema checkers (schemathesis) validate
    each event a stream sends against it."""
    import jsonschema_rs

    documented = api_client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/events"]["get"]
    schema = documented["responses"]["200"]["content"]["text/event-stream"]["schema"]
    job = created(api_client.post("/v1/jobs", json=JOB))
    assert api_client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    events = stream(api_client, f"/v1/jobs/{job['id']}/events")
    assert len(events) == 2
    for event in events:
        wire = {"id": str(event.id), "event": event.kind, "data": json.dumps(event.data)}
        assert jsonschema_rs.is_valid(schema, wire), wire
    assert not jsonschema_rs.is_valid(schema, "a stream's text is not an event")
