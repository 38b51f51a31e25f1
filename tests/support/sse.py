"""Reading a Server-Sent Events body the way the specification says a browser does, so that tests check
the wire format itself rather than trusting the server's own framing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: Any


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the stream's lines: fields until a blank line; comments (":") and `retry:` are skipped."""
    fields: dict[str, list[str]] = {}
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield Event(
                    int(fields["id"][-1]), fields.get("event", ["message"])[-1], json.loads("\n".join(fields["data"]))
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)


def parse_text(body: str) -> list[Event]:
    return list(parse(body.split("\n")))
