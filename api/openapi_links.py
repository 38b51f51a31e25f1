"""OpenAPI links: where the id in a creating operation's response can be used next.

A client (and Swagger UI, and a stateful fuzzer such as Schemathesis) reads from them that the `id` of
the job `POST /v1/jobs` answers with is the `job_id` of `GET /v1/jobs/{job_id}`, of its cancel, metrics,
weights, artifact, predict and retrain operations, and so on for datasets, schedules and keys; and that
a new dataset's `id` can be the `dataset` of a new job (or of a schedule's job template).

The targets are found in the schema itself: every operation with a path parameter of that name. Links
name their target by the operationId the schema gives it (an operationRef where it has none), looked up
by path and method, and a producer whose path is not in the schema, or whose success response does not
hold the id where this module expects it, is skipped. A target's other path parameters that take one of a
fixed set of values (a plot's name and its format) are given the first of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class Producer:
    """An operation whose success response holds the id of a resource, at `pointer` (a JSON pointer
    into the response body), which other operations take as their path parameter `parameter`."""

    method: str
    path: str
    parameter: str
    pointer: str


PRODUCERS: tuple[Producer, ...] = (
    Producer("post", "/v1/jobs", "job_id", "/id"),
    Producer("post", "/v1/jobs/{job_id}/retrain", "job_id", "/job/id"),
    Producer("post", "/v1/schedules/{schedule_id}/trigger", "job_id", "/id"),
    Producer("post", "/v1/datasets", "dataset_id", "/id"),
    Producer("post", "/v1/datasets/synthetic", "dataset_id", "/id"),
    Producer("post", "/v1/schedules", "schedule_id", "/id"),
    Producer("post", "/v1/keys", "key_id", "/id"),
    Producer("post", "/v1/studies", "study_id", "/id"),
)


@dataclass(frozen=True)
class BodyUse:
    """An operation whose JSON request body takes such an id at `field` (a JSON pointer), e.g. the
    dataset of a new job: links fill only that field and keep the rest of the body."""

    method: str
    path: str
    field: str


BODY_USES: dict[str, tuple[BodyUse, ...]] = {
    "dataset_id": (
        BodyUse("post", "/v1/jobs", "/dataset"),
        BodyUse("post", "/v1/schedules", "/job/dataset"),
        BodyUse("post", "/v1/studies", "/job/dataset"),
    ),
}


def add_links(schema: dict[str, Any]) -> None:
    """Add `links` to the success response of every producer in `schema` (in place). Links already
    there, under the same name, are kept."""
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for producer in PRODUCERS:
        operation = paths.get(producer.path, {}).get(producer.method)
        if not isinstance(operation, dict):
            continue
        found = _success_response(schema, operation, producer.pointer)
        if found is None:
            continue
        status, response = found
        links = response.setdefault("links", {})
        for method, path, target in _operations_taking(paths, producer.parameter):
            reference = _target_reference(target, method, path)
            name = _link_name(target, method, path)
            if name in links and not _same_target(links[name], reference):
                name = _link_name({}, method, path)
            links.setdefault(
                name,
                {
                    **reference,
                    "parameters": {
                        f"path.{producer.parameter}": f"$response.body#{producer.pointer}",
                        **_fixed_choices(schema, target, producer.parameter),
                    },
                    "description": f"The `{producer.parameter}` of `{method.upper()} {path}` is the `"
                    f"{producer.pointer.lstrip('/').replace('/', '.')}` of this {status} response.",
                },
            )
        for use in BODY_USES.get(producer.parameter, ()):
            taker = paths.get(use.path, {}).get(use.method)
            if not isinstance(taker, dict) or not _takes_field(schema, taker, use.field):
                continue
            name = _link_name(taker, use.method, use.path)
            body: Any = f"$response.body#{producer.pointer}"
            for token in reversed(use.field.strip("/").split("/")):
                body = {token: body}
            links.setdefault(
                name,
                {
                    **_target_reference(taker, use.method, use.path),
                    "requestBody": body,
                    "description": f"The `{use.field.lstrip('/').replace('/', '.')}` of the body of "
                    f"`{use.method.upper()} {use.path}` can be the `{producer.pointer.lstrip('/').replace('/', '.')}` "
                    f"of this {status} response (the rest of the body is the caller's).",
                },
            )


def path_parameters(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if isinstance(p, dict) and p.get("in") == "path"]


def _fixed_choices(schema: dict[str, Any], operation: dict[str, Any], filled: str) -> dict[str, Any]:
    """The first allowed value of each path parameter other than `filled` that has a fixed set of them."""
    choices = {}
    for parameter in operation.get("parameters", []):
        if not isinstance(parameter, dict) or parameter.get("in") != "path" or parameter.get("name") == filled:
            continue
        definition = parameter.get("schema", {})
        if isinstance(definition, dict) and isinstance(definition.get("$ref"), str):
            definition = _resolve(schema, definition["$ref"])
        allowed = definition.get("enum") if isinstance(definition, dict) else None
        if allowed:
            choices[f"path.{parameter['name']}"] = allowed[0]
    return choices


def _operations_taking(paths: dict[str, dict[str, Any]], parameter: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in paths.items()
        for method, operation in item.items()
        if method in METHODS and isinstance(operation, dict) and parameter in path_parameters(operation)
    ]


def _success_response(schema: dict[str, Any], operation: dict[str, Any], pointer: str) -> tuple[str, Any] | None:
    """The first 2xx response whose JSON body schema has `pointer`."""
    for status in sorted(code for code in operation.get("responses", {}) if code.startswith("2")):
        response = operation["responses"][status]
        body = response.get("content", {}).get("application/json", {}).get("schema")
        if body is not None and _has_pointer(schema, body, pointer.strip("/").split("/")):
            return status, response
    return None


def _takes_field(schema: dict[str, Any], operation: dict[str, Any], field: str) -> bool:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    return body is not None and _has_pointer(schema, body, field.strip("/").split("/"))


def _has_pointer(schema: dict[str, Any], node: Any, tokens: list[str], depth: int = 0) -> bool:
    if not tokens:
        return True
    if not isinstance(node, dict) or depth > 32:
        return False
    reference = node.get("$ref")
    if isinstance(reference, str):
        return _has_pointer(schema, _resolve(schema, reference), tokens, depth + 1)
    for combinator in ("allOf", "anyOf", "oneOf"):
        if any(_has_pointer(schema, branch, tokens, depth + 1) for branch in node.get(combinator, [])):
            return True
    child = node.get("properties", {}).get(tokens[0])
    return child is not None and _has_pointer(schema, child, tokens[1:], depth + 1)


def _resolve(schema: dict[str, Any], reference: str) -> Any:
    if not reference.startswith("#/"):
        return None
    node: Any = schema
    for token in reference[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            return None
        node = node[token]
    return node


def _target_reference(operation: dict[str, Any], method: str, path: str) -> dict[str, str]:
    operation_id = operation.get("operationId")
    if isinstance(operation_id, str):
        return {"operationId": operation_id}
    escaped = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{escaped}/{method}"}


def _same_target(link: Any, reference: dict[str, str]) -> bool:
    return isinstance(link, dict) and all(link.get(key) == value for key, value in reference.items())


def _link_name(operation: dict[str, Any], method: str, path: str) -> str:
    """`GetJob` from the summary FastAPI gives `get_job`; the method and path where there is none.
    Link names may hold letters, digits, `.`, `-` and `_` only."""
    summary = operation.get("summary")
    words = re.findall(r"[A-Za-z0-9]+", summary if isinstance(summary, str) and summary else f"{method} {path}")
    return "".join(word[:1].upper() + word[1:] for word in words)
