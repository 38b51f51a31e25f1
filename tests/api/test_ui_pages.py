"""The dashboard (/ui) through HTTP, on SQLite and PostgreSQL: signing in and out, where a sign-in may
lead, the key cookie (read-only on the API), a revoked key, the forms' tokens, every page for its own
tenant and another tenant's ids answered exactly as unknown ones, the New job form's sentences, and
escaping. No worker runs: jobs and studies stay queued. (tests/browser/test_ui.py drives it in Chromium.)"""

from __future__ import annotations

import html
import json
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.ui.auth import safe_next
from tests.support.app import ADMIN_KEY
from tests.support.files import csv_bytes, iris_like

JOB = {"dataset": "builtin:iris", "model": {"type": "linear"}, "training": {"epochs": 3}}
# As the pages print them.
DASH, TIMES = "\N{EN DASH}", "\N{MULTIPLICATION SIGN}"


def shown(response: Any) -> str:
    """The page's text as a person reads it: no tags, entities decoded, spaces collapsed."""
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", " ", response.text, flags=re.S)
    return " ".join(html.unescape(text).split())


def field(response: Any, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', response.text)
    assert found is not None, f"no {name} field on {response.url}"
    return html.unescape(found.group(1))


def browser(api_client: TestClient, base_url: str = "http://testserver") -> TestClient:
    """A client like a browser: cookies only, no Authorization header."""
    return TestClient(api_client.app, base_url=base_url)


def sign_in(client: TestClient, key: str = ADMIN_KEY, next_url: str | None = None) -> Any:
    form = client.get("/ui/sign-in")
    assert form.status_code == 200, form.text
    data = {"key": key, "sign_in_token": field(form, "sign_in_token")}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/ui/sign-in", data=data, follow_redirects=False)


def signed_in(api_client: TestClient, key: str = ADMIN_KEY) -> TestClient:
    client = browser(api_client)
    response = sign_in(client, key)
    assert response.status_code == 303, shown(response)
    return client


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def new_key(api_client: TestClient, tenant: str, scopes: list[str]) -> dict[str, Any]:
    return created(api_client.post("/v1/keys", json={"tenant": tenant, "name": f"{tenant}-ui", "scopes": scopes}))


def upload(api_client: TestClient, name: str) -> dict[str, Any]:
    content = csv_bytes(*iris_like(30))
    return created(
        api_client.post("/v1/datasets", data={"name": name, "target": "species"}, files={"file": ("d.csv", content)})
    )


def study_body(dataset: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "job": {**JOB, "dataset": dataset},
        "search": {"regularization.l2": {"values": [0.0, 0.01, 0.1]}},
        "cv": {"folds": 2},
    }


def test_pages_send_a_signed_out_browser_to_sign_in_and_back(api_client: TestClient) -> None:
    client = browser(api_client)
    response = client.get("/ui/jobs?status=queued&page=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/sign-in?next=%2Fui%2Fjobs%3Fstatus%3Dqueued%26page%3D1"
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/jobs"

    page = client.get(response.headers["location"])
    assert field(page, "next") == "/ui/jobs?status=queued&page=1"
    back = sign_in(client, next_url=field(page, "next"))
    assert (back.status_code, back.headers["location"]) == (303, "/ui/jobs?status=queued&page=1")
    listing = client.get(back.headers["location"])
    assert listing.status_code == 200
    assert "No queued jobs." in shown(listing)


@pytest.mark.parametrize(
    "target",
    [
        "https://elsewhere.example/ui/jobs",
        "//elsewhere.example/ui/jobs",
        "/\\elsewhere.example",
        "javascript:alert(1)",
        "/v1/keys",
        "/uixyz",
        "/ui/jobs\r\nSet-Cookie: x=1",
        "",
    ],
)
def test_a_sign_in_leads_only_to_a_dashboard_page_of_this_site(target: str) -> None:
    assert safe_next(target) == "/ui/jobs"


def test_a_sign_in_keeps_dashboard_paths() -> None:
    for target in ("/ui/jobs?status=failed&page=2", "/ui/studies/abc", "/ui"):
        assert safe_next(target) == target


def test_a_bad_key_is_refused_with_a_sentence_and_no_cookie(api_client: TestClient) -> None:
    client = browser(api_client)
    response = sign_in(client, "rt_not-a-key-anyone-made")
    assert response.status_code == 401
    assert "This API key is not valid: it is unknown or has been revoked." in shown(response)
    assert "regtrain_key" not in response.headers.get("set-cookie", "")
    empty = sign_in(client, "   ")
    assert empty.status_code == 422
    assert "Paste an API key: it starts with rt_" in shown(empty)
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_a_key_without_the_read_scope_cannot_sign_in(api_client: TestClient) -> None:
    writer = new_key(api_client, "default", ["write"])
    response = sign_in(browser(api_client), writer["key"])
    assert response.status_code == 403
    assert "do not include 'read'" in shown(response)


@pytest.mark.parametrize(("base_url", "secure"), [("http://testserver", False), ("https://testserver", True)])
def test_the_key_cookie_is_http_only_strict_and_secure_over_https(
    api_client: TestClient, base_url: str, secure: bool
) -> None:
    client = browser(api_client, base_url)
    response = sign_in(client)
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("regtrain_key="))
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert cookie.startswith(f"regtrain_key={ADMIN_KEY};")
    assert "httponly" in attributes and attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["path"].strip() == "Path=/"
    assert ("secure" in attributes) is secure

    # Signing out (a form, with its token) forgets it.
    form_token = field(client.get("/ui/jobs"), "csrf_token")
    out = client.post("/ui/sign-out", data={"csrf_token": form_token}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/ui/sign-in")
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 303
    assert client.get("/v1/jobs").status_code == 401


def test_the_key_cookie_reads_the_api_and_never_writes(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    dataset = upload(api_client, "cookie-test")
    client = signed_in(api_client)

    assert client.get("/v1/jobs").json()["total"] == 1
    assert client.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 200
    for method, path, body in (
        ("POST", "/v1/jobs", JOB),
        ("POST", f"/v1/jobs/{job['id']}/cancel", None),
        ("POST", f"/v1/jobs/{job['id']}/predict", {"rows": [[1.0, 2.0, 3.0, 4.0]]}),
        ("POST", f"/v1/jobs/{job['id']}/retrain", None),
        ("DELETE", f"/v1/datasets/{dataset['id']}", None),
    ):
        refused = client.request(method, path, json=body)
        assert refused.status_code == 401, (method, path, refused.text)
        assert refused.json()["error"] == "Unauthorized"
    # A header, when sent, is the one that counts: a wrong one is not rescued by the cookie.
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer rt_wrong"}).status_code == 401
    assert api_client.get("/v1/jobs").json()["total"] == 1
    assert api_client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"


def test_a_revoked_key_stops_working_at_the_next_page(api_client: TestClient) -> None:
    key = new_key(api_client, "default", ["read", "write"])
    client = signed_in(api_client, key["key"])
    assert client.get("/ui/jobs").status_code == 200
    assert api_client.delete(f"/v1/keys/{key['id']}").status_code == 200

    assert client.get("/v1/jobs").status_code == 401
    response = client.get("/ui/datasets", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/sign-in?next=%2Fui%2Fdatasets&expired=1"
    assert 'regtrain_key=""' in response.headers["set-cookie"]
    page = client.get(response.headers["location"])
    assert "The key this browser was signed in with no longer works (it was revoked)." in shown(page)


def test_pages_render_the_signed_in_tenants_things(api_client: TestClient) -> None:
    dataset = upload(api_client, "flowers")
    job = created(api_client.post("/v1/jobs", json={**JOB, "dataset": "flowers@latest", "name": "first flowers"}))
    study = created(api_client.post("/v1/studies", json=study_body("flowers@latest", "flowers l2")))
    client = signed_in(api_client)

    jobs_page = shown(client.get("/ui/jobs"))
    assert "first flowers" in jobs_page and "flowers@1" in jobs_page and "0/3" in jobs_page
    job_page = client.get(f"/ui/jobs/{job['id']}")
    assert job_page.status_code == 200
    text = shown(job_page)
    assert "first flowers queued" in text and "Epoch 0 of 3" in text and "No epoch has finished yet." in text
    assert f'data-events="/v1/jobs/{job["id"]}/events"' in job_page.text
    # No plot can be drawn before an epoch: no image asks for one.
    assert not re.search(r'<img[^>]* src="[^"]*/plots/', job_page.text)
    assert "Cancel job" in text and "Download weights" not in text
    assert json.loads(html.unescape(re.search(r"<pre>(.*?)</pre>", job_page.text, re.S).group(1))) == job["spec"]

    assert "flowers l2" in shown(client.get("/ui/studies"))
    study_page = client.get(f"/ui/studies/{study['id']}")
    assert study_page.status_code == 200
    text = shown(study_page)
    assert "0 of 6 fits" in text and f"3 {TIMES} 2 folds" in text
    assert [int(row) for row in re.findall(r'<th scope="row">(\d+)', study_page.text)] == [0, 1, 2]
    assert f'data-events="/v1/studies/{study["id"]}/events"' in study_page.text
    assert not re.search(r'<img[^>]* src="[^"]*/plots/', study_page.text)

    datasets_page = shown(client.get("/ui/datasets"))
    assert "flowers" in datasets_page and "builtin:iris" in datasets_page
    text = shown(client.get(f"/ui/datasets/{dataset['id']}"))
    assert "flowers version 1" in text
    for column in dataset["columns"]:
        assert f"{column['name']} {column['role']} {column['dtype']}" in text


def test_another_tenants_pages_answer_exactly_as_unknown_ids(api_client: TestClient) -> None:
    dataset = upload(api_client, "a-private-flowers")
    job = created(api_client.post("/v1/jobs", json={**JOB, "name": "a-private-job"}))
    study = created(api_client.post("/v1/studies", json=study_body("builtin:iris", "a-private-study")))
    created(api_client.post("/v1/tenants", json={"name": "tenant-b"}))
    client = signed_in(api_client, new_key(api_client, "tenant-b", ["read", "write"])["key"])

    for kind, id_ in (("jobs", job["id"]), ("studies", study["id"]), ("datasets", dataset["id"])):
        unknown = str(uuid.uuid4())
        baseline = client.get(f"/ui/{kind}/{unknown}")
        assert baseline.status_code == 404
        assert f"There is no {kind.removesuffix('s').replace('studie', 'study')} with id '{unknown}'." in shown(
            baseline
        )
        theirs = client.get(f"/ui/{kind}/{id_}")
        assert (theirs.status_code, theirs.text) == (404, baseline.text.replace(unknown, id_)), kind
    token = field(client.get("/ui/jobs"), "csrf_token")
    cancel = client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf_token": token})
    assert cancel.status_code == 404
    assert api_client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"

    for listing in ("/ui/jobs", "/ui/studies", "/ui/datasets"):
        text = shown(client.get(listing))
        assert not re.search("a-private", text), listing
    assert "tenant tenant-b" in text


def test_a_form_without_its_token_is_refused(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    client = signed_in(api_client)
    token = field(client.get("/ui/jobs"), "csrf_token")
    sentence = "This form arrived without its security token"
    for path, data in (
        ("/ui/jobs/new", {"spec": json.dumps(JOB)}),
        (f"/ui/jobs/{job['id']}/cancel", {}),
        ("/ui/sign-out", {}),
    ):
        for sent in ({}, {"csrf_token": "0" * 64}, {"csrf_token": token[:-1]}):
            refused = client.post(path, data={**data, **sent})
            assert refused.status_code == 403, (path, sent)
            assert sentence in shown(refused)
    assert api_client.get("/v1/jobs").json()["total"] == 1
    assert api_client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    # Another key's token is another token.
    other = signed_in(api_client, new_key(api_client, "default", ["read", "write"])["key"])
    assert field(other.get("/ui/jobs"), "csrf_token") != token

    # The sign-in form carries its own: a cookie and a field that must match.
    fresh = browser(api_client)
    fresh.get("/ui/sign-in")
    refused = fresh.post("/ui/sign-in", data={"key": ADMIN_KEY, "sign_in_token": "forged"})
    assert refused.status_code == 403
    assert "The sign-in form arrived without its security token" in shown(refused)
    assert fresh.get("/ui/jobs", follow_redirects=False).status_code == 303


FORM_MISTAKES = [
    ('{"dataset": "builtin:iris",\n  "training": {"epochs": 3,}}', "The spec is not valid JSON: "),
    ("[1, 2]", "The spec must be a JSON object"),
    ('{"dataset": "builtin:iris", "training": {"epochs": 0}}', "training.epochs: Input should be greater than"),
    ('{"dataset": "builtin:iris", "training": {"epochs": "3"}}', "training.epochs: Input should be a valid integer"),
    ('{"dataset": "builtin:nope"}', "There is no built-in dataset 'builtin:nope'"),
    ('{"dataset": "builtin:iris", "modle": {}}', "modle: Extra inputs are not permitted."),
    ('{"dataset": "builtin:iris", "training": {"epochs": 100000}}', "above this server's limit of 500"),
]


def test_the_new_job_form_shows_what_to_change(api_client: TestClient) -> None:
    client = signed_in(api_client)
    token = field(client.get("/ui/jobs/new"), "csrf_token")
    for spec, sentence in FORM_MISTAKES:
        response = client.post("/ui/jobs/new", data={"csrf_token": token, "spec": spec})
        assert response.status_code == 422, spec
        errors = re.search(r'id="form-errors">(.*?)</div>', response.text, re.S)
        assert errors is not None and sentence in html.unescape(errors.group(1)), shown(response)
        # The text comes back as it was typed, to be corrected.
        assert html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", response.text, re.S).group(1)) == spec
    assert api_client.get("/v1/jobs").json()["total"] == 0


def test_the_bad_json_sentence_says_where(api_client: TestClient) -> None:
    client = signed_in(api_client)
    token = field(client.get("/ui/jobs/new"), "csrf_token")
    response = client.post("/ui/jobs/new", data={"csrf_token": token, "spec": '{\n  "dataset": "builtin:iris",\n}'})
    assert "The spec is not valid JSON: Expecting property name enclosed in double quotes at line 3, column 1." in (
        shown(response)
    )


def test_the_new_job_form_submits_what_post_v1_jobs_would(api_client: TestClient) -> None:
    client = signed_in(api_client)
    form = client.get("/ui/jobs/new")
    example = json.loads(html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", form.text, re.S).group(1)))
    assert example["dataset"] == "builtin:iris" and example["regularization"]["l1"] > 0
    assert "builtin:wine" in re.findall(r'<option value="([^"]+)"', form.text)

    response = client.post(
        "/ui/jobs/new",
        data={"csrf_token": field(form, "csrf_token"), "spec": json.dumps(example), "dataset": "builtin:wine"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    job_id = response.headers["location"].removeprefix("/ui/jobs/")
    submitted = api_client.get(f"/v1/jobs/{job_id}").json()
    same = created(api_client.post("/v1/jobs", json={**example, "dataset": "builtin:wine"}))
    assert submitted["spec"] == same["spec"] and submitted["dataset"]["id"] == "builtin:wine"
    assert submitted["status"] == "queued"

    # The dataset page's "Train on it" link fills the example with that dataset.
    dataset = upload(api_client, "for-the-form")
    prefilled = client.get(f"/ui/jobs/new?dataset={dataset['id']}")
    assert (
        json.loads(html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", prefilled.text, re.S).group(1)))[
            "dataset"
        ]
        == dataset["id"]
    )
    assert "for-the-form@latest" in re.findall(r'<option value="([^"]+)"', prefilled.text)


def test_a_read_only_key_sees_but_cannot_submit_or_cancel(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    client = signed_in(api_client, new_key(api_client, "default", ["read"])["key"])
    assert client.get(f"/ui/jobs/{job['id']}").status_code == 200
    token = field(client.get("/ui/jobs/new"), "csrf_token")
    refused = client.post("/ui/jobs/new", data={"csrf_token": token, "spec": json.dumps(JOB)})
    assert refused.status_code == 403
    assert "do not include 'write'" in shown(refused)
    cancel = client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf_token": token})
    assert cancel.status_code == 403
    assert api_client.get("/v1/jobs").json()["total"] == 1


def test_the_cancel_form_cancels_through_the_api_service(api_client: TestClient) -> None:
    job = created(api_client.post("/v1/jobs", json=JOB))
    client = signed_in(api_client)
    token = field(client.get(f"/ui/jobs/{job['id']}"), "csrf_token")
    response = client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, f"/ui/jobs/{job['id']}")
    assert api_client.get(f"/v1/jobs/{job['id']}").json()["status"] == "canceled"
    page = shown(client.get(f"/ui/jobs/{job['id']}"))
    assert "canceled" in page and "Canceled on request." in page and "Cancel job" not in page
    again = client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf_token": token})
    assert again.status_code == 409
    assert f"Job {job['id']} has already canceled; only queued or running jobs can be canceled." in shown(again)


def test_names_are_shown_as_text_never_as_markup(api_client: TestClient) -> None:
    name = '<script>alert("owned")</script><img src=x onerror=alert(1)>'
    job = created(api_client.post("/v1/jobs", json={**JOB, "name": name}))
    client = signed_in(api_client)
    for path in ("/ui/jobs", f"/ui/jobs/{job['id']}"):
        page = client.get(path)
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page.text
        assert name in shown(page)
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_listings_page_newest_first_and_filter_by_status(api_client: TestClient) -> None:
    made = [created(api_client.post("/v1/jobs", json={**JOB, "name": f"job-{n:02d}"}))["id"] for n in range(27)]
    canceled = made[0]
    assert api_client.post(f"/v1/jobs/{canceled}/cancel").status_code == 202
    client = signed_in(api_client)

    first = client.get("/ui/jobs")
    names = re.findall(r">(job-\d\d)</a>", first.text)
    assert names == [f"job-{n:02d}" for n in range(26, 1, -1)]
    assert f"1{DASH}25 of 27" in shown(first) and 'href="/ui/jobs?page=2"' in first.text
    second = client.get("/ui/jobs?page=2")
    assert re.findall(r">(job-\d\d)</a>", second.text) == ["job-01", "job-00"]
    assert f"26{DASH}27 of 27" in shown(second)

    queued = client.get("/ui/jobs?status=queued")
    assert f"1{DASH}25 of 26" in shown(queued) and 'href="/ui/jobs?status=queued&amp;page=2"' in queued.text
    assert re.findall(r">(job-\d\d)</a>", client.get("/ui/jobs?status=canceled").text) == ["job-00"]
    assert "No failed jobs." in shown(client.get("/ui/jobs?status=failed"))

    for bad in ("/ui/jobs?status=finished", "/ui/jobs?page=0", "/ui/studies?page=many"):
        refused = client.get(bad)
        assert refused.status_code == 422, bad
        assert "This address is not valid" in shown(refused)


def test_the_dashboard_is_not_an_api_operation_and_needs_nothing_from_elsewhere(api_client: TestClient) -> None:
    assert not [path for path in api_client.get("/openapi.json").json()["paths"] if path.startswith("/ui")]
    client = signed_in(api_client)
    for path, media_type in (
        ("/ui/static/ui.css", "text/css"),
        ("/ui/static/ui.js", "text/javascript"),
        ("/ui/static/favicon.svg", "image/svg+xml"),
    ):
        response = browser(api_client).get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type), path
    for path in ("/ui/jobs", "/ui/jobs/new", "/ui/studies", "/ui/datasets", "/ui/sign-in"):
        page = client.get(path)
        assert page.status_code == 200
        assert not re.search(r"(src|href|action)=\"(https?:)?//", page.text), path
