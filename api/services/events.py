"""Live events of a job or a study as Server-Sent Events: what the job_event table holds after the resume
point, then what is recorded next, until the job ends.

A stream holds no database connection: it reads in short sessions of its own, one every POLL_SECONDS,
because a stream can stay open for minutes and a pooled connection held that long would starve the
requests behind it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services.jobs import get_job
from core.errors import InvalidInput
from core.settings import Settings
from models import TERMINAL_STATUSES, Job, JobEvent, JobStatus

# An epoch's event must reach its reader within 1 s of being recorded; a read every 0.2 s leaves most of
# that second for the commit, the network and the client.
POLL_SECONDS = 0.2
# Proxies and load balancers commonly drop a connection idle for 30-60 s; a comment line keeps it open.
KEEPALIVE_SECONDS = 15.0
# How long an EventSource waits before reconnecting after a dropped stream (the `retry:` field).
RECONNECT_MILLISECONDS = 1000
# Events read per query: a long finished job replays in pages.
PAGE = 500
TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)


@dataclass(frozen=True)
class EventStream:
    """A stream ready to send, or None in `frames` when there is nothing left to tell (the job ended and
    the reader has every event): the route then answers 204, which tells an EventSource not to reconnect."""

    frames: AsyncIterator[bytes] | None


def resume_point(last_event_id: str | None, after: int | None) -> int:
    """The id to resume after: the Last-Event-ID header (what a reconnecting EventSource sends, so it wins),
    else the `after` query parameter, else the beginning."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isascii() or not text.isdigit():
            raise InvalidInput(
                f"Last-Event-ID must be the id of an event this stream sent (a non-negative integer), not {text!r}."
            )
        return int(text)
    return after or 0


def open_stream(
    session: Session,
    sessions: Callable[[], Session],
    tenant_id: str,
    job_id: str,
    kind: str,
    last_event_id: str | None,
    after_id: int | None,
    settings: Settings,
) -> EventStream:
    """Checks that the caller may read this job's (kind "train") or study's (kind "study") events, then
    returns the stream of those after the resume point (see `resume_point`)."""
    after = resume_point(last_event_id, after_id)
    max_seconds = settings.events_max_stream_seconds
    job = get_job(session, tenant_id, job_id, kind)
    finished = JobStatus(job.status).value in TERMINAL
    pending = session.scalar(select(JobEvent.id).where(JobEvent.job_id == job.id, JobEvent.id > after).limit(1))
    # Release the request's connection now: the stream reads with sessions of its own.
    session.close()
    if finished and pending is None:
        return EventStream(None)
    return EventStream(_frames(sessions, job_id, after, max_seconds))


def _read(sessions: Callable[[], Session], job_id: str, after: int) -> tuple[list[tuple[int, str, Any]], bool]:
    """Events after `after` (a page), and whether the job still exists."""
    with sessions() as session:
        rows = session.execute(
            select(JobEvent.id, JobEvent.kind, JobEvent.data)
            .where(JobEvent.job_id == job_id, JobEvent.id > after)
            .order_by(JobEvent.id)
            .limit(PAGE)
        ).all()
        exists = bool(rows) or session.get(Job, job_id) is not None
        return [(row.id, row.kind, row.data) for row in rows], exists


def frame(event_id: int, kind: str, data: Any) -> bytes:
    """One SSE event; the data is one line of JSON, so a reader never has to join `data:` lines."""
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _frames(sessions: Callable[[], Session], job_id: str, after: int, max_seconds: float) -> AsyncIterator[bytes]:
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
    started = last_sent = time.monotonic()
    while time.monotonic() - started < max_seconds:
        events, exists = await anyio.to_thread.run_sync(_read, sessions, job_id, after)
        for event_id, kind, data in events:
            yield frame(event_id, kind, data)
            after = event_id
            if kind == "status" and data.get("status") in TERMINAL:
                return
        if not exists:
            return
        now = time.monotonic()
        if events:
            last_sent = now
            if len(events) == PAGE:
                continue
        elif now - last_sent >= KEEPALIVE_SECONDS:
            yield b": keepalive\n\n"
            last_sent = now
        await anyio.sleep(POLL_SECONDS)
