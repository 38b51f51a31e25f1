"""The dashboard's pages and forms. Pages read through api/ui/pages.py; their images, live event streams
and downloads are the API's own GET URLs, which accept the dashboard's key cookie (api/deps.py). None of
these routes is an API operation, so none is in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from api.deps import KEY_COOKIE, SessionDep, SettingsDep
from api.schemas.job import RegularizationSpec
from api.ui import auth, pages
from api.ui.auth import SIGN_IN_COOKIE, SignInRequired, Viewer
from core.errors import DomainError, Forbidden, Unauthorized
from models import JobStatus

HERE = Path(__file__).parent
STATIC_URL = "/ui/static"
# Pages name no other origin: scripts, styles, images and event streams all come from this server, and
# no page may be framed (clickjacking) or submit a form elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _number(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return format(value, f".{digits}g")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(value: int) -> str:
    amount = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:,.0f} {unit}" if unit == "bytes" else f"{amount:,.1f} {unit}"
        amount /= 1024
    return f"{value} bytes"


def _regularization(spec: RegularizationSpec) -> str:
    """A spec's penalties in a few words, as a person would name them."""
    if spec.elastic_net is not None:
        parts = [f"elastic net alpha {spec.elastic_net.alpha:g}, l1_ratio {spec.elastic_net.l1_ratio:g}"]
    else:
        parts = [f"{name} {value:g}" for name, value in (("L1", spec.l1), ("L2", spec.l2)) if value]
    if spec.weight_decay:
        parts.append(f"weight decay {spec.weight_decay:g}")
    if spec.max_norm is not None:
        parts.append(f"max-norm {spec.max_norm:g}")
    return ", ".join(parts) or "none"


def _page_query(params: dict[str, Any], page: int) -> str:
    return urlencode({**{name: value for name, value in params.items() if value}, "page": page})


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    number=_number, percent=_percent, when=_when, size=_size, regularization=_regularization, page_query=_page_query
)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request, template: str, context: dict[str, Any], viewer: Viewer | None = None, status_code: int = 200
) -> HTMLResponse:
    root = _root(request)
    # The navigation marks the section the page belongs to: /ui/jobs/... is under "jobs".
    section = request.url.path.removeprefix(root).removeprefix("/ui/").split("/")[0]
    html = templates.get_template(template).render(
        root=root,
        static=root + STATIC_URL,
        viewer=viewer or getattr(request.state, "viewer", None),
        section=section,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(_root(request) + path, status_code=303)


def _sign_in_redirect(request: Request, needed: SignInRequired) -> RedirectResponse:
    query = {"next": needed.next_url, **({"expired": "1"} if needed.expired else {})}
    response = _redirect(request, f"/ui/sign-in?{urlencode(query)}")
    if needed.expired:
        response.delete_cookie(KEY_COOKIE, path="/")
    return response


def _invalid_request_sentences(error: RequestValidationError) -> list[str]:
    return [
        f"{'.'.join(str(part) for part in item['loc'][1:]) or 'the address'}: {item['msg']}." for item in error.errors()
    ]


class PageRoute(APIRoute):
    """Dashboard routes answer in HTML: a page that needs a key sends the browser to sign in; a domain
    error (an unknown id, a finished job, a missing form token) and an invalid address are pages with
    the sentence, not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_page(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired as needed:
                return _sign_in_redirect(request, needed)
            except DomainError as error:
                context = {"title": _ERROR_TITLES.get(error.status_code, "Not possible"), "sentences": [error.detail]}
                return render(request, "error.html", context, status_code=error.status_code)
            except RequestValidationError as error:
                context = {"title": "This address is not valid", "sentences": _invalid_request_sentences(error)}
                return render(request, "error.html", context, status_code=422)

        return handle_page


_ERROR_TITLES = {403: "Not allowed", 404: "Not found", 409: "Not possible now", 422: "Not valid", 429: "Too busy"}


def _here(request: Request) -> str:
    path = request.url.path.removeprefix(_root(request))
    return path + (f"?{request.url.query}" if request.url.query else "")


def current_viewer(request: Request, session: SessionDep) -> Viewer:
    """The signed-in key, checked against the database on every page (a revoked key stops at once)."""
    key = request.cookies.get(KEY_COOKIE)
    if not key:
        raise SignInRequired(_here(request))
    try:
        viewer = auth.viewer_of(session, key)
    except (Unauthorized, Forbidden):
        raise SignInRequired(_here(request), expired=True) from None
    # An error page about this request (an unknown id, say) still shows whose dashboard it is.
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def form_viewer(viewer: ViewerDep, csrf_token: Annotated[str | None, Form()] = None) -> Viewer:
    """A signed-in form: the key cookie and the form's token, which another site cannot produce."""
    auth.check_form_token(viewer, csrf_token)
    return viewer


FormViewerDep = Annotated[Viewer, Depends(form_viewer)]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)


