"""Swagger UI and ReDoc, served with their scripts, styles and favicon from this server (no CDN, no
Google Fonts), so /docs and /redoc work on a machine with no internet access.

The files come from the `fastapi-offline` package's static folder (swagger-ui-bundle.js, swagger-ui.css,
redoc.standalone.js, favicon.png); only the files are used, not its FastAPI subclass. create_app includes
this router only when REGTRAIN_DOCS is "public": with "off", these pages and files answer 404 like
/openapi.json.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
# FastAPI's default for Swagger UI's OAuth2 redirect page (FastAPI.swagger_ui_oauth2_redirect_url).
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
STATIC_URL = "/static/docs"
STATIC_DIRECTORY = str(files("fastapi_offline") / "static")

# persistAuthorization: the key given to "Authorize" survives a page reload (kept in the browser's
# localStorage, as Swagger UI does). displayRequestDuration shows how long each "Execute" took.
# validatorUrl None: no badge that sends the spec to validator.swagger.io when served from a public host.
SWAGGER_UI_PARAMETERS = {"persistAuthorization": True, "displayRequestDuration": True, "validatorUrl": None}

REDOC_JS = "redoc.standalone.js"
# ReDoc's sidebar footer ("API docs by Redocly") always shows an <img> from Redocly's CDN, with no option
# to turn it off; the copy served here shows an empty image instead, so /redoc asks nothing of the internet.
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_SVG = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _openapi_url(request: Request) -> str:
    return _root(request) + (request.app.openapi_url or "/openapi.json")


@router.get(DOCS_URL)
def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )


@router.get(OAUTH2_REDIRECT_URL)
def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@cache
def _redoc_script() -> bytes:
    return (
        (files("fastapi_offline") / "static" / REDOC_JS)
        .read_bytes()
        .replace(REDOC_CDN_LOGO.encode(), EMPTY_SVG.encode())
    )


@router.get(f"{STATIC_URL}/{REDOC_JS}")
def redoc_script() -> Response:
    return Response(_redoc_script(), media_type="text/javascript")


@router.get(REDOC_URL)
def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC_URL}/{REDOC_JS}",
        redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        with_google_fonts=False,
    )


# After the routes above, so that the patched ReDoc script wins over the file of the same name.
router.mount(STATIC_URL, StaticFiles(directory=STATIC_DIRECTORY), name="docs-static")
