"""Live events of jobs and studies (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from api.deps import Reader, SessionDep, SessionFactoryDep, SettingsDep
from api.services import events

router = APIRouter()

FRAMES = """Server-Sent Events, one per status change and (jobs) one per finished epoch or (studies) one per
finished fold of all members:

```
id: 42
event: epoch
data: {"epoch": 3, "total_epochs": 20, "train_data_loss": 0.41, "val_data_loss": 0.45, "val_accuracy": 0.9, ...}
```

`event` is `status` (data: status, attempt, at, error), `epoch` (data: the epoch's GET /metrics entry and
total_epochs) or `progress` (data: done, total fits). The stream replays every event after the resume point
(the Last-Event-ID header, else `after`), follows live, and ends after the status event of a finished job;
a `: keepalive` comment comes every 15 s. It also ends after REGTRAIN_EVENTS_MAX_STREAM_SECONDS; reconnect
with Last-Event-ID to lose nothing."""

# One event of the stream, as a reader parses it (OpenAPI 3.2 reads a stream's schema as the schema of
# each of its events): its id, its type, and its data, a line of JSON.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string", "enum": ["status", "epoch", "progress"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["id", "event", "data"],
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": EVENT_SCHEMA}}, "description": FRAMES},
    204: {"description": "The job has ended and every event was already sent: nothing to reconnect for."},
}
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", description="Resume after this event id (sent by a reconnecting EventSource)."),
]
After = Annotated[int | None, Query(ge=0, description="Resume after this event id (when no Last-Event-ID is sent).")]


def _respond(stream: events.EventStream) -> Response:
    if stream.frames is None:
        return Response(status_code=204)
    # no-cache and no proxy buffering: each event must reach the reader when it is sent.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream.frames, media_type="text/event-stream", headers=headers)


@router.get("/v1/jobs/{job_id}/events", tags=["jobs"], response_class=StreamingResponse, responses=RESPONSES)
def job_events(
    job_id: str,
    caller: Reader,
    session: SessionDep,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
    after: After = None,
) -> Response:
    """Follow a job live: its status changes and one event per finished epoch (Server-Sent Events)."""
    stream = events.open_stream(session, sessions, caller.tenant_id, job_id, "train", last_event_id, after, settings)
    return _respond(stream)


@router.get("/v1/studies/{study_id}/events", tags=["studies"], response_class=StreamingResponse, responses=RESPONSES)
def study_events(
    study_id: str,
    caller: Reader,
    session: SessionDep,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
    after: After = None,
) -> Response:
    """Follow a study live: its status changes and its progress after each fold of its members (Server-Sent Events)."""
    stream = events.open_stream(session, sessions, caller.tenant_id, study_id, "study", last_event_id, after, settings)
    return _respond(stream)
