"""Following a job or a study over the API's Server-Sent Events (GET /v1/jobs/{id}/events and
GET /v1/studies/{id}/events): a byte-stream parser, and a loop that reconnects with Last-Event-ID so that
every event is handled exactly once, in order, however often the connection drops."""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from cli.client import ApiClient, CommandError

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# How long the API may stay unreachable before following gives up.
GIVE_UP_AFTER_SECONDS = 30.0
# Until the stream says otherwise ("retry:"), wait this long before reconnecting.
DEFAULT_RETRY_SECONDS = 1.0
# Answers that mean "not now" rather than "never": the API restarting, or its database briefly away.
TRANSIENT_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class ServerEvent:
    """One dispatched event. `id` is the stream's last event id when it was dispatched (it persists across
    events, as in the EventSource standard); `retry_ms` is set only on the event that carried a retry field."""

    event: str
    data: str
    id: str | None
    retry_ms: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseParser:
    """The text/event-stream format of the HTML standard, fed bytes as they arrive: lines end with LF, CRLF
    or CR (even split across chunks), comment lines start with ":", several data lines join with LF, and a
    blank line dispatches. A frame with only a retry field is reported (with empty data) so that the caller
    learns the reconnection delay."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.buffer = ""
        self.first_line = True
        self.last_id: str | None = None
        self.event = ""
        self.data: list[str] = []
        self.retry_ms: int | None = None
        self.has_fields = False

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        self.buffer += self.decoder.decode(chunk)
        return list(self._lines(final=False))

    def close(self) -> list[ServerEvent]:
        """The stream ended: a frame not closed by a blank line is discarded, as the standard says."""
        self.buffer += self.decoder.decode(b"", final=True)
        return list(self._lines(final=True))

    def _lines(self, final: bool) -> Iterator[ServerEvent]:
        while True:
            cut = min((i for i in (self.buffer.find("\r"), self.buffer.find("\n")) if i >= 0), default=-1)
            if cut < 0:
                if final:
                    self.buffer = ""
                return
            if self.buffer[cut] == "\r" and cut == len(self.buffer) - 1 and not final:
                return  # the LF of a CRLF may be in the next chunk
            line = self.buffer[:cut]
            width = 2 if self.buffer.startswith("\r\n", cut) else 1
            self.buffer = self.buffer[cut + width :]
            if self.first_line:
                line = line.removeprefix("\ufeff")
                self.first_line = False
            event = self._line(line)
            if event is not None:
                yield event

    def _line(self, line: str) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        elif name == "id":
            if "\0" not in value:
                self.last_id = value
        elif name == "retry":
            if value.isdigit():
                self.retry_ms = int(value)
        else:
            return None
        self.has_fields = True
        return None

    def _dispatch(self) -> ServerEvent | None:
        if not self.has_fields:
            return None
        event = ServerEvent(
            event=self.event or "message", data="\n".join(self.data), id=self.last_id, retry_ms=self.retry_ms
        )
        self.event, self.data, self.retry_ms, self.has_fields = "", [], None, False
        if not event.data and event.retry_ms is None:
            return None
        return event


def parse(chunks: Iterable[bytes]) -> Iterator[ServerEvent]:
    parser = SseParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()


def follow_events(
    client: ApiClient,
    path: str,
    handle: Callable[[str, dict[str, Any]], None],
    give_up_after: float = GIVE_UP_AFTER_SECONDS,
) -> str | None:
    """Hands each event (kind, data) to `handle` exactly once, in id order, until a terminal status, and
    returns that status; or None when the API says nothing is left to tell (204: the run ended earlier).
    A dropped connection, a stream the server ended early, or an API that is restarting is reconnected with
    Last-Event-ID; an API gone for `give_up_after` seconds is a CommandError."""
    last_id: int | None = None
    retry = DEFAULT_RETRY_SECONDS
    down_since: float | None = None
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        trouble: str
        try:
            with client.stream(path, headers) as response:
                if response.status_code in TRANSIENT_STATUSES:
                    trouble = f"it answered {response.status_code}"
                else:
                    if not response.is_success:
                        response.read()
                        client.check(response)
                    if response.status_code == 204:
                        # The run has ended and every event was already handled (or it ended before it had any).
                        return None
                    down_since = None
                    for event in parse(response.iter_bytes()):
                        if event.retry_ms is not None:
                            retry = event.retry_ms / 1000
                        if not event.data or event.id is None or not event.id.isdigit():
                            continue
                        # A resumed stream starts after Last-Event-ID; anything at or before it was handled.
                        if last_id is not None and int(event.id) <= last_id:
                            continue
                        data = event.json()
                        handle(event.event, data)
                        last_id = int(event.id)
                        if event.event == "status" and data.get("status") in TERMINAL:
                            return str(data["status"])
                    # The server ends a long stream on purpose; the next one resumes where this one stopped.
                    time.sleep(retry)
                    continue
        except httpx.TransportError as error:
            trouble = str(error) or type(error).__name__
        now = time.monotonic()
        down_since = down_since if down_since is not None else now
        if now - down_since >= give_up_after:
            raise CommandError(
                f"lost the API at {client.base_url} for {give_up_after:g} s ({trouble}); stopped following "
                "(training goes on on the server)."
            )
        time.sleep(retry)
