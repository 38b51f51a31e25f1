"""Typed dependencies for routes: the session, the settings, and who is asking."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from api.services.keys import Caller, authenticate, require_scope
from core.db import get_session_factory
from core.errors import Unauthorized
from core.settings import Settings, get_settings


def query_names_once(request: Request) -> None:
    """Every query parameter of this API takes one value: a name given more than once is refused (422), not
    silently read as its last value. The app runs this before every route."""
    counts = Counter(name for name, _ in request.query_params.multi_items())
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", name),
                    "msg": f"`{name}` is given {counts[name]} times; give it once.",
                    "input": request.query_params.getlist(name),
                }
                for name in repeated
            ]
        )


def get_session() -> Iterator[Session]:
    session = get_session_factory()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
# For responses that outlive their request (event streams): short sessions of their own, one per read,
# so that no pooled connection is held for as long as a stream stays open.
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Makes the request safe to retry: a repeat with the same key and body returns the first "
        "response instead of creating again; the same key with another body is refused (422). Kept 24 hours, "
        "per tenant.",
    ),
]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# The bearer scheme in OpenAPI gives Swagger UI its Authorize button. auto_error=False: a missing or
# malformed header is answered by this module's own 401 sentence, not the library's.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key, sent as `Authorization: Bearer rt_...`. The first admin key is written to "
    "$REGTRAIN_HOME/admin.key on first start (or is REGTRAIN_ADMIN_KEY).",
)

# The dashboard (/ui) keeps the key it signed in with in this HttpOnly, SameSite=Strict cookie, so that its
# pages can use the API's GET URLs directly (plots as images, event streams, artifact downloads).
KEY_COOKIE = "regtrain_key"
# Only reads may be authorized by the cookie: a browser attaches cookies to requests other sites make it
# send, so a write authorized by one could be forged; writes always need the Authorization header.
COOKIE_METHODS = frozenset({"GET", "HEAD"})


def get_caller(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    if credentials is None:
        raise Unauthorized(
            "This request needs an API key: send the header `Authorization: Bearer <key>` (the first admin key is "
            "in $REGTRAIN_HOME/admin.key)."
        )
    return authenticate(session, credentials.credentials)


def get_reading_caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The Authorization header when sent; else, on GET and HEAD only, the dashboard's key cookie."""
    cookie = request.cookies.get(KEY_COOKIE)
    if "authorization" not in request.headers and request.method in COOKIE_METHODS and cookie:
        return authenticate(session, cookie)
    return get_caller(session, credentials)


def _scoped(scope: str, authenticated: Callable[..., Caller] = get_caller) -> Callable[[Caller], Caller]:
    # A default, not Annotated[..., Depends(authenticated)]: with postponed annotations FastAPI resolves an
    # annotation in the module's globals, where the closure's `authenticated` does not exist.
    def dependency(caller: Caller = Depends(authenticated)) -> Caller:  # noqa: B008
        return require_scope(caller, scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


Reader = Annotated[Caller, Depends(_scoped("read", get_reading_caller))]
Writer = Annotated[Caller, Depends(_scoped("write"))]
Admin = Annotated[Caller, Depends(_scoped("admin"))]