@router.get("")
def home(request: Request) -> RedirectResponse:
    """The dashboard starts at the jobs list."""
    return _redirect(request, auth.HOME)


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None, expired: bool = False) -> HTMLResponse:
    """The sign-in form; it sets the double-submit token it will be checked against."""
    token = auth.new_sign_in_token()
    context = {"next": auth.safe_next(next), "token": token, "expired": expired, "error": None}
    response = render(request, "sign_in.html", context)
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path=_root(request) + "/ui/sign-in",
        secure=_https(request),
    )
    return response


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


@router.post("/sign-in")
def sign_in(
    request: Request,
    session: SessionDep,
    key: Annotated[str, Form()] = "",
    next: Annotated[str | None, Form()] = None,
    sign_in_token: Annotated[str | None, Form()] = None,
) -> Response:
    """Checks the key as the API does, then keeps it in the HttpOnly key cookie."""
    auth.check_sign_in_token(request.cookies.get(SIGN_IN_COOKIE), sign_in_token)
    target = auth.safe_next(next)
    try:
        auth.sign_in(session, key)
    except DomainError as error:
        context = {"next": target, "token": sign_in_token, "expired": False, "error": error.detail}
        return render(request, "sign_in.html", context, status_code=error.status_code)
    response = _redirect(request, target)
    response.set_cookie(KEY_COOKIE, key.strip(), httponly=True, samesite="strict", path="/", secure=_https(request))
    response.delete_cookie(SIGN_IN_COOKIE, path=_root(request) + "/ui/sign-in")
    return response


@router.post("/sign-out")
def sign_out(request: Request, _viewer: FormViewerDep) -> RedirectResponse:
    """Forgets the key cookie."""
    response = _redirect(request, "/ui/sign-in")
    response.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict", secure=_https(request))
    return response


@router.get("/jobs")
def job_list(
    request: Request, viewer: ViewerDep, session: SessionDep, status: JobStatus | None = None, page: Page = 1
) -> HTMLResponse:
    """Jobs, newest first, filtered by status."""
    return render(request, "jobs.html", pages.job_list(session, viewer, status, page), viewer)


@router.get("/jobs/new")
def new_job(request: Request, viewer: ViewerDep, session: SessionDep, dataset: str = "") -> HTMLResponse:
    """The New job form, prefilled with a working example (on `dataset` when given)."""
    return render(request, "job_new.html", pages.new_job_form(session, viewer, dataset=dataset), viewer)


@router.post("/jobs/new")
def submit_job(
    request: Request,
    viewer: FormViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    spec: Annotated[str, Form()] = "",
    dataset: Annotated[str, Form()] = "",
) -> Response:
    """Submits through POST /v1/jobs's service, then shows the new job; or the form with what to change."""
    outcome = pages.submit_job(session, settings, viewer, spec, dataset)
    if isinstance(outcome, pages.Rejected):
        return render(request, "job_new.html", outcome.form, viewer, status_code=outcome.status_code)
    return _redirect(request, f"/ui/jobs/{quote(outcome)}")


@router.get("/jobs/{job_id}")
def job_detail(request: Request, viewer: ViewerDep, session: SessionDep, job_id: str) -> HTMLResponse:
    """A job: status, live progress and epochs, plots, weight statistics, result and artifact."""
    return render(request, "job.html", pages.job_detail(session, viewer, job_id), viewer)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, viewer: FormViewerDep, session: SessionDep, job_id: str) -> RedirectResponse:
    """Cancels through POST /v1/jobs/{id}/cancel's service, then shows the job."""
    pages.cancel_job(session, viewer, job_id)
    return _redirect(request, f"/ui/jobs/{quote(job_id)}")


@router.get("/studies")
def study_list(
    request: Request, viewer: ViewerDep, session: SessionDep, status: JobStatus | None = None, page: Page = 1
) -> HTMLResponse:
    """Studies, newest first, filtered by status."""
    return render(request, "studies.html", pages.study_list(session, viewer, status, page), viewer)


@router.get("/studies/{study_id}")
def study_detail(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    study_id: str,
    sort: Literal["position", "score"] = "score",
    page: Page = 1,
) -> HTMLResponse:
    """A study: live progress, the chosen members, its plots and its members sorted by score."""
    return render(request, "study.html", pages.study_detail(session, viewer, study_id, sort, page), viewer)


@router.get("/datasets")
def dataset_list(request: Request, viewer: ViewerDep, session: SessionDep, page: Page = 1) -> HTMLResponse:
    """The tenant's datasets, newest first, and the built-ins."""
    return render(request, "datasets.html", pages.dataset_list(session, viewer, page), viewer)


@router.get("/datasets/{dataset_id}")
def dataset_detail(request: Request, viewer: ViewerDep, session: SessionDep, dataset_id: str) -> HTMLResponse:
    """A dataset version and its profile: columns, types, roles, missing values, warnings."""
    return render(request, "dataset.html", pages.dataset_detail(session, viewer, dataset_id), viewer)


# The whole path: a router's prefix applies to its routes, not to what it mounts.
router.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="ui-static")
