"""The dashboard (/ui) in real Chromium against a real API and worker, with nothing allowed off loopback:
signing in, the jobs list, a job submitted from the New job form whose page follows its training live
without a reload, a study's page with its plots, and a dataset's profile.

Screenshots of each page are left in /tmp/ui-shots for a person to look at."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Browsing, save_screenshot
from tests.support.app import ADMIN_KEY
from tests.support.files import csv_bytes
from tests.support.servers import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

SHOTS = Path("/tmp/ui-shots")
# Training a dozen epochs of this, and a worker's start, take seconds; this leaves room on a busy machine.
TRAINING_TIMEOUT_MS = 120_000
# Elastic-net paths on the diabetes data: 12 penalties x 2 mixes, 3 folds each, solved in seconds.
PATH_STUDY = {
    "name": "diabetes elastic net",
    "job": {"dataset": "builtin:diabetes", "model": {"type": "linear"}, "training": {"validation_fraction": 0.0}},
    "search": {
        "regularization.elastic_net.alpha": {"path": {"n": 12, "eps": 0.001}},
        "regularization.elastic_net.l1_ratio": {"values": [0.5, 1.0]},
    },
    "cv": {"folds": 3},
    "select": {"metric": "mse", "rule": "1se"},
}
WATCHED_JOB = {
    "name": "watched <b>live</b>",
    "dataset": "builtin:wine",
    "model": {"type": "mlp", "hidden_layers": [16]},
    "regularization": {"l1": 0.001},
    "training": {"epochs": 8, "batch_size": 8, "early_stopping": None},
}


@pytest.fixture(scope="module")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def sign_in(browsing: Browsing, start: str = "/ui/jobs", shots: Path | None = None) -> None:
    page = browsing.page
    browsing.open(start)
    page.wait_for_url("**/ui/sign-in?next=*")
    if shots is not None:
        screenshot(page, shots / "sign-in.png")
    page.fill("#key", ADMIN_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{start}")


def screenshot(page: Any, path: Path) -> None:
    save_screenshot(page, path)


def wait_for_training(locator: Any, stack: Stack) -> None:
    """Waits for what the worker's progress shows on the page; on a timeout, says what the stack logged."""
    try:
        locator.wait_for(timeout=TRAINING_TIMEOUT_MS)
    except Exception as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc


@pytest.fixture
def stopped_worker(stack: Stack) -> Iterator[Stack]:
    """The stack with its worker stopped: a job submitted now waits in the queue, so its page is open
    before the first epoch. The test starts the worker again; so does this fixture if the test failed."""
    worker = stack.processes["worker"]
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=30)
    yield stack
    if stack.processes["worker"].poll() is not None:
        stack.start("worker", "worker")


