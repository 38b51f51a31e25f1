"""One place that turns exceptions into responses: domain errors carry their status; nothing a client
sends produces a 500 or a traceback."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

from core.errors import DomainError

log = logging.getLogger(__name__)


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity; a rejected input that held one is echoed back as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 shape, made safe to encode whatever the client sent.
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(DomainError)
    def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        retry = getattr(exc, "retry_after_seconds", None)
        headers = {"Retry-After": str(retry)} if retry else None
        return JSONResponse({"detail": exc.detail, "error": exc.code}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(OperationalError)
    def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            {
                "detail": "The database is unavailable right now; retry in a few seconds.",
                "error": "Unavailable",
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(Exception)
    def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            {
                "detail": "The server failed to handle this request; it has been logged.",
                "error": "InternalError",
            },
            status_code=500,
        )
