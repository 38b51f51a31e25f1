"""Event streams of real training on both stacks: a job's stream read from its first event to its end
holds every epoch once, in order, with the numbers GET /metrics serves; a reconnect with Last-Event-ID
(or `after`) continues without loss or repeats; a study's stream tells its progress fold by fold."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.sse import Event, parse
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

EPOCHS = 12
JOB = {
    "dataset": "builtin:iris",
    "model": {"type": "mlp", "hidden_layers": [16]},
    "regularization": {"l1": 0.001},
    "training": {"epochs": EPOCHS, "batch_size": 16, "early_stopping": None},
}


def read(stack: Stack, url: str, **kwargs: Any) -> list[Event]:
    """The whole stream, as an EventSource would read it, until the server ends it."""
    with stack.client.stream("GET", url, timeout=httpx.Timeout(120, read=60), **kwargs) as response:
        assert response.status_code == 200, response.read().decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse(response.iter_lines()))


def test_a_jobs_stream_holds_every_epoch_once_and_resumes_without_loss(stack: Stack) -> None:
    job = stack.submit(JOB)
    url = f"/v1/jobs/{job['id']}/events"
    events = read(stack, url)

    statuses = [e.data["status"] for e in events if e.kind == "status"]
    assert statuses == ["queued", "running", "succeeded"], statuses
    assert [e.data["attempt"] for e in events if e.kind == "status"] == [0, 1, 1]
    epochs = [e for e in events if e.kind == "epoch"]
    assert [e.data["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    assert {e.data["total_epochs"] for e in epochs} == {EPOCHS}
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Epoch events sit between running and succeeded, and carry what GET /metrics serves.
    assert events[1].data["status"] == "running" and events[-1].data["status"] == "succeeded"
    served = stack.client.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    for event, row in zip(epochs, served, strict=True):
        for name in ("train_data_loss", "l1_penalty", "val_data_loss", "val_accuracy", "zero_fraction", "lr"):
            assert event.data[name] == pytest.approx(row[name], rel=1e-12), name

    # Reconnecting after epoch 5 (as an EventSource does, with Last-Event-ID) gives the rest exactly once.
    fifth = epochs[4].id
    assert read(stack, url, headers={"Last-Event-ID": str(fifth)}) == [e for e in events if e.id > fifth]
    assert read(stack, url, params={"after": epochs[8].id}) == [e for e in events if e.id > epochs[8].id]
    # After the last event of a finished job there is nothing to reconnect for.
    assert stack.client.get(url, headers={"Last-Event-ID": str(events[-1].id)}).status_code == 204


def test_a_stream_opened_mid_training_continues_live_to_the_end(stack: Stack) -> None:
    job = stack.submit({**JOB, "training": {**JOB["training"], "epochs": 40}})
    url = f"/v1/jobs/{job['id']}/events"
    with stack.client.stream("GET", url, timeout=httpx.Timeout(120, read=60)) as response:
        seen: list[Event] = []
        for event in parse(response.iter_lines()):
            seen.append(event)
            if event.kind == "epoch" and event.data["epoch"] == 2:
                break
    # The first connection dropped after epoch 2 was read; the second picks up right after it.
    rest = read(stack, url, headers={"Last-Event-ID": str(seen[-1].id)})
    epochs = [e.data["epoch"] for e in seen + rest if e.kind == "epoch"]
    assert epochs == list(range(1, 41))
    assert rest[-1].data["status"] == "succeeded"


def test_a_studys_stream_tells_its_progress(stack: Stack) -> None:
    body = {
        "job": {"dataset": "builtin:iris", "model": {"type": "mlp", "hidden_layers": [8]}, "training": {"epochs": 3}},
        "variants": {"none": {}, "l2": {"regularization": {"l2": 0.01}}},
        "cv": {"folds": 3},
    }
    response = stack.client.post("/v1/studies", json=body)
    assert response.status_code == 201, response.text
    study = response.json()
    events = read(stack, f"/v1/studies/{study['id']}/events")
    assert [e.data["status"] for e in events if e.kind == "status"] == ["queued", "running", "succeeded"]
    progress = [(e.data["done"], e.data["total"]) for e in events if e.kind == "progress"]
    assert progress == [(2, 6), (4, 6), (6, 6)], progress
