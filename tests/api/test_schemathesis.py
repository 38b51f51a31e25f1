"""Requests generated from /openapi.json by Schemathesis: no 5xx, every response as documented, and
data that breaks the schema rejected. (Its pytest plugin does not run under this pytest, so each
operation's Hypothesis strategy is driven directly.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from tests.support.app import configure, release

PATHS = create_app().openapi()["paths"]
OPERATIONS = [(method.upper(), path) for path, methods in PATHS.items() for method in methods]


def has_invalid_inputs(method: str, path: str) -> bool:
    """A body, or a query parameter with a constraint: something a request can get wrong (a path id
    is any string, so every id is valid input and earns a 404, not a 422)."""
    operation = PATHS[path][method.lower()]
    constrained = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    return "requestBody" in operation or bool(constrained)


CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if has_invalid_inputs(m, p)
]
CHECKS = {
    GenerationMode.POSITIVE: [not_a_server_error, status_code_conformance, response_schema_conformance],
    GenerationMode.NEGATIVE: [not_a_server_error, negative_data_rejection],
}


@pytest.fixture
def api_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[schemathesis.BaseSchema]:
    configure(tmp_path, monkeypatch, max_epochs="50", max_upload_bytes=str(1024 * 1024))
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app())
    release()


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_the_api_keeps_its_schema(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def requests(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS[mode])

    requests()
