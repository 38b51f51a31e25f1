"""Following a run's Server-Sent Events: the parser reads the byte stream as the HTML standard says, however
it is cut into chunks; the follower reconnects with Last-Event-ID across dropped connections, streams the
server ended early and a restarting API, handling every event exactly once, and gives up with a sentence
when the API stays away."""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cli.client import ApiClient, CommandError, NotFoundError
from cli.follow import ServerEvent, SseParser, follow_events, parse
from tests.support.servers import free_port

# What the API writes: a retry frame, events, a keepalive comment, more events.
STREAM = (
    b"retry: 1000\n\n"
    b'id: 7\nevent: status\ndata: {"status":"running","attempt":1}\n\n'
    b": keepalive\n\n"
    b'id: 8\nevent: epoch\ndata: {"epoch":1,"total_epochs":2}\n\n'
    b'id: 9\nevent: status\ndata: {"status":"succeeded","attempt":1}\n\n'
)
EXPECTED = [
    ServerEvent(event="message", data="", id=None, retry_ms=1000),
    ServerEvent(event="status", data='{"status":"running","attempt":1}', id="7"),
    ServerEvent(event="epoch", data='{"epoch":1,"total_epochs":2}', id="8"),
    ServerEvent(event="status", data='{"status":"succeeded","attempt":1}', id="9"),
]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


def test_the_parser_reads_the_apis_stream_whole() -> None:
    assert list(parse([STREAM])) == EXPECTED


def test_the_parser_gives_the_same_events_however_the_bytes_are_cut() -> None:
    assert list(parse([bytes([b]) for b in STREAM])) == EXPECTED
    generator = random.Random(4)
    for _ in range(50):
        cuts = generator.sample(range(1, len(STREAM)), k=generator.randint(1, 20))
        assert list(parse(chunked(STREAM, cuts))) == EXPECTED


def test_the_parser_takes_crlf_and_cr_line_ends_even_split_between_chunks() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    cr = STREAM.replace(b"\n", b"\r")
    assert list(parse([crlf])) == EXPECTED
    assert list(parse([cr])) == EXPECTED
    # Cut right between every CR and its LF.
    cuts = [index + 1 for index, byte in enumerate(crlf) if byte == ord("\r")]
    assert list(parse(chunked(crlf, cuts))) == EXPECTED


def test_the_parser_joins_data_lines_keeps_the_last_id_and_ignores_what_the_standard_ignores() -> None:
    stream = (
        "\ufeffdata:first\ndata: second\nid: 3\nunknown: field\n\n"
        "event: note\ndata: no id of its own\n\n"
        "id: 4\n\n"  # an id alone dispatches nothing
        'data: {"text": "héllo"}\n\n'
        "data: cut short, never dispatched\n"
    ).encode()
    parser = SseParser()
    events = []
    for byte in stream:
        events += parser.feed(bytes([byte]))  # multi-byte characters arrive a byte at a time
    events += parser.close()
    assert events == [
        ServerEvent(event="message", data="first\nsecond", id="3"),
        ServerEvent(event="note", data="no id of its own", id="3"),
        ServerEvent(event="message", data='{"text": "héllo"}', id="4"),
    ]
    assert events[2].json() == {"text": "héllo"}


# --- Following ------------------------------------------------------------------------------------


@dataclass
class Answer:
    """One connection's answer: a status, frames sent as chunks, and whether the body is finished properly
    (False: the connection is cut mid-body, as a dying server or a dropped network does)."""

    status: int
    frames: list[bytes] = field(default_factory=list)
    complete: bool = True


def frame(event_id: int, kind: str, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class ScriptedApi:
    url: str
    answers: list[Answer]
    resumed_after: list[str | None] = field(default_factory=list)


@pytest.fixture
def scripted() -> Iterator[ScriptedApi]:
    api = ScriptedApi(url="", answers=[])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            api.resumed_after.append(self.headers.get("Last-Event-ID"))
            answer = api.answers.pop(0)
            self.send_response(answer.status)
            if answer.status == 404:
                body = json.dumps({"detail": "There is no job with id 'x'.", "error": "NotFound"}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if answer.status != 200:
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in answer.frames:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if answer.complete:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *_: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def test_following_resumes_after_every_drop_and_handles_each_event_once(scripted: ScriptedApi) -> None:
    fast_retry = b"retry: 20\n\n"
    scripted.answers = [
        # Cut mid-frame: event 4 is half sent.
        Answer(
            200,
            [
                fast_retry,
                frame(1, "status", {"status": "queued", "attempt": 0}),
                frame(2, "status", {"status": "running", "attempt": 1}),
                frame(3, "epoch", {"epoch": 1}),
                b'id: 4\nevent: epoch\ndata: {"epo',
            ],
            complete=False,
        ),
        # Ended by the server (its longest stream) before the run ended; it repeats event 3.
        Answer(200, [fast_retry, frame(3, "epoch", {"epoch": 1}), frame(4, "epoch", {"epoch": 2})]),
        # The API restarting.
        Answer(503),
        Answer(200, [fast_retry, frame(5, "epoch", {"epoch": 3}), frame(6, "status", {"status": "succeeded"})]),
    ]
    handled: list[tuple[str, dict[str, Any]]] = []
    with ApiClient(scripted.url, "key") as client:
        outcome = follow_events(client, "/v1/jobs/x/events", lambda kind, data: handled.append((kind, data)))
    assert outcome == "succeeded"
    assert handled == [
        ("status", {"status": "queued", "attempt": 0}),
        ("status", {"status": "running", "attempt": 1}),
        ("epoch", {"epoch": 1}),
        ("epoch", {"epoch": 2}),
        ("epoch", {"epoch": 3}),
        ("status", {"status": "succeeded"}),
    ]
    assert scripted.resumed_after == [None, "3", "4", "4"]


def test_a_run_with_nothing_left_to_tell_ends_following_at_once(scripted: ScriptedApi) -> None:
    scripted.answers = [Answer(204)]
    handled: list[str] = []
    with ApiClient(scripted.url, "key") as client:
        assert follow_events(client, "/v1/jobs/x/events", lambda kind, _: handled.append(kind)) is None
    assert handled == []


def test_an_unknown_run_is_the_servers_sentence(scripted: ScriptedApi) -> None:
    scripted.answers = [Answer(404)]
    with ApiClient(scripted.url, "key") as client, pytest.raises(NotFoundError) as refused:
        follow_events(client, "/v1/jobs/x/events", lambda *_: None)
    assert refused.value.message == "There is no job with id 'x'."
    assert refused.value.status == 2


def test_following_gives_up_with_a_sentence_when_the_api_stays_away() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ApiClient(url, "key") as client, pytest.raises(CommandError) as gone:
        follow_events(client, "/v1/jobs/x/events", lambda *_: None, give_up_after=0.5)
    assert gone.value.message.startswith(f"lost the API at {url} for 0.5 s")
    assert "stopped following (training goes on on the server)" in gone.value.message