def test_a_job_submitted_from_the_form_is_followed_live_without_a_reload(
    browsing: Browsing, stopped_worker: Stack, shots: Path
) -> None:
    stack, page = stopped_worker, browsing.page
    sign_in(browsing, shots=shots)
    assert page.locator("h1").inner_text() == "Jobs"

    page.click("header nav a.button")
    page.wait_for_url("**/ui/jobs/new")
    example = json.loads(page.locator("#spec").input_value())
    assert example["dataset"] == "builtin:iris"
    page.select_option("#dataset", "builtin:wine")
    assert json.loads(page.locator("#spec").input_value())["dataset"] == "builtin:wine"
    page.fill("#spec", json.dumps(WATCHED_JOB, indent=2))
    screenshot(page, shots / "new-job.png")
    page.click("#new-job button[type=submit]")
    page.wait_for_url("**/ui/jobs/*-*")
    job_id = page.url.rsplit("/", 1)[-1]

    # What the server rendered: the job waits for a worker, with no epoch yet. Its name is text.
    assert page.locator("h1").inner_text().startswith("watched <b>live</b>")
    assert page.locator("#status .badge").inner_text().lower() == "queued"
    assert page.locator("#progress-text").inner_text() == "Epoch 0 of 8"
    assert page.locator("#epochs tbody tr").count() == 0
    # A reload would lose this; it must still be there when training has finished.
    page.evaluate("window.loadedOnce = 'still the first load'")

    stack.start("worker", "worker")
    wait_for_training(page.locator("#epochs tbody tr").first, stack)
    page.locator("#plot-learning_curves img[src]").wait_for()
    screenshot(page, shots / "job-running.png")
    wait_for_training(page.locator("#status .badge-succeeded"), stack)
    # The final page is swapped in from the server after the terminal status: result, weights, plots.
    page.locator("#result").wait_for()

    assert page.evaluate("window.loadedOnce") == "still the first load"
    assert page.locator("#status .badge").inner_text().lower() == "succeeded"
    assert page.locator("#progress-text").inner_text() == "Epoch 8 of 8"
    assert page.locator("#epochs tbody tr").count() == 8
    assert page.locator("#epochs tbody tr").first.get_attribute("data-epoch") == "8"
    assert page.locator("form[action$='/cancel']").count() == 0
    assert page.locator(f"a[href='/v1/jobs/{job_id}/artifact']").count() == 1
    for plot in ("learning_curves", "penalties", "sparsity", "weights"):
        image = page.locator(f"#plot-{plot} img")
        image.scroll_into_view_if_needed()
        wait_until(lambda image=image: image.evaluate("i => i.complete && i.naturalWidth > 0"), 15, what=f"{plot}")
    page.locator("h1").scroll_into_view_if_needed()
    screenshot(page, shots / "job-finished.png")
    page.screenshot(path=str(shots / "job-finished-full.png"), full_page=True)

    # The same job, as the API tells it.
    job = stack.client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["name"] == WATCHED_JOB["name"]
    accuracy = page.locator("#result tbody tr:has(th:text('Validation')) td").nth(1).inner_text()
    assert accuracy == format(job["result"]["validation"]["accuracy"], ".4g")

    page.click("header nav a[href='/ui/jobs']")
    assert page.locator(f"a[href='/ui/jobs/{job_id}']").inner_text() == WATCHED_JOB["name"]
    screenshot(page, shots / "jobs.png")
    browsing.assert_stayed_local_and_clean()


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_study_page_follows_the_study_then_shows_its_choices_plots_and_members(
    browsing: Browsing, stopped_worker: Stack, shots: Path
) -> None:
    stack, page = stopped_worker, browsing.page
    study = created(stack.client.post("/v1/studies", json=PATH_STUDY))
    sign_in(browsing, f"/ui/studies/{study['id']}")
    fits = study["progress"]["total"]
    assert page.locator("#status .badge").inner_text().lower() == "queued"
    assert page.locator("#progress-text").inner_text() == f"0 of {fits} fits"
    assert page.locator(".plot").count() == 0
    page.evaluate("window.loadedOnce = 'still the first load'")

    stack.start("worker", "worker")
    wait_for_training(page.locator("#status .badge-succeeded"), stack)
    page.locator("#plot-cv_curve").wait_for()
    assert page.evaluate("window.loadedOnce") == "still the first load"
    assert page.locator("#progress-text").inner_text() == f"{fits} of {fits} fits"
    study = stack.client.get(f"/v1/studies/{study['id']}").json()
    assert study["status"] == "succeeded"
    selected = page.locator("article.card.chosen")
    assert selected.locator("small").inner_text() == f"member {study['selected']['position']}"
    for plot in ("cv_curve", "paths"):
        image = page.locator(f"#plot-{plot} img")
        image.scroll_into_view_if_needed()
        wait_until(lambda image=image: image.evaluate("i => i.complete && i.naturalWidth > 0"), 15, what=f"{plot}")
    # This study has no variants and a penalty axis: the variants plot does not apply, and is not shown.
    assert page.locator("#plot-variants").count() == 0

    # Best score first (lowest mean squared error), 25 to a page.
    means = [float(cell) for cell in page.locator("#members tbody tr td:nth-of-type(3)").all_inner_texts()]
    assert len(means) == 24 and means == sorted(means)
    first = page.locator("#members tbody tr").first.locator("th").inner_text().split()
    assert first[:2] == [str(study["best"]["position"]), "best"]
    page.locator("h1").scroll_into_view_if_needed()
    screenshot(page, shots / "study.png")

    page.click("text=Grid order")
    positions = [int(text.split()[0]) for text in page.locator("#members tbody tr th").all_inner_texts()]
    assert positions == list(range(24))
    browsing.assert_stayed_local_and_clean()


def test_a_dataset_page_shows_its_profile(browsing: Browsing, stack: Stack, shots: Path) -> None:
    rows = [
        [i, f"{5 + i % 7 * 0.3:.1f}", "" if i == 3 else f"{1 + i % 5 * 0.2:.1f}", ["a", "b"][i % 2]] for i in range(40)
    ]
    upload = stack.client.post(
        "/v1/datasets",
        data={"name": "profiled", "target": "kind"},
        files={"file": ("profiled.csv", csv_bytes(["row_id", "length", "width", "kind"], rows))},
    )
    assert upload.status_code == 201, upload.text
    dataset = upload.json()

    page = browsing.page
    sign_in(browsing, "/ui/datasets")
    page.click(f"a[href='/ui/datasets/{dataset['id']}']")
    page.wait_for_url(f"**/ui/datasets/{dataset['id']}")
    assert page.locator("h1").inner_text().startswith("profiled")
    columns = page.locator("#columns tbody tr")
    assert columns.locator("th").all_inner_texts() == ["row_id", "length", "width", "kind"]
    roles = {column["name"]: column["role"] for column in dataset["columns"]}
    assert [text.strip() for text in columns.locator("td:nth-of-type(1)").all_inner_texts()] == list(roles.values())
    width = columns.filter(has=page.locator("th", has_text="width"))
    assert width.locator("td:nth-of-type(3)").inner_text() == "1"
    assert page.locator(".note").count() == len(dataset["warnings"]) > 0
    screenshot(page, shots / "dataset.png")
    browsing.assert_stayed_local_and_clean()
