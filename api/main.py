"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import datasets, health, jobs, schedules
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


def create_app() -> FastAPI:
    app = FastAPI(title="regtrain", version="1.0.0", description=DESCRIPTION)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    app.include_router(schedules.router)
    return app


app = create_app()
