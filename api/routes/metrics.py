"""GET /metrics for Prometheus, and the middleware that counts this process's HTTP requests.

Who may scrape is REGTRAIN_METRICS: "public" (no key), "key" (the default: `Authorization: Bearer <key>`,
any valid key with the `read` scope), "off" (404). Request counters are per API process (see
api/services/metrics.py).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import SessionDep, SettingsDep, bearer
from api.services.metrics import CONTENT_TYPE, UNMATCHED_ROUTE, authorize_scrape, observe_request, render_metrics

router = APIRouter(tags=["metrics"], include_in_schema=False)

CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@router.get("/metrics")
def metrics(session: SessionDep, settings: SettingsDep, credentials: CredentialsDep) -> Response:
    """Prometheus text format: jobs by status, queue depth, recent job figures, HTTP requests."""
    authorize_scrape(session, settings, credentials.credentials if credentials else None)
    return Response(render_metrics(session), media_type=CONTENT_TYPE)


class RequestMetricsMiddleware:
    """Counts each HTTP request by method, route template (the matched route's path, e.g.
    /v1/jobs/{job_id}, never the raw path) and status, and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router records the route it matched in the (shared) scope.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            observe_request(scope["method"], route, status, time.perf_counter() - started)
