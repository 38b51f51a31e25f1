"""Requests generated from /openapi.json by Schemathesis, sent with an API key: no 5xx, every status and
response as documented, and data that breaks the schema rejected. Every phase: the schema's examples and
the coverage cases, random positive and negative requests per operation (fuzzing), chains of operations
that the schema's links allow (stateful), and a read-only key of another tenant. (Its pytest plugin does
not run under this pytest, so the generators, each operation's Hypothesis strategy and the state machine
are driven directly.)

The key goes in through Schemathesis's own auth configuration (the `ApiKey` bearer scheme), not as a fixed
header: a negative case that breaks or drops the `Authorization` header keeps its broken header, and its
401 must be documented too. Run with `-s` to see how many requests each part sent and what they got."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import NO_FEEDBACK
from schemathesis.generation.hypothesis.builder import generate_example_cases
from schemathesis.generation.overrides import Override
from schemathesis.generation.stateful import run_state_machine_as_test
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from api.main import create_app
from api.openapi_links import path_parameters
from tests.support.app import ADMIN_HEADERS, ADMIN_KEY, configure, release

SCHEMA = create_app().openapi()
PATHS = SCHEMA["paths"]
OPERATIONS = [(method.upper(), path) for path, methods in PATHS.items() for method in methods]
SCHEME = "ApiKey"


def invalid_inputs(method: str, path: str) -> str | None:
    """What a request can get wrong: a body or a query or header parameter ("input"), else only the key
    ("key"), else nothing (a path id is any string, so every id is valid input and earns a 404, not a 422)."""
    operation = PATHS[path][method.lower()]
    parameters = [p for p in operation.get("parameters", []) if p["in"] != "path"]
    if "requestBody" in operation or parameters:
        return "input"
    return "key" if operation.get("security") else None


CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if invalid_inputs(m, p)
]
CHECKS: dict[GenerationMode, list[CheckFunction]] = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ],
    GenerationMode.NEGATIVE: [not_a_server_error, negative_data_rejection, status_code_conformance],
}
# The coverage phase also sends requests without a required header (the key: 401 expected) and with
# methods an operation does not have (405 with an Allow header expected).
COVERAGE_NEGATIVE_CHECKS: list[CheckFunction] = [missing_required_header, unsupported_method]
# A stateful step is positive or, one time in ten, negative; each check looks at the cases it applies to.
STATEFUL_CHECKS = list(dict.fromkeys(CHECKS[GenerationMode.POSITIVE] + CHECKS[GenerationMode.NEGATIVE]))
# Sized so that the file runs in well under four minutes on two cores (CI runs it on every commit).
EXAMPLES = {GenerationMode.POSITIVE: 75, GenerationMode.NEGATIVE: 75}
# Where the key is the only thing a request can get wrong, a few requests without it or with a broken one.
KEY_ONLY_NEGATIVE_EXAMPLES = 5
READ_ONLY_EXAMPLES = 10
SCENARIOS, STEPS, MAX_CALLS = 40, 6, 20
BASE = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def keyed(key: str) -> SchemathesisConfig:
    """Schemathesis's configuration, with `key` as the bearer token of the schema's security scheme."""
    return SchemathesisConfig.from_dict({"auth": {"openapi": {SCHEME: {"bearer": key}}}})


def load(app: FastAPI, key: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=keyed(key))


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """A fresh home; the app's first start (Schemathesis starts its lifespan) makes REGTRAIN_ADMIN_KEY the
    admin key of tenant "default". No worker runs, so jobs stay queued."""
    configure(tmp_path, monkeypatch, max_epochs="50", max_upload_bytes=str(1024 * 1024))
    yield create_app()
    release()


@pytest.fixture
def api_schema(app: FastAPI) -> schemathesis.BaseSchema:
    return load(app, ADMIN_KEY)


# Links


def link_target(link: dict[str, Any]) -> tuple[str, str]:
    """(method, path) of the operation a link names by operationId or operationRef."""
    for path, item in PATHS.items():
        for method, operation in item.items():
            escaped = path.replace("~", "~0").replace("/", "~1")
            if link.get("operationId") == operation.get("operationId") or link.get("operationRef") == (
                f"#/paths/{escaped}/{method}"
            ):
                return method, path
    raise AssertionError(f"a link names no operation of the schema: {link}")


def test_every_path_parameter_is_reachable_through_a_link() -> None:
    """The stateful phase can only reach an id that an earlier response holds: a route whose path
    parameter no link fills is fuzzed with random ids only (and needs a producer in api/openapi_links.py)."""
    filled: set[tuple[str, str, str]] = set()
    for item in PATHS.values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                for link in response.get("links", {}).values():
                    filled.update(
                        (*link_target(link), name.removeprefix("path.")) for name in link.get("parameters", {})
                    )
    missing = [
        f"{method.upper()} {path}: {name}"
        for path, item in PATHS.items()
        for method, operation in item.items()
        for name in path_parameters(operation)
        if (method, path, name) not in filled
    ]
    assert missing == []


def test_links_name_operations_and_ids_that_the_responses_hold() -> None:
    retrain = PATHS["/v1/jobs/{job_id}/retrain"]["post"]["responses"]["201"]["links"]
    assert retrain["GetJob"]["operationId"] == PATHS["/v1/jobs/{job_id}"]["get"]["operationId"]
    assert retrain["GetJob"]["parameters"] == {"path.job_id": "$response.body#/job/id"}
    created = PATHS["/v1/jobs"]["post"]["responses"]["201"]["links"]
    assert {link_target(link) for link in created.values()} == {
        (method, path) for path, item in PATHS.items() for method in item if "{job_id}" in path
    }
    # Schemathesis resolves every link (an unknown target or a malformed parameter would raise here).
    assert schemathesis.openapi.from_dict(SCHEMA).as_state_machine()


# Each operation on its own


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_the_api_keeps_its_schema(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    statuses: Counter[int] = Counter()

    key_only = mode is GenerationMode.NEGATIVE and invalid_inputs(method, path) == "key"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(BASE, max_examples=KEY_ONLY_NEGATIVE_EXAMPLES if key_only else EXAMPLES[mode])
    def requests(case: schemathesis.Case) -> None:
        statuses[case.call_and_validate(checks=CHECKS[mode]).status_code] += 1

    requests()
    print(f"\n{method} {path} {mode.value}: {statuses.total()} requests, statuses {dict(sorted(statuses.items()))}")


# The examples and coverage phases: the schema's own examples, then Schemathesis's deterministic cases
# (boundaries of every constraint, each required part missing, wrong types, wrong methods, no key).


def deterministic_cases(operation: Any) -> Iterator[schemathesis.Case]:
    yield from generate_example_cases(test=lambda: None, operation=operation, fill_missing=False)
    config = operation.schema.config.generation_for(operation=operation, phase="coverage")
    yield from CoverageGenerator(
        operation=operation,
        generation_modes=list(GenerationMode),
        generation_config=config,
        auth_storage=None,
        override=Override(),
        feedback=NO_FEEDBACK,
    )


def test_the_examples_and_the_coverage_cases_keep_the_schema(api_schema: schemathesis.BaseSchema) -> None:
    failures: list[str] = []
    sent: Counter[str] = Counter()
    for method, path in OPERATIONS:
        for case in deterministic_cases(api_schema[path][method]):
            mode = case.meta.generation.mode if case.meta else GenerationMode.POSITIVE
            checks = CHECKS[mode] + (COVERAGE_NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else [])
            sent[mode.value] += 1
            try:
                case.call_and_validate(checks=checks)
            except FailureGroup as failure:
                failures.append(f"{method} {path}: {failure}")
    print(f"\nexamples and coverage: {dict(sent)} requests, {len(failures)} failures")
    assert failures == [], "\n".join(failures)


# Chains of operations (the stateful phase)


@dataclass
class Run:
    """What the state machine did: every step's operation and status, the ids that its 201 responses
    held, and the linked steps that used one of those ids and were answered with a 2xx."""

    steps: Counter[str] = field(default_factory=Counter)
    scenarios: int = 0
    created: set[str] = field(default_factory=set)
    chained: Counter[str] = field(default_factory=Counter)


def created_ids(response: Response) -> set[str]:
    if response.status_code != 201:
        return set()
    try:
        body = response.json()
    except ValueError:
        return set()
    if not isinstance(body, dict):
        return set()
    nested = body.get("job")
    ids = {body.get("id"), nested.get("id") if isinstance(nested, dict) else None}
    return {value for value in ids if isinstance(value, str)}


def test_chains_of_operations_keep_the_schema(api_schema: schemathesis.BaseSchema) -> None:
    run = Run()
    base: Any = api_schema.as_state_machine()

    class Workflow(base):
        def setup(self) -> None:
            run.scenarios += 1

        def step(self, input: StepInput) -> StepOutput:
            output: StepOutput = super().step(input)
            case, status = output.case, output.response.status_code
            run.steps[f"{case.operation.label} {status}"] += 1
            used = set((case.path_parameters or {}).values())
            if input.transition is not None and used & run.created and 200 <= status < 300:
                run.chained[f"{case.operation.label} {status}"] += 1
            run.created |= created_ids(output.response)
            return output

        def validate_response(
            self,
            response: Response,
            case: schemathesis.Case,
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs or None, recorder=self.recorder
            )

    # What a step can do next depends on what the API answered before (a bundle is empty or not), and
    # the API keeps its state from one scenario to the next: Hypothesis then finds that a replayed
    # choice sequence behaves differently and stops. Schemathesis's own runner starts the suite again
    # in that case; so does this loop, until the scenarios are done. A check that fails is raised. A run
    # in which no linked step has found a created id yet (rare) goes on, up to three times as long.
    calls = restarts = 0
    while calls < MAX_CALLS:
        goal = SCENARIOS if run.chained else 3 * SCENARIOS
        if run.scenarios >= goal:
            break
        calls += 1
        until = min(goal, (run.scenarios // SCENARIOS + 1) * SCENARIOS)
        try:
            run_state_machine_as_test(
                Workflow,
                settings=settings(
                    BASE, max_examples=until - run.scenarios, stateful_step_count=STEPS, phases=[Phase.generate]
                ),
            )
        except FlakyStrategyDefinition:
            restarts += 1
    print(
        f"\nstateful: {run.scenarios} scenarios, {run.steps.total()} steps, {restarts} restarts; "
        f"chained: {dict(run.chained)}; steps: {dict(run.steps)}"
    )
    assert run.chained, f"no linked step used an id that an earlier step created: {dict(run.steps)}"


# Another tenant, read only


@pytest.fixture
def reader_schema(app: FastAPI, api_schema: schemathesis.BaseSchema) -> schemathesis.BaseSchema:
    """A read-only key of a second tenant, made through the admin endpoints (`api_schema` has started
    the app, so the admin key exists)."""
    admin = TestClient(app, headers=ADMIN_HEADERS)
    tenant = admin.post("/v1/tenants", json={"name": "readers"})
    assert tenant.status_code == 201, tenant.text
    key = admin.post("/v1/keys", json={"tenant": "readers", "name": "fuzz", "scopes": ["read"]})
    assert key.status_code == 201, key.text
    return load(app, key.json()["key"])


READS = [path for method, path in OPERATIONS if method == "GET"]


@pytest.mark.parametrize("path", READS)
def test_a_read_only_key_of_another_tenant_gets_documented_answers(
    reader_schema: schemathesis.BaseSchema, path: str
) -> None:
    operation = reader_schema[path]["GET"]
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(BASE, max_examples=READ_ONLY_EXAMPLES)
    def requests(case: schemathesis.Case) -> None:
        statuses[case.call_and_validate(checks=CHECKS[GenerationMode.POSITIVE]).status_code] += 1

    requests()
    print(f"\nGET {path} read-only: {statuses.total()} requests, statuses {dict(sorted(statuses.items()))}")
