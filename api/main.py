"""The FastAPI application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import datasets, health, jobs, schedules
from api.schemas.common import ErrorRead
from api.schemas.job import OBJECTIVE

DESCRIPTION = f"""
Training as a service: submit a dataset and a training job (a linear model, an MLP or a small CNN, an
optimizer and regularization settings); a worker trains it and per-epoch metrics, per-layer weight
statistics and the trained weights come back over HTTP.

**Objective.** {OBJECTIVE} `elastic_net: {{alpha, l1_ratio}}` is scikit-learn's ElasticNet
parametrization (l1 = alpha * l1_ratio, l2 = alpha * (1 - l1_ratio)); `weight_decay` is decoupled
(AdamW style) and separate from l2.

Errors are `{{"detail": "<sentence>", "error": "<Code>"}}` (404 unknown id, 409 conflict, 413 too large,
422 bad content); request validation errors keep FastAPI's 422 shape.
"""


def _document_errors(app: FastAPI) -> None:
    """Every 422 is either FastAPI's validation error or a domain error sentence; every route may
    answer 503 while the database is unreachable. Say so in the schema clients validate against."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = plain()
        error = {"$ref": "#/components/schemas/ErrorRead"}
        validation = {"$ref": "#/components/schemas/HTTPValidationError"}
        schema["components"]["schemas"].setdefault("ErrorRead", ErrorRead.model_json_schema())
        for path in schema["paths"].values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
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
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app() -> FastAPI:
    app = FastAPI(title="regtrain", version="1.0.0", description=DESCRIPTION)
    install_error_handlers(app)
    _document_errors(app)
    app.include_router(health.router)
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    app.include_router(schedules.router)
    return app


app = create_app()
