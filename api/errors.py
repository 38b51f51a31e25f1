"""One place that turns exceptions into responses: domain errors carry their status; nothing a client
sends produces a 500 or a traceback."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

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


# FastAPI's own sentence when a body cannot be decoded at all (e.g. bytes that are not UTF-8).
_UNPARSABLE_BODY = "There was an error parsing the body"


def _position(document: str, offset: int) -> str:
    line = document.count("\n", 0, offset) + 1
    column = offset - (document.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column} (character {offset})"


def malformed_json(error: dict[str, Any], document: Any) -> JSONResponse:
    """400 for a body that is not JSON at all, or is cut short: there is nothing to validate yet."""
    offset = error["loc"][-1] if isinstance(error["loc"][-1], int) else 0
    reason = (error.get("ctx") or {}).get("error") or "it cannot be decoded"
    where = _position(document, offset) if isinstance(document, str) else f"character {offset}"
    return JSONResponse(
        {
            "detail": f"The request body is not valid JSON: {reason} at {where}.",
            "error": "MalformedJSON",
        },
        status_code=400,
    )


def _not_json(errors: list[Any]) -> bool:
    """A JSON endpoint was sent something else: FastAPI leaves the body as raw bytes when the
    content type is missing or not JSON, and the bytes then fail the model."""
    whole_body = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
    return bool(whole_body) and all(isinstance(e.get("input"), bytes | bytearray) for e in whole_body)


def unsupported_media_type(request: Request) -> JSONResponse:
    given = request.headers.get("content-type")
    sent = f"Content-Type {given!r}" if given else "no Content-Type"
    return JSONResponse(
        {
            "detail": f"This endpoint takes a JSON body, and the request was sent with {sent}; send the body as "
            "JSON with the header `Content-Type: application/json`.",
            "error": "UnsupportedMediaType",
        },
        status_code=415,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        malformed = [e for e in errors if e.get("type") == "json_invalid"]
        if malformed:
            return malformed_json(malformed[0], exc.body)
        if _not_json(errors):
            return unsupported_media_type(request)
        # FastAPI's own 422 shape, made safe to encode whatever the client sent.
        return JSONResponse({"detail": _json_safe(jsonable_encoder(errors))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
            return JSONResponse(
                {
                    "detail": "The request body is not valid JSON: it is not UTF-8 text.",
                    "error": "MalformedJSON",
                },
                status_code=400,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(DomainError)
    def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        retry = getattr(exc, "retry_after_seconds", None)
        headers = {"Retry-After": str(retry)} if retry else {}
        if exc.status_code == 401:
            # A 401 names the scheme it wants (RFC 9110, 11.6.1).
            headers["WWW-Authenticate"] = 'Bearer realm="regtrain"'
        return JSONResponse(
            {"detail": exc.detail, "error": exc.code}, status_code=exc.status_code, headers=headers or None
        )

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
