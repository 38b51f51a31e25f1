from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import SessionDep, SettingsDep
from api.services.health import check_readiness, readiness_status

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database or the broker is unreachable."}})
def readyz(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """The database and the broker are reachable (503 otherwise, with which one failed). The object store
    is reported too; without it the process still serves metadata, so it is `degraded`, not 503."""
    checks = check_readiness(session, settings)
    status = readiness_status(checks)
    return JSONResponse({"status": status, **checks}, status_code=503 if status == "unavailable" else 200)
