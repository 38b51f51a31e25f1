"""Column roles over HTTP: ids, constants, dates and high-cardinality text found at upload and named in
the dataset's warnings; jobs leave them out and say so, choose their own columns with `features` or
`exclude_columns`, and get a sentence for each bad choice. Missing-value markers per upload, with parses
of the same bytes kept apart. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import get_settings
from core.storage import dataset_object_key, get_store, store_key
from tests.support.files import csv_bytes

JOB: dict[str, Any] = {"dataset": "people@latest", "training": {"epochs": 1}}
COLUMNS = ["customer_id", "row_no", "income", "country", "notes", "signup", "age", "plan", "churned"]


def people(n: int = 300) -> bytes:
    rng = random.Random(0)
    incomes = rng.sample(range(20_000, 200_000), n)
    rows = [
        [
            f"C{i:05d}",
            i + 1,
            incomes[i],
            "NO",
            "NA",
            (date(2024, 1, 1) + timedelta(days=i)).isoformat(),
            18 + i % 60,
            ["basic", "pro", "team"][i % 3],
            i % 2,
        ]
        for i in range(n)
    ]
    return csv_bytes(COLUMNS, rows)


def upload(client: TestClient, content: bytes, name: str = "people", **fields: str) -> dict[str, Any]:
    response = client.post(
        "/v1/datasets", data={"name": name, "target": "churned", **fields}, files={"file": ("people.csv", content)}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def submit(client: TestClient, **changes: Any) -> Any:
    return client.post("/v1/jobs", json={**JOB, **changes})


def roles(dataset: dict[str, Any]) -> dict[str, str]:
    return {column["name"]: column["role"] for column in dataset["columns"]}


def test_roles_and_warnings_at_upload_and_on_read(api_client: TestClient) -> None:
    uploaded = upload(api_client, people())
    assert roles(uploaded) == {
        "customer_id": "id",
        "row_no": "id",  # integers numbering the rows
        "income": "feature",  # unique integers, but measurements: not named or laid out like an id
        "country": "constant",
        "notes": "constant",  # every cell is "NA", so missing
        "signup": "datetime",
        "age": "feature",
        "plan": "feature",
        "churned": "target",
    }
    assert uploaded["warnings"] == [
        "Column 'customer_id' is unique per row (an id); jobs leave it out unless they list it in `features`.",
        "Column 'row_no' is unique per row (an id); jobs leave it out unless they list it in `features`.",
        "Column 'country' has the same value in every row (a constant); jobs leave it out unless they list it in "
        "`features`.",
        "Column 'notes' has no values (every cell is missing); jobs leave it out unless they list it in `features`.",
        "Column 'signup' holds dates or times, which are not encoded as features; jobs leave it out, and cannot use "
        "it: derive numbers from it (such as days since a date) to use it.",
    ]
    assert uploaded["na_values"] == ["", "NA", "N/A", "NaN", "null", "NULL", "None", "?"]
    read = api_client.get(f"/v1/datasets/{uploaded['id']}").json()
    assert (roles(read), read["warnings"], read["na_values"]) == (
        roles(uploaded),
        uploaded["warnings"],
        uploaded["na_values"],
    )


def test_a_job_leaves_out_what_is_not_a_feature_and_says_so(api_client: TestClient) -> None:
    upload(api_client, people())
    response = submit(api_client)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["spec"]["features"] == ["income", "age", "plan"]
    assert job["spec"]["exclude_columns"] is None
    assert job["warnings"] == [
        "Column 'customer_id' is unique per row (an id), so this job leaves it out; list it in `features` to use it.",
        "Column 'row_no' is unique per row (an id), so this job leaves it out; list it in `features` to use it.",
        "Column 'country' has the same value in every row (a constant), so this job leaves it out; list it in "
        "`features` to use it.",
        "Column 'notes' has no values (every cell is missing), so this job leaves it out; list it in `features` to "
        "use it.",
        "Column 'signup' holds dates or times, which are not encoded as features, so this job leaves it out.",
    ]
    # The column it left out, all missing, does not refuse the job (training.missing is "refuse").
    assert api_client.get(f"/v1/jobs/{job['id']}").json()["warnings"] == job["warnings"]
    retrained = api_client.post(f"/v1/jobs/{job['id']}/retrain")
    assert retrained.status_code == 201, retrained.text
    assert retrained.json()["job"]["spec"]["features"] == ["income", "age", "plan"]


def test_features_and_exclude_columns_choose_the_columns(api_client: TestClient) -> None:
    upload(api_client, people())
    excluded = submit(api_client, exclude_columns=["income"])
    assert excluded.status_code == 201, excluded.text
    assert excluded.json()["spec"]["features"] == ["age", "plan"]
    # Listed, an id is used (its 300 values one-hot), in the order given, with nothing to warn about.
    chosen = submit(api_client, features=["plan", "customer_id", "country"])
    assert chosen.status_code == 201, chosen.text
    assert (chosen.json()["spec"]["features"], chosen.json()["warnings"]) == (["plan", "customer_id", "country"], [])


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        (
            {"features": ["age", "height"]},
            "`features` names 'height', not a column of dataset people@1; its columns are 'customer_id', 'row_no', "
            "'income', 'country', 'notes', 'signup', 'age', 'plan' and 'churned'.",
        ),
        (
            {"exclude_columns": ["Age"]},
            "`exclude_columns` names 'Age', not a column of dataset people@1;",
        ),
        (
            {"features": ["age", "churned"]},
            "The target 'churned' cannot be in `features`: it is what the job predicts, never an input.",
        ),
        (
            {"exclude_columns": ["churned"]},
            "The target 'churned' cannot be in `exclude_columns`: the job needs it to learn from.",
        ),
        (
            {"exclude_columns": ["income", "age", "plan"]},
            "No feature columns are left in dataset people@1 besides the target 'churned'. `exclude_columns` leaves "
            "out 'age', 'income' and 'plan'. Column 'customer_id' is unique per row (an id), so this job leaves it "
            "out;",
        ),
        (
            {"features": ["signup"]},
            "Column 'signup' in `features` holds dates or times, which this service does not encode as features;",
        ),
        ({"features": []}, "`features` is empty; list at least one column to train on."),
        ({"features": ["age", "age"]}, "`features` lists 'age' more than once; name each column once."),
    ],
)
def test_bad_choices_are_refused_with_a_sentence(
    api_client: TestClient, changes: dict[str, Any], sentence: str
) -> None:
    upload(api_client, people())
    response = submit(api_client, **changes)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(sentence), response.json()["detail"]


def test_features_with_exclude_columns_is_a_422(api_client: TestClient) -> None:
    upload(api_client, people())
    response = submit(api_client, features=["age"], exclude_columns=["plan"])
    assert response.status_code == 422
    assert "give either `features` (exactly the columns to use) or `exclude_columns`" in response.text


def test_arrays_and_builtins_have_no_columns_to_choose(api_client: TestClient) -> None:
    response = api_client.post("/v1/jobs", json={"dataset": "builtin:wine", "features": ["alcohol"]})
    assert response.status_code == 422
    assert "holds arrays, not named columns" in response.json()["detail"]


def test_high_cardinality_text_is_left_out_and_cannot_be_listed(api_client: TestClient) -> None:
    # 1,100 words, each twice: not unique (no id), too many to one-hot encode.
    rows = [[f"word{i // 2}", i % 7, i % 2] for i in range(2200)]
    uploaded = upload(api_client, csv_bytes(["comment", "x", "churned"], rows), name="comments")
    assert roles(uploaded)["comment"] == "high_cardinality"
    assert uploaded["warnings"] == [
        "Column 'comment' is text with more than 1,000 distinct values, too many to one-hot encode; jobs leave it "
        "out, and cannot use it: make it numeric or group its values."
    ]
    job = api_client.post("/v1/jobs", json={"dataset": "comments@latest", "training": {"epochs": 1}})
    assert job.status_code == 201, job.text
    assert job.json()["spec"]["features"] == ["x"]
    listed = api_client.post(
        "/v1/jobs", json={"dataset": "comments@latest", "features": ["comment", "x"], "training": {"epochs": 1}}
    )
    assert listed.status_code == 422
    assert "Column 'comment' has more than 1000 distinct text values, too many to one-hot encode" in listed.text


def test_the_category_limit_is_a_setting(api_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGTRAIN_MAX_CATEGORIES", "2")
    get_settings.cache_clear()
    uploaded = upload(api_client, people())
    assert roles(uploaded)["plan"] == "high_cardinality"
    assert submit(api_client).json()["spec"]["features"] == ["income", "age"]


def test_na_values_replace_the_default_and_key_the_parse(api_client: TestClient) -> None:
    content = csv_bytes(["region", "n", "churned"], [["NA", 1, 0], ["EU", "?", 1], ["NA", 3, 0], ["", 4, 1]])
    default = upload(api_client, content, name="regions")
    own = upload(api_client, content, name="regions", na_values=json.dumps(["", "?"]))
    again = upload(api_client, content, name="regions", na_values=json.dumps(["", "?"]))
    assert default["sha256"] == own["sha256"] == again["sha256"]
    by_name = [{c["name"]: (c["dtype"], c["missing"]) for c in d["columns"]} for d in (default, own, again)]
    assert by_name[0] == {"region": ("string", 3), "n": ("int64", 1), "churned": ("int64", 0)}
    assert by_name[1] == by_name[2] == {"region": ("string", 1), "n": ("int64", 1), "churned": ("int64", 0)}
    assert (own["na_values"], again["na_values"]) == (["", "?"], ["", "?"])
    # Each version is checked against its own parse: three missing regions in the first, one in the second.
    first = api_client.post("/v1/jobs", json={"dataset": "regions@1", "features": ["region"]})
    assert first.status_code == 422 and "'region' (3)" in first.json()["detail"]
    second = api_client.post("/v1/jobs", json={"dataset": "regions@2", "features": ["region"]})
    assert second.status_code == 422 and "'region' (1)" in second.json()["detail"]
    # Two parses stored; deleting the first's only dataset removes its file and keeps the other's.
    store = get_store(get_settings())
    parses = {store_key(default["sha256"], default["na_values"]), store_key(own["sha256"], own["na_values"])}
    assert len(parses) == 2 and all(store.exists(dataset_object_key(parse, "table")) for parse in parses)
    assert api_client.delete(f"/v1/datasets/{default['id']}").status_code == 204
    assert not store.exists(dataset_object_key(store_key(default["sha256"], default["na_values"]), "table"))
    assert store.exists(dataset_object_key(store_key(own["sha256"], own["na_values"]), "table"))


@pytest.mark.parametrize("field", ["NA", '{"a": 1}', "[1, 2]", json.dumps(["x"] * 101)])
def test_bad_na_values_are_refused(api_client: TestClient, field: str) -> None:
    response = api_client.post(
        "/v1/datasets", data={"name": "bad", "na_values": field}, files={"file": ("a.csv", b"a,b\n1,2\n3,4\n")}
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("na_values must be a JSON list of at most 100 strings")
