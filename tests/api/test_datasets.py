"""Datasets over HTTP: every format, versions, profiles, references from jobs, and every bad input
answered with a sentence while nothing is stored. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.settings import get_settings
from tests.support.files import csv_bytes, hdf5_bytes, iris_like, npz_bytes, parquet_bytes


def upload(client: TestClient, content: bytes, name: str = "flowers", filename: str = "data.csv", **fields: str) -> Any:
    return client.post("/v1/datasets", data={"name": name, **fields}, files={"file": (filename, content)})


def created(client: TestClient, content: bytes, **kwargs: Any) -> dict[str, Any]:
    response = upload(client, content, **kwargs)
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored_folders() -> list[Path]:
    return [p for p in get_settings().datasets_dir.iterdir() if not p.name.startswith("staging")]


def assert_nothing_stored(client: TestClient) -> None:
    assert client.get("/v1/datasets").json()["total"] == 0
    assert stored_folders() == []
    assert list((get_settings().home / "incoming").glob("*")) == []


def test_csv_upload_is_profiled_and_versioned(api_client: TestClient) -> None:
    header, rows = iris_like()
    content = csv_bytes(header, rows)
    first = created(api_client, content, target="species")
    assert (first["name"], first["version"], first["format"], first["kind"]) == ("flowers", 1, "csv", "table")
    assert first["rows"] == 60 and first["target"] == "species"
    assert first["sha256"] == hashlib.sha256(content).hexdigest() and first["size_bytes"] == len(content)
    columns = {c["name"]: c for c in first["columns"]}
    assert [c["name"] for c in first["columns"]] == header
    assert (columns["length"]["dtype"], columns["colour"]["dtype"], columns["species"]["dtype"]) == (
        "float64",
        "string",
        "string",
    )
    lengths = np.array([row[0] for row in rows])
    assert columns["length"]["mean"] == pytest.approx(lengths.mean())
    assert columns["length"]["std"] == pytest.approx(lengths.std())
    assert columns["length"]["min"] == lengths.min() and columns["length"]["missing"] == 0
    assert columns["colour"]["distinct"] == 2
    assert {c["value"]: c["count"] for c in first["target_summary"]["classes"]} == {
        "setosa": 20,
        "versicolor": 20,
        "virginica": 20,
    }

    # The same name again is the next version; the same bytes are stored once.
    second = created(api_client, content, target="species")
    assert second["version"] == 2 and second["sha256"] == first["sha256"]
    assert len(stored_folders()) == 1
    third = created(api_client, csv_bytes(header, rows[:30]), target="species")
    assert third["version"] == 3 and len(stored_folders()) == 2

    listing = api_client.get("/v1/datasets", params={"name": "flowers"}).json()
    assert [d["version"] for d in listing["items"]] == [3, 2, 1] and listing["total"] == 3
    assert api_client.get(f"/v1/datasets/{first['id']}").json()["version"] == 1


def test_jobs_resolve_latest_and_exact_versions(api_client: TestClient) -> None:
    header, rows = iris_like()
    created(api_client, csv_bytes(header, rows), target="species")
    newest = created(api_client, csv_bytes(header, rows[:45]), target="species")
    job = api_client.post("/v1/jobs", json={"dataset": "flowers@latest"}).json()
    assert job["dataset"] == {"id": newest["id"], "name": "flowers", "version": 2, "sha256": newest["sha256"]}
    assert job["task"] == "classification" and job["task_reason"].startswith("inferred")
    assert job["spec"]["target"] == "species"
    pinned = api_client.post("/v1/jobs", json={"dataset": "flowers@1", "task": "classification"}).json()
    assert pinned["dataset"]["version"] == 1 and pinned["task_reason"] == "given"
    by_id = api_client.post("/v1/jobs", json={"dataset": newest["id"]}).json()
    assert by_id["dataset"]["version"] == 2
    for ref, phrase in [
        ("flowers@7", "no dataset 'flowers@7'"),
        ("flowers", "NAME@latest"),
        ("flowers@newest", "'latest' or a version number"),
        ("orchids@latest", "no dataset"),
    ]:
        response = api_client.post("/v1/jobs", json={"dataset": ref})
        assert response.status_code == 422 and phrase in response.json()["detail"], (ref, response.text)


def test_parquet_npz_and_hdf5_uploads(api_client: TestClient, tmp_path: Path) -> None:
    parquet = created(
        api_client,
        parquet_bytes({"a": [1.0, 2.0, 3.0, 4.0], "b": [1, 2, 3, 4], "y": [0, 1, 0, 1]}),
        name="pq",
        filename="x.parquet",
        target="y",
    )
    assert (parquet["format"], parquet["rows"]) == ("parquet", 4)
    assert [c["dtype"] for c in parquet["columns"]] == ["float64", "int64", "int64"]

    rng = np.random.default_rng(0)
    images = created(
        api_client, npz_bytes(X=rng.random((40, 8, 8)), y=np.arange(40) % 4), name="imgs", filename="imgs.npz"
    )
    assert (images["format"], images["kind"], images["target"]) == ("npz", "arrays", "y")
    assert images["columns"][0]["name"] == "X" and images["columns"][0]["shape"] == [1, 8, 8]
    cnn = api_client.post("/v1/jobs", json={"dataset": "imgs@latest", "model": {"type": "cnn"}})
    assert cnn.status_code == 201, cnn.text

    h5 = created(api_client, hdf5_bytes(tmp_path, X=rng.random((30, 5)), y=rng.random(30)), name="h5", filename="d.h5")
    assert (h5["format"], h5["kind"], h5["rows"]) == ("hdf5", "arrays", 30)
    job = api_client.post("/v1/jobs", json={"dataset": "h5@1"}).json()
    assert job["task"] == "regression"


def test_missing_values_refuse_the_job_unless_it_says_how_to_handle_them(api_client: TestClient) -> None:
    header, rows = iris_like()
    rows[3][0] = None
    rows[7][2] = None
    created(api_client, csv_bytes(header, rows), target="species")
    refused = api_client.post("/v1/jobs", json={"dataset": "flowers@latest"})
    assert refused.status_code == 422
    assert "'length' (1), 'colour' (1)" in refused.json()["detail"]
    assert "training.missing" in refused.json()["detail"]
    for policy in ("drop", "mean"):
        response = api_client.post("/v1/jobs", json={"dataset": "flowers@latest", "training": {"missing": policy}})
        assert response.status_code == 201, response.text


def test_task_must_agree_with_the_target(api_client: TestClient) -> None:
    header, rows = iris_like()
    created(api_client, csv_bytes(header, rows), target="species")
    response = api_client.post("/v1/jobs", json={"dataset": "flowers@latest", "task": "regression"})
    assert response.status_code == 422 and "holds text labels" in response.json()["detail"]
    response = api_client.post("/v1/jobs", json={"dataset": "flowers@latest", "target": "petals"})
    assert response.status_code == 422 and "no column 'petals'" in response.json()["detail"]
    regression = api_client.post("/v1/jobs", json={"dataset": "flowers@latest", "target": "width"}).json()
    assert regression["task"] == "regression" and "holds numbers" in regression["task_reason"]


def test_too_few_rows_for_the_splits(api_client: TestClient) -> None:
    created(api_client, csv_bytes(["x", "y"], [[1, 0.5], [2, 0.7]]), target="y")
    response = api_client.post("/v1/jobs", json={"dataset": "flowers@latest"})
    assert response.status_code == 422
    assert "2 rows are too few for these splits" in response.json()["detail"]


def test_delete_is_refused_while_a_job_uses_the_dataset(api_client: TestClient) -> None:
    header, rows = iris_like()
    dataset = created(api_client, csv_bytes(header, rows), target="species")
    job = api_client.post("/v1/jobs", json={"dataset": "flowers@1"}).json()
    refused = api_client.delete(f"/v1/datasets/{dataset['id']}")
    assert refused.status_code == 409 and "used by 1 queued or running job" in refused.json()["detail"]
    api_client.post(f"/v1/jobs/{job['id']}/cancel")
    assert api_client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert api_client.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert stored_folders() == []
    assert api_client.get(f"/v1/jobs/{job['id']}").json()["dataset"]["name"] == "flowers"


def test_synthetic_dataset_records_its_true_coefficients(api_client: TestClient) -> None:
    body = {
        "name": "groups",
        "task": "regression",
        "n_samples": 200,
        "n_features": 10,
        "n_informative": 2,
        "groups": [{"size": 4, "correlation": 0.9}],
        "noise": 0.5,
        "seed": 3,
    }
    first = api_client.post("/v1/datasets/synthetic", json=body)
    assert first.status_code == 201, first.text
    data = first.json()
    assert (data["format"], data["source"], data["rows"], data["target"]) == ("synthetic", "synthetic", 200, "target")
    names = [c["name"] for c in data["columns"]]
    assert names[:2] == ["informative_0", "informative_1"] and names[2:6] == [f"group0_{j}" for j in range(4)]
    coefficients = data["generator"]["coefficients"]
    assert len({coefficients[f"group0_{j}"] for j in range(4)}) == 1, "a group shares its signal equally"
    assert all(coefficients[n] == 0 for n in names if n.startswith("noise_"))
    again = api_client.post("/v1/datasets/synthetic", json=body).json()
    assert again["version"] == 2 and again["sha256"] == data["sha256"], "the same seed gives the same bytes"
    bad = api_client.post("/v1/datasets/synthetic", json={**body, "n_features": 5})
    assert bad.status_code == 422 and "more than n_features" in bad.text


def test_builtins_are_listed_with_their_shapes(api_client: TestClient) -> None:
    builtins = {b["id"]: b for b in api_client.get("/v1/datasets/builtin").json()}
    assert set(builtins) == {
        "builtin:iris",
        "builtin:wine",
        "builtin:breast_cancer",
        "builtin:digits",
        "builtin:diabetes",
    }
    assert builtins["builtin:digits"]["image_shape"] == [1, 8, 8]
    assert (builtins["builtin:wine"]["rows"], builtins["builtin:wine"]["features"]) == (178, 13)


def bomb() -> bytes:
    """An NPZ whose X is 80 MB of zeros compressed into a few hundred kilobytes."""
    sink = io.BytesIO()
    np.savez_compressed(sink, X=np.zeros((10_000, 1000)), y=np.zeros(10_000))
    return sink.getvalue()


def object_npz() -> bytes:
    sink = io.BytesIO()
    np.savez(sink, X=np.array([[1, "a"]], dtype=object), y=np.array([1]))
    return sink.getvalue()


BAD_UPLOADS: list[tuple[str, bytes, dict[str, str], str]] = [
    ("empty", b"", {}, "The file is empty"),
    ("header only", b"a,b,y\n", {}, "header but no rows"),
    ("ragged", b"a,b,y\n1,2,3\n4,5\n", {}, "Line 3"),
    ("undecodable", b"a,b,y\n1,2,\xff\xfe\n", {}, "UTF-8"),
    ("no such target", csv_bytes(["a", "y"], [[1, 0], [2, 1]]), {"target": "label"}, "no column 'label'"),
    (
        "single class",
        csv_bytes(["a", "y"], [[1, "cat"], [2, "cat"], [3, "cat"]]),
        {"target": "y"},
        "same value ('cat')",
    ),
    ("too many columns", csv_bytes([f"c{i}" for i in range(120)], [list(range(120))] * 3), {}, "100"),
    ("npz without y", npz_bytes(X=np.zeros((3, 2))), {"filename": "d.npz"}, "no array 'y'"),
    ("npz object arrays", object_npz(), {"filename": "d.npz"}, "object"),
    ("npz lengths differ", npz_bytes(X=np.zeros((3, 2)), y=np.zeros(4)), {"filename": "d.npz"}, "3"),
    ("parquet that is csv", csv_bytes(["a", "y"], [[1, 0], [2, 1]]), {"filename": "d.parquet"}, "Parquet"),
    ("hdf5 that is csv", csv_bytes(["a", "y"], [[1, 0], [2, 1]]), {"filename": "d.h5"}, "HDF5"),
    ("path in file name", csv_bytes(["a", "y"], [[1, 0], [2, 1]]), {"filename": "../../etc/passwd"}, "path separator"),
    ("bad name", csv_bytes(["a", "y"], [[1, 0], [2, 1]]), {"name": "my data@2"}, "is not valid"),
]


@pytest.mark.parametrize(("case", "content", "options", "phrase"), BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
def test_bad_uploads_are_422_with_a_sentence_and_nothing_is_stored(
    api_client: TestClient, case: str, content: bytes, options: dict[str, str], phrase: str
) -> None:
    options = dict(options)
    filename = options.pop("filename", "data.csv")
    name = options.pop("name", "flowers")
    response = upload(api_client, content, name=name, filename=filename, **options)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "InvalidInput" and phrase in body["detail"], body
    assert_nothing_stored(api_client)


def test_hdf5_without_y(api_client: TestClient, tmp_path: Path) -> None:
    response = upload(api_client, hdf5_bytes(tmp_path, X=np.zeros((4, 2))), filename="d.h5")
    assert response.status_code == 422 and "'y'" in response.json()["detail"]
    assert_nothing_stored(api_client)


def test_decompression_bomb_is_refused(api_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGTRAIN_MAX_DECOMPRESSED_BYTES", str(10 * 1024 * 1024))
    get_settings.cache_clear()
    content = bomb()
    assert len(content) < 2 * 1024 * 1024 and zipfile.is_zipfile(io.BytesIO(content))
    response = upload(api_client, content, filename="bomb.npz")
    assert response.status_code == 422, response.text
    assert_nothing_stored(api_client)


def test_missing_file_or_name_is_422(api_client: TestClient) -> None:
    no_file = api_client.post("/v1/datasets", data={"name": "x"}, files={"other": ("a.csv", b"a\n1\n")})
    assert no_file.status_code == 422 and "no `file` part" in no_file.json()["detail"]
    no_name = api_client.post("/v1/datasets", files={"file": ("a.csv", b"a,y\n1,2\n3,4\n")})
    assert no_name.status_code == 422 and "name" in no_name.json()["detail"]
    not_multipart = api_client.post("/v1/datasets", json={"name": "x"})
    assert not_multipart.status_code == 422 and "multipart/form-data" in not_multipart.json()["detail"]
    assert_nothing_stored(api_client)


def test_a_body_over_the_limit_is_413_before_it_is_read(api_client: TestClient) -> None:
    big = b"a,y\n" + b"1,2\n" * (600 * 1024)  # 2.4 MB, over the 2 MiB limit of these tests
    declared = upload(api_client, big)
    assert declared.status_code == 413 and "REGTRAIN_MAX_UPLOAD_BYTES" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        boundary = b"--regtrain-test"
        yield boundary + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\nflowers\r\n'
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        for _ in range(64):  # 64 chunks of 64 KiB = 4 MiB, without a Content-Length header
            yield b"1,2\n" * (16 * 1024)
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = api_client.post(
        "/v1/datasets", content=chunks(), headers={"content-type": "multipart/form-data; boundary=regtrain-test"}
    )
    assert streamed.status_code == 413
    assert_nothing_stored(api_client)
