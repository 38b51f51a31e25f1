"""The FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from sqlalchemy.exc import OperationalError

from api.deps import query_names_once
from api.errors import install_error_handlers
from api.openapi_links import add_links
from api.routes import admin, datasets, events, health, jobs, metrics, plots, schedules, studies
from api.routes import docs as docs_pages
from api.schemas.common import ErrorRead
from api.schemas.job import OBJECTIVE
from api.services.keys import ensure_admin_key
from api.ui import routes as dashboard
from core.db import get_session_factory
from core.settings import get_settings

log = logging.getLogger("regtrain.api")

DESCRIPTION = f"""
Training as a service: submit a dataset and a training job (a linear model, an MLP or a small CNN, an
optimizer and regularization settings); a worker trains it and per-epoch metrics, per-layer weight
statistics and the trained weights come back over HTTP.

**Objective.** {OBJECTIVE} `elastic_net: {{alpha, l1_ratio}}` is scikit-learn's ElasticNet
parametrization (l1 = alpha * l1_ratio, l2 = alpha * (1 - l1_ratio)); `weight_decay` is decoupled
(AdamW style) and separate from l2.

Errors are `{{"detail": "<sentence>", "error": "<Code>"}}` (400 malformed JSON, 401 no or unknown key, 403 missing
scope, 404 unknown id, 409 conflict, 413 too large, 415 body not sent as JSON, 422 bad content, 429 too many
queued jobs, 503 unavailable); request validation errors keep FastAPI's 422 shape. Request bodies are strict:
a value of the wrong JSON type (`"0.01"` for a number, `10.0` for an integer, `0` for a boolean) is refused,
not converted; a JSON integer is a valid number.
"""


# The domain errors (core/errors.py) each operation's service can raise, read off the service functions
# it calls; a route's own `responses` text, where it has one, is kept. 401 and 403 come with every
# operation that needs a key, 400, 415 and 422 with every JSON body (below), 503 with every operation.
DOMAIN_ERRORS: dict[tuple[str, str], dict[int, str]] = {
    ("POST", "/v1/datasets"): {
        413: "The file is larger than this server accepts, or would exceed the tenant's storage quota.",
        422: "The upload cannot be read as a dataset (format, columns, target, name).",
        503: "The database or the object store is unreachable; retry after Retry-After seconds.",
    },
    ("POST", "/v1/datasets/synthetic"): {
        413: "The dataset would exceed the tenant's storage quota.",
        422: "The generator's parameters are invalid.",
        503: "The database or the object store is unreachable; retry after Retry-After seconds.",
    },
    ("GET", "/v1/datasets/{dataset_id}"): {404: "No dataset with this id."},
    ("DELETE", "/v1/datasets/{dataset_id}"): {
        404: "No dataset with this id.",
        409: "Jobs or schedules still use this dataset.",
    },
    ("POST", "/v1/jobs"): {
        409: "A request with the same Idempotency-Key is still being handled; retry in a moment.",
        422: "The spec is invalid, names an unknown dataset, or reuses an Idempotency-Key with another body.",
        429: "Too many jobs are queued (server or tenant limit); retry later (see Retry-After).",
    },
    ("GET", "/v1/jobs/{job_id}"): {404: "No job with this id."},
    ("POST", "/v1/jobs/{job_id}/cancel"): {404: "No job with this id.", 409: "The job has already finished."},
    ("GET", "/v1/jobs/{job_id}/metrics"): {404: "No job with this id."},
    ("GET", "/v1/jobs/{job_id}/events"): {
        404: "No job with this id.",
        422: "Last-Event-ID is not the id of an event (a non-negative integer).",
    },
    ("GET", "/v1/studies/{study_id}/events"): {
        404: "No study with this id.",
        422: "Last-Event-ID is not the id of an event (a non-negative integer).",
    },
    ("GET", "/v1/jobs/{job_id}/weights"): {404: "No job with this id, or no statistics for that epoch."},
    ("GET", "/v1/jobs/{job_id}/plots/{plot}.{format}"): {
        404: "No job with this id, or (weights) no statistics at that epoch.",
        409: "The job has recorded nothing to plot yet, or the plot does not apply (penalties without penalties).",
        422: "An unknown plot or format, or an epoch that is not a whole number (or given for another plot).",
    },
    ("GET", "/v1/studies/{study_id}/plots/{plot}.{format}"): {
        404: "No study with this id.",
        409: "No member has a score yet, or the plot does not apply (no penalty axis; no coefficient paths).",
        422: "An unknown plot or format.",
    },
    ("GET", "/v1/jobs/{job_id}/artifact"): {
        404: "No job with this id, or its artifact is missing from the store.",
        409: "The job has not succeeded.",
        503: "The database or the object store is unreachable; retry after Retry-After seconds.",
    },
    ("POST", "/v1/jobs/{job_id}/predict"): {
        404: "No job with this id.",
        409: "The job has not succeeded.",
        413: "More rows than one request may carry.",
        422: "The rows do not fit the job's features.",
        503: "The database or the object store is unreachable; retry after Retry-After seconds.",
    },
    ("POST", "/v1/jobs/{job_id}/retrain"): {
        404: "No job with this id.",
        422: "The job's spec no longer validates against the newest dataset version (e.g. it was deleted).",
        429: "Too many jobs are queued (server or tenant limit); retry later (see Retry-After).",
    },
    ("POST", "/v1/schedules"): {422: "The cron expression, time zone or job template is invalid."},
    ("GET", "/v1/schedules/{schedule_id}"): {404: "No schedule with this id."},
    ("PATCH", "/v1/schedules/{schedule_id}"): {
        404: "No schedule with this id.",
        422: "A field is null or invalid, or the new cron, time zone or job template is invalid.",
    },
    ("DELETE", "/v1/schedules/{schedule_id}"): {404: "No schedule with this id."},
    ("POST", "/v1/schedules/{schedule_id}/trigger"): {
        404: "No schedule with this id.",
        409: "The schedule was triggered at this same instant already; retry.",
        422: "The job template no longer validates (e.g. its dataset was deleted).",
        429: "Too many jobs are queued (server or tenant limit); retry later (see Retry-After).",
    },
    ("GET", "/v1/schedules/{schedule_id}/runs"): {404: "No schedule with this id."},
    ("POST", "/v1/studies"): {
        409: "A request with the same Idempotency-Key is still being handled; retry in a moment.",
        422: "The study, a member's spec, the folds or a limit does not fit (the sentence names which).",
        429: "Too many jobs are queued (server or tenant limit); retry later (see Retry-After).",
    },
    ("GET", "/v1/studies/{study_id}"): {404: "No study with this id."},
    ("POST", "/v1/studies/{study_id}/cancel"): {404: "No study with this id.", 409: "The study has already finished."},
    ("GET", "/v1/studies/{study_id}/members"): {404: "No study with this id."},
    ("GET", "/v1/studies/{study_id}/path"): {
        404: "No study with this id, or it has no linear path.",
        409: "The study has not finished yet.",
    },
    ("POST", "/v1/tenants"): {409: "A tenant with this name exists.", 422: "The tenant's limits are invalid."},
    ("POST", "/v1/keys"): {404: "No tenant with this id or name.", 422: "The scopes are invalid."},
    ("GET", "/v1/keys"): {404: "No tenant with this id or name."},
    ("DELETE", "/v1/keys/{key_id}"): {404: "No API key with this id."},
}

KEY_ERRORS = {
    401: "No API key, or a key that is unknown or revoked: send `Authorization: Bearer <key>`.",
    403: "The API key lacks the scope this operation needs.",
}
BODY_ERRORS = {
    400: "The body is not valid JSON (error MalformedJSON); the sentence says where it breaks.",
    415: "The body was not sent as JSON (error UnsupportedMediaType): use `Content-Type: application/json`.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}


def _document_errors(app: FastAPI) -> None:
    """Every status an operation can answer is in the schema clients validate against: its domain
    errors (DOMAIN_ERRORS), 401 and 403 where a key is needed, 400 (malformed JSON), 415 and 422 where
    there is a JSON body, and 503 while the database is unreachable. Every 422 is either FastAPI's
    validation error or a domain error sentence."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = plain()
        error = {"$ref": "#/components/schemas/ErrorRead"}
        validation = {"$ref": "#/components/schemas/HTTPValidationError"}
        schema["components"]["schemas"].setdefault("ErrorRead", ErrorRead.model_json_schema())
        schema["components"]["schemas"].setdefault("HTTPValidationError", _validation_error_schema())
        schema["components"]["schemas"].setdefault("ValidationError", _validation_item_schema())
        for route, methods in schema["paths"].items():
            for method, operation in methods.items():
                responses = operation.setdefault("responses", {})
                expected = dict(DOMAIN_ERRORS.get((method.upper(), route), {}))
                if operation.get("security"):
                    expected.update(KEY_ERRORS)
                if "application/json" in operation.get("requestBody", {}).get("content", {}):
                    expected.update(BODY_ERRORS)
                    expected.setdefault(422, "The body does not match the schema, or its content is invalid.")
                for code, description in expected.items():
                    documented = responses.setdefault(str(code), {"description": description})
                    documented.setdefault("content", {}).setdefault("application/json", {}).setdefault("schema", error)
                    if code in (429, 503):
                        documented.setdefault("headers", RETRY_AFTER)
                if "422" in responses:
                    content = responses["422"].setdefault("content", {}).setdefault("application/json", {})
                    content["schema"] = {"anyOf": [validation, error]}
                responses.setdefault(
                    "503",
                    {
                        "description": "The database is unreachable; retry shortly.",
                        "content": {"application/json": {"schema": error}},
                    },
                )
        add_links(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_error_schema() -> dict[str, Any]:
    """FastAPI adds these only to operations with parameters; a 422 documented here may need them."""
    return {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {
            "detail": {"title": "Detail", "type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}
        },
    }


def _validation_item_schema() -> dict[str, Any]:
    return {
        "title": "ValidationError",
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "title": "Location",
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
        },
    }


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Secure by default: the first start, with no key anywhere, makes the admin key."""
    settings = get_settings()
    try:
        with get_session_factory()() as session:
            made = ensure_admin_key(session, settings)
    except OperationalError as exc:
        # The API still starts (readyz says the database is down); the next start makes the key.
        log.error("could not check for an admin key, the database is unavailable: %s", exc)
    else:
        if made.written_to is not None:
            log.warning(
                "no API key existed: an admin key was written to %s (mode 0600); send it as "
                "'Authorization: Bearer <key>'",
                made.written_to.resolve(),
            )
        elif made.created:
            log.warning("no API key existed: REGTRAIN_ADMIN_KEY is now the admin key of tenant 'default'")
    yield


def create_app() -> FastAPI:
    docs = get_settings().docs == "public"
    app = FastAPI(
        title="regtrain",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI and ReDoc are served from the package (api/routes/docs.py), not FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        dependencies=[Depends(query_names_once)],
    )
    install_error_handlers(app)
    _document_errors(app)
    app.include_router(health.router)
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    app.include_router(schedules.router)
    app.include_router(studies.router)
    app.include_router(events.router)
    app.include_router(plots.router)
    app.include_router(admin.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    app.add_middleware(metrics.RequestMetricsMiddleware)
    if docs:
        app.include_router(docs_pages.router)
    return app


app = create_app()
