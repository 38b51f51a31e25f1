"""Signing in to the dashboard: who the key cookie belongs to, the tokens that every dashboard form
carries against cross-site request forgery, and where a sign-in may lead.

The browser keeps the API key itself in an HttpOnly, SameSite=Strict cookie (api/deps.py KEY_COOKIE), and
every page load checks it against the database, so a revoked key stops working at the next click. A
signed-in form's token is an HMAC of a constant keyed by that API key: a page of this site can show it,
another site can neither read the key nor compute the token, and nothing needs storing on the server. The
sign-in form, which comes before any key, uses a double-submit token: a random value both in an HttpOnly
cookie and in the form."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from api.services.keys import Caller, authenticate, require_scope
from core.errors import Forbidden, InvalidInput
from models import ApiKey, Tenant

SIGN_IN_COOKIE = "regtrain_sign_in"
HOME = "/ui/jobs"
FORM_PURPOSE = b"regtrain dashboard form"
MISSING_TOKEN = (
    "This form arrived without its security token, or with one from another sign-in; reload the page and "
    "submit it again."
)


class SignInRequired(Exception):
    """A dashboard page was asked for without a usable key: the browser is sent to the sign-in page, then
    back to `next`. `expired` says the cookie held a key that no longer works (revoked)."""

    def __init__(self, next_url: str, expired: bool = False) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.expired = expired


@dataclass(frozen=True)
class Viewer:
    """The signed-in key: its tenant (every query is scoped to it), how a person tells it apart, and the
    token its forms carry."""

    caller: Caller
    key_prefix: str
    key_name: str
    tenant_name: str
    form_token: str


def form_token(key: str) -> str:
    return hmac.new(key.encode(), FORM_PURPOSE, hashlib.sha256).hexdigest()


def check_form_token(viewer: Viewer, token: str | None) -> None:
    if not token or not hmac.compare_digest(token, viewer.form_token):
        raise Forbidden(MISSING_TOKEN)


def new_sign_in_token() -> str:
    return secrets.token_urlsafe(32)


def check_sign_in_token(cookie: str | None, field: str | None) -> None:
    if not cookie or not field or not hmac.compare_digest(cookie, field):
        raise Forbidden(
            "The sign-in form arrived without its security token (or the browser refused the cookie that "
            "carries it); reload the sign-in page and try again."
        )


def viewer_of(session: Session, key: str) -> Viewer:
    """The key's viewer; Unauthorized for an unknown or revoked key, Forbidden without the read scope."""
    caller = require_scope(authenticate(session, key), "read")
    row = session.get(ApiKey, caller.key_id)
    tenant = session.get(Tenant, caller.tenant_id)
    assert row is not None and tenant is not None, "an authenticated key has its row and its tenant"
    return Viewer(caller, row.prefix, row.name, tenant.name, form_token(key))


def sign_in(session: Session, key: str) -> Viewer:
    key = key.strip()
    if not key:
        raise InvalidInput("Paste an API key: it starts with rt_ (the first admin key is in $REGTRAIN_HOME/admin.key).")
    return viewer_of(session, key)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path on this site, never another site (an open redirect
    would let a link to this sign-in page send people elsewhere)."""
    if not target:
        return HOME
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or "\\" in target
        or not target.startswith("/ui")
        or target.startswith("//")
        or any(ord(character) < 32 for character in target)
    ):
        return HOME
    if parts.path not in ("/ui", "/ui/") and not parts.path.startswith("/ui/"):
        return HOME
    return target
