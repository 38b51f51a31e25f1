"""Swagger UI and ReDoc, served from the package, in real Chromium with nothing allowed off loopback:
they render every operation, Authorize takes the key, and "Try it out" makes a job that a worker trains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.browser.conftest import Browsing, save_screenshot
from tests.support.app import ADMIN_KEY, configure, release
from tests.support.stack import Stack

DOCS_PATHS = (
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/static/docs/swagger-ui-bundle.js",
    "/static/docs/swagger-ui.css",
    "/static/docs/redoc.standalone.js",
    "/static/docs/favicon.png",
)
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Where a person can look at what /docs showed after "Execute" (the test's own copy is under tmp_path).
SHARED_SCREENSHOT = Path("/tmp/regtrain-docs.png")


def operations(stack: Stack) -> list[tuple[str, str]]:
    schema = stack.client.get("/openapi.json").json()
    return [(method, path) for path, item in schema["paths"].items() for method in item if method in HTTP_METHODS]


@pytest.mark.integration
def test_swagger_ui_renders_every_operation_and_authorizes(browsing: Browsing, stack: Stack) -> None:
    page = browsing.page
    browsing.open("/docs")
    create_job = page.locator('.opblock-post:has(.opblock-summary-path[data-path="/v1/jobs"])')
    create_job.wait_for(state="visible")
    assert page.title() == "regtrain - Swagger UI"
    assert page.locator(".opblock").count() == len(operations(stack))

    page.locator(".auth-wrapper button.authorize").click()
    page.locator(".modal-ux input").fill(ADMIN_KEY)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    # Authorized: the padlock closes on the top button and on every operation that needs the key.
    assert page.locator(".auth-wrapper button.authorize.locked").is_visible()

    browsing.assert_stayed_local_and_clean()


@pytest.mark.integration
def test_try_it_out_creates_a_job_that_the_worker_trains(browsing: Browsing, stack: Stack, tmp_path: Path) -> None:
    page = browsing.page
    browsing.open("/docs")
    page.locator(".auth-wrapper button.authorize").click()
    page.locator(".modal-ux input").fill(ADMIN_KEY)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()

    create_job = page.locator('.opblock-post:has(.opblock-summary-path[data-path="/v1/jobs"])')
    create_job.locator(".opblock-summary").click()
    create_job.locator("button.try-out__btn").click()
    example = json.loads(create_job.locator("textarea.body-param__text").input_value())
    assert example["dataset"] == "builtin:wine"
    create_job.locator("button.execute").click()

    status = create_job.locator(".live-responses-table .response .response-col_status")
    status.wait_for(state="visible")
    assert status.inner_text().strip() == "201"
    body = create_job.locator(".live-responses-table .response-col_description pre").first
    job: dict[str, Any] = json.loads(body.inner_text())
    assert job["name"] == example["name"]
    # What a person sees after "Execute": the server's 201 and the job it made, on screen.
    create_job.locator(".live-responses-table").scroll_into_view_if_needed()
    save_screenshot(page, tmp_path / "docs-201.png", copy_to=SHARED_SCREENSHOT)

    assert stack.client.get(f"/v1/jobs/{job['id']}").status_code == 200
    finished = stack.wait_for(job["id"], timeout=60)
    assert finished["status"] == "succeeded", finished
    assert finished["result"]["epochs_run"] == example["training"]["epochs"]
    browsing.assert_stayed_local_and_clean()


@pytest.mark.integration
def test_redoc_renders_the_title_and_every_operation(browsing: Browsing, stack: Stack) -> None:
    page = browsing.page
    browsing.open("/redoc")
    title = page.locator("h1").first
    title.wait_for(state="visible")
    assert title.inner_text().startswith("regtrain")
    rendered = page.locator('[data-section-id^="operation/"]')
    rendered.first.wait_for(state="attached")
    assert rendered.count() == len(operations(stack))
    browsing.assert_stayed_local_and_clean()


@pytest.mark.parametrize("docs", ["public", "off"])
def test_the_docs_setting_serves_or_hides_pages_and_files(
    docs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No browser needed: with REGTRAIN_DOCS=off every docs page and file is a 404; with public each is
    served from this server, and the pages name no other host."""
    configure(tmp_path, monkeypatch, docs=docs)
    try:
        with TestClient(create_app()) as client:
            answers = {path: client.get(path) for path in DOCS_PATHS}
    finally:
        release()
    if docs == "off":
        assert {path: response.status_code for path, response in answers.items()} == dict.fromkeys(DOCS_PATHS, 404)
        return
    assert all(response.status_code == 200 for response in answers.values()), answers
    for page in ("/docs", "/redoc"):
        assert "http://" not in answers[page].text and "https://" not in answers[page].text
    assert b"cdn.redoc.ly" not in answers["/static/docs/redoc.standalone.js"].content
