"""Plots of jobs and studies trained by the worker's own code in this process (the runner against the app's
database): what a person reads in them (titles, axis labels, legends, the nonzero counts on top of a CV
curve), one SVG series per data series, PNGs that are not blank, the same bytes for the same data (in
this process and another), 304 on a matching ETag, and sentences for what cannot be plotted."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.plots import Svg, png
from tests.support.servers import wait_until
from worker import runner


@pytest.fixture
def api_client(sqlite_api_client: TestClient) -> TestClient:
    """On SQLite only: plots read what the services read, and those are tested on both databases;
    drawing every plot twice would double this module's time for nothing it could find."""
    return sqlite_api_client


CLASSIFIER = {
    "name": "plot-wine",
    "dataset": "builtin:wine",
    "model": {"type": "mlp", "hidden_layers": [16]},
    "regularization": {"elastic_net": {"alpha": 0.004, "l1_ratio": 0.5}},
    "optimizer": {"type": "adam", "lr": 0.02},
    "training": {"epochs": 40, "validation_fraction": 0.3, "early_stopping": {"patience": 4}},
}
REGRESSOR = {
    "dataset": "builtin:diabetes",
    "model": {"type": "linear"},
    "regularization": {"l1": 0.5},
    "training": {"epochs": 12, "validation_fraction": 0.2, "early_stopping": None},
}
UNPENALIZED = {
    "dataset": "builtin:iris",
    "model": {"type": "mlp", "hidden_layers": [8]},
    "training": {"epochs": 500, "batch_size": 1},
}
ELASTIC_NET_CV = {
    "name": "plot-diabetes-cv",
    "job": {"dataset": "builtin:diabetes", "model": {"type": "linear"}, "training": {"validation_fraction": 0.0}},
    "search": {
        "regularization.elastic_net.alpha": {"path": {"n": 20}},
        "regularization.elastic_net.l1_ratio": {"values": [0.5, 1.0]},
    },
    "cv": {"folds": 5},
    "select": {"metric": "mse", "rule": "1se"},
}
VARIANTS = {
    "name": "plot-which-regularizer",
    "job": {
        "dataset": "builtin:iris",
        "model": {"type": "mlp", "hidden_layers": [8]},
        "optimizer": {"type": "adam", "lr": 0.05},
        "training": {"epochs": 8, "batch_size": 16, "early_stopping": None},
    },
    "variants": {"none": {}, "l2": {"regularization": {"l2": 0.01}}, "dropout": {"model": {"dropout": 0.2}}},
    "cv": {"folds": 3},
    "select": {"metric": "accuracy"},
}
JOB_PLOTS = ["learning_curves", "penalties", "sparsity", "weights"]
STUDY_PLOTS = ["cv_curve", "paths", "variants"]


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def trained(client: TestClient, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A job or study submitted over HTTP and run to the end by the worker's code, here."""
    made = created(client.post(f"/v1/{kind}", json=body))
    runner.run_job(made["id"])
    done = client.get(f"/v1/{kind}/{made['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    return dict(done)


def svg(client: TestClient, path: str, **params: Any) -> Svg:
    response = client.get(f"{path}.svg", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml"
    return Svg.parse(response.content)


def refused(client: TestClient, path: str, status: int, **params: Any) -> str:
    """The sentence of a domain error."""
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    return str(response.json()["detail"])


def png_matches_svg(client: TestClient, path: str) -> tuple[int, int]:
    """The PNG of a plot: not blank, and the size of its SVG (points, 72 an inch) at 100 pixels an inch."""
    response = client.get(f"{path}.png")
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png"), response.text
    size, variance = png(response.content)
    assert variance > 0, f"{path}.png is blank"
    vector = svg(client, path).root
    inches = [float(vector.get(side, "").removesuffix("pt")) / 72 for side in ("width", "height")]
    assert size == tuple(round(100 * length) for length in inches), path
    return size


def test_a_trained_classifiers_plots_show_its_curves_terms_and_weights(api_client: TestClient) -> None:
    job = trained(api_client, "jobs", CLASSIFIER)
    result, plots = job["result"], f"/v1/jobs/{job['id']}/plots"
    epochs = [e["epoch"] for e in api_client.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]]
    assert result["epochs_run"] == len(epochs)

    curves = svg(api_client, f"{plots}/learning_curves")
    texts = curves.texts()
    assert "Learning curves of job 'plot-wine'" in texts
    assert "epoch" in texts and "data loss: cross-entropy (nats)" in [t.removesuffix(", log scale") for t in texts]
    assert curves.series() == ["series-training", "series-validation"]
    assert curves.markers("series-training") == curves.markers("series-validation") == len(epochs)
    assert f"best epoch {result['best_epoch']} (early stopping kept its weights)" in texts
    curves.element("best-epoch")
    assert {"training", "validation"} <= set(texts)

    penalties = svg(api_client, f"{plots}/penalties")
    assert "Penalty terms of job 'plot-wine'" in penalties.texts()
    assert "penalty term (units of the data loss)" in penalties.texts()
    assert penalties.series() == ["series-l1-term", "series-l2-term"]
    # elastic_net alpha 0.004, l1_ratio 0.5: l1 = l2 = 0.002.
    assert "L1 term  l1·Σ|w|  (l1 = 0.002)" in penalties.texts()
    assert "L2 term  (l2/2)·Σw²  (l2 = 0.002)" in penalties.texts()
    assert penalties.markers("series-l1-term") == len(epochs)

    sparsity = svg(api_client, f"{plots}/sparsity")
    assert {"Sparsity of job 'plot-wine'", "share of penalized weights (%)", "epoch"} <= set(sparsity.texts())
    assert sparsity.series() == ["series-near-zero", "series-exactly-zero"]
    assert {"near zero (|w| < 0.001)", "exactly zero"} <= set(sparsity.texts())

    # By default the weights the job keeps (its artifact's), as GET /weights serves them.
    statistics = api_client.get(f"/v1/jobs/{job['id']}/weights").json()
    weights = svg(api_client, f"{plots}/weights")
    assert f"Weights of job 'plot-wine' at epoch {result['weights_epoch']}" in weights.texts()
    layers = statistics["layers"]
    assert weights.series() == [f"series-{layer['name']}" for layer in layers]
    for layer in layers:
        shape = "\u00d7".join(map(str, layer["shape"]))
        assert f"{layer['name']} [{shape}]" in weights.texts()
        zeros = f"{100 * layer['zero_fraction']:.1f}% zero, {100 * layer['near_zero_fraction']:.1f}% near zero"
        assert zeros + ("" if layer["penalized"] else ", not penalized") in weights.texts()
    assert weights.texts().count("weight value") == len(layers)
    first = svg(api_client, f"{plots}/weights", epoch=1)
    assert "Weights of job 'plot-wine' at epoch 1" in first.texts()

    for plot in ("learning_curves", "penalties", "sparsity"):
        assert png_matches_svg(api_client, f"{plots}/{plot}") == (800, 500)
    # Four tensors: three panels in a row, two rows.
    assert png_matches_svg(api_client, f"{plots}/weights") == (1260, 690)


def test_a_regression_jobs_plots_name_its_loss_and_its_recorded_epochs(api_client: TestClient) -> None:
    job = trained(api_client, "jobs", REGRESSOR)
    plots = f"/v1/jobs/{job['id']}/plots"
    curves = svg(api_client, f"{plots}/learning_curves")
    assert f"Learning curves of job {job['id']}" in curves.texts()
    labels = [t.removesuffix(", log scale") for t in curves.texts()]
    assert "data loss: ½ · mean squared error (target units²)" in labels
    # No early stopping: no epoch is marked.
    assert "best-epoch" not in curves.ids()
    penalties = svg(api_client, f"{plots}/penalties")
    assert penalties.series() == ["series-l1-term"] and "L1 term  l1·Σ|w|  (l1 = 0.5)" in penalties.texts()
    assert len(penalties.series()) == 1 and not any(t.startswith("L2 term") for t in penalties.texts())

    weights = svg(api_client, f"{plots}/weights", epoch=12)
    assert weights.series() == ["series-linear.weight", "series-linear.bias"]
    assert "linear.weight [1\u00d710]" in weights.texts()
    detail = refused(api_client, f"{plots}/weights.svg", 404, epoch=13)
    assert detail == (
        f"Job {job['id']} has no weight statistics for epoch 13; they were recorded at epochs "
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 (12 in all)."
    )


def test_the_same_data_gives_the_same_bytes_and_a_matching_etag_gives_304(api_client: TestClient) -> None:
    job = trained(api_client, "jobs", {**REGRESSOR, "training": {**REGRESSOR["training"], "epochs": 3}})
    paths = [f"/v1/jobs/{job['id']}/plots/learning_curves.{image_format}" for image_format in ("svg", "png")]
    # Another process (a second API worker) draws the very same bytes: no random ids, no dates.
    drawn_elsewhere = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, *paths],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=120,
        check=True,
    ).stdout.split()
    for path, elsewhere in zip(paths, drawn_elsewhere, strict=True):
        first, second = api_client.get(path), api_client.get(path)
        assert base64.b64decode(elsewhere) == first.content
        assert first.content == second.content and len(first.content) > 1000
        etag = first.headers["etag"]
        assert etag == second.headers["etag"] and etag.startswith('"')
        assert first.headers["cache-control"] == "private, no-cache"
        for sent in (etag, f'"other", W/{etag}', "*"):
            again = api_client.get(path, headers={"If-None-Match": sent})
            assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), sent
        assert api_client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


OTHER_PROCESS = """
import base64, sys
from fastapi.testclient import TestClient
from api.main import create_app
from tests.support.app import ADMIN_HEADERS
with TestClient(create_app(), headers=ADMIN_HEADERS) as client:
    for path in sys.argv[1:]:
        response = client.get(path)
        assert response.status_code == 200, response.text
        print(base64.b64encode(response.content).decode())
"""


def test_a_running_job_is_plotted_with_what_it_has_recorded(api_client: TestClient) -> None:
    job_id = created(api_client.post("/v1/jobs", json=UNPENALIZED))["id"]
    seen: dict[str, Any] = {}

    def look_then_cancel() -> None:
        try:
            wait_until(
                lambda: api_client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 2,
                timeout=60,
                interval=0.05,
                what="two epochs",
            )
            seen["status"] = api_client.get(f"/v1/jobs/{job_id}").json()["status"]
            seen["curves"] = api_client.get(f"/v1/jobs/{job_id}/plots/learning_curves.svg")
            seen["weights"] = api_client.get(f"/v1/jobs/{job_id}/plots/weights.svg")
        finally:
            api_client.post(f"/v1/jobs/{job_id}/cancel")

    watcher = threading.Thread(target=look_then_cancel)
    watcher.start()
    runner.run_job(job_id)
    watcher.join()

    assert seen["status"] == "running"
    assert seen["curves"].status_code == 200, seen["curves"].text
    curves = Svg.parse(seen["curves"].content)
    assert curves.markers("series-training") >= 2
    assert any(t.startswith("lowest validation loss so far: epoch ") for t in curves.texts())
    assert seen["weights"].status_code == 200 and "series-output.weight" in Svg.parse(seen["weights"].content).ids()

    # Canceled, it keeps what it recorded; it never had a penalty.
    assert api_client.get(f"/v1/jobs/{job_id}").json()["status"] == "canceled"
    assert api_client.get(f"/v1/jobs/{job_id}/plots/sparsity.png").status_code == 200
    assert refused(api_client, f"/v1/jobs/{job_id}/plots/penalties.svg", 409) == (
        f"Job {job_id} has no L1 or L2 penalty (regularization.l1 and regularization.l2 are 0), so its objective has "
        "no penalty terms to plot; learning_curves and sparsity apply."
    )


def test_a_running_study_is_plotted_with_the_folds_it_has_finished(api_client: TestClient) -> None:
    slow = {**VARIANTS, "job": {**VARIANTS["job"], "training": {"epochs": 40, "batch_size": 2}}}
    study_id = created(api_client.post("/v1/studies", json=slow))["id"]
    seen: dict[str, Any] = {}

    def look_then_cancel() -> None:
        try:
            wait_until(
                lambda: api_client.get(f"/v1/studies/{study_id}").json()["progress"]["fits"] >= 3,
                timeout=120,
                interval=0.05,
                what="the first fold",
            )
            seen["status"] = api_client.get(f"/v1/studies/{study_id}").json()["status"]
            seen["variants"] = api_client.get(f"/v1/studies/{study_id}/plots/variants.svg")
        finally:
            api_client.post(f"/v1/studies/{study_id}/cancel")

    watcher = threading.Thread(target=look_then_cancel)
    watcher.start()
    runner.run_job(study_id)
    watcher.join()

    assert seen["status"] == "running"
    assert seen["variants"].status_code == 200, seen["variants"].text
    compared = Svg.parse(seen["variants"].content)
    assert "Variants of study 'plot-which-regularizer' (so far)" in compared.texts()
    assert compared.series() == ["series-none", "series-l2", "series-dropout"]
    # One fold each: a mean, no standard error yet.
    assert not any(name.startswith("errorbar-") for name in compared.ids())
    assert api_client.get(f"/v1/studies/{study_id}").json()["status"] == "canceled"
    stopped = svg(api_client, f"/v1/studies/{study_id}/plots/variants")
    assert "Variants of study 'plot-which-regularizer' (canceled before finishing)" in stopped.texts()


def test_a_job_with_nothing_recorded_and_bad_requests_are_answered_with_sentences(api_client: TestClient) -> None:
    job_id = created(api_client.post("/v1/jobs", json=REGRESSOR))["id"]
    plots = f"/v1/jobs/{job_id}/plots"
    for plot in ("learning_curves", "penalties", "sparsity"):
        assert refused(api_client, f"{plots}/{plot}.svg", 409) == (
            f"Job {job_id} is queued and has recorded no epochs yet; they appear after its first epoch."
        )
    assert refused(api_client, f"{plots}/weights.png", 409) == (
        f"Job {job_id} is queued and has recorded no weight statistics yet; they appear after its first epoch."
    )
    canceled = api_client.post(f"/v1/jobs/{job_id}/cancel").json()
    assert canceled["status"] == "canceled"
    assert refused(api_client, f"{plots}/sparsity.svg", 409) == (
        f"Job {job_id} is canceled and recorded no epochs, so there is nothing to plot."
    )

    unknown = "00000000-0000-0000-0000-000000000000"
    assert refused(api_client, f"/v1/jobs/{unknown}/plots/weights.svg", 404) == f"There is no job with id {unknown!r}."
    study_id = created(api_client.post("/v1/studies", json=VARIANTS))["id"]
    # A study is not a job, and a job is not a study.
    assert refused(api_client, f"/v1/jobs/{study_id}/plots/sparsity.svg", 404).startswith("There is no job")
    assert refused(api_client, f"/v1/studies/{job_id}/plots/variants.svg", 404).startswith("There is no study")

    for path, where, allowed in (
        (f"{plots}/loss.svg", "plot", "'learning_curves', 'penalties', 'sparsity' or 'weights'"),
        (f"{plots}/cv_curve.svg", "plot", "'learning_curves', 'penalties', 'sparsity' or 'weights'"),
        (f"{plots}/weights.jpg", "format", "'svg' or 'png'"),
        (f"/v1/studies/{study_id}/plots/weights.svg", "plot", "'cv_curve', 'paths' or 'variants'"),
    ):
        response = api_client.get(path)
        assert response.status_code == 422, path
        (error,) = response.json()["detail"]
        assert error["loc"] == ["path", where] and allowed in error["msg"], error
    for epoch in ("last", "1.5", "0"):
        response = api_client.get(f"{plots}/weights.svg", params={"epoch": epoch})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "epoch"], epoch
    assert refused(api_client, f"{plots}/sparsity.svg", 422, epoch=1) == (
        "epoch chooses the epoch of the weights plot; sparsity shows every recorded epoch, leave epoch out."
    )


def test_another_tenants_trained_job_is_as_unknown_as_a_made_up_id(api_client: TestClient) -> None:
    job = trained(api_client, "jobs", {**REGRESSOR, "training": {**REGRESSOR["training"], "epochs": 2}})
    created(api_client.post("/v1/tenants", json={"name": "other"}))
    key = created(api_client.post("/v1/keys", json={"tenant": "other", "name": "reader", "scopes": ["read"]}))
    other = {"Authorization": f"Bearer {key['key']}"}
    unknown = "11111111-1111-1111-1111-111111111111"
    for plot in JOB_PLOTS:
        theirs = api_client.get(f"/v1/jobs/{job['id']}/plots/{plot}.svg", headers=other)
        made_up = api_client.get(f"/v1/jobs/{unknown}/plots/{plot}.svg", headers=other)
        assert theirs.status_code == made_up.status_code == 404
        assert theirs.json() == {**made_up.json(), "detail": made_up.json()["detail"].replace(unknown, job["id"])}
        assert api_client.get(f"/v1/jobs/{job['id']}/plots/{plot}.svg").status_code == 200


def test_an_elastic_net_cv_studys_curve_and_paths_show_its_choices(api_client: TestClient) -> None:
    study = trained(api_client, "studies", ELASTIC_NET_CV)
    plots = f"/v1/studies/{study['id']}/plots"
    members = api_client.get(f"/v1/studies/{study['id']}/members", params={"limit": 100}).json()["items"]
    by_position = {m["position"]: m for m in members}
    best, one_se = by_position[study["best"]["position"]], by_position[study["one_se"]["position"]]
    alpha = "regularization.elastic_net.alpha"

    curve = svg(api_client, f"{plots}/cv_curve")
    texts = curve.texts()
    assert "Cross-validation curve of study 'plot-diabetes-cv'" in texts
    assert "log10(alpha)   (stronger regularization →)" in texts
    assert {"mean squared error (target units²)", "mean over 5 folds ± 1 SE, lower is better"} <= set(texts)
    assert curve.series() == ["series-l1_ratio-0.5", "series-l1_ratio-1.0"]
    assert curve.markers("series-l1_ratio-0.5") == curve.markers("series-l1_ratio-1.0") == 20
    assert {"l1_ratio=0.5", "l1_ratio=1.0"} <= set(texts)
    assert any(name.startswith("errorbar-l1_ratio-0.5") for name in curve.ids())
    curve.element("line-min")
    curve.element("line-1se")
    assert f"min: alpha = {best['params'][alpha]:.3g}, score {best['mean']:.4g}" in texts
    assert f"1-SE: alpha = {one_se['params'][alpha]:.3g}, score {one_se['mean']:.4g}" in texts
    # glmnet's top axis: nonzero coefficients along the best member's path, at its choices among others.
    top = curve.texts(within="nonzero-axis")
    ratio = best["params"]["regularization.elastic_net.l1_ratio"]
    assert f"nonzero coefficients (l1_ratio={ratio})" in top
    counts = [t for t in top if t.isdigit()]
    assert 3 <= len(counts) <= 9 and {str(best["nonzero"]), str(one_se["nonzero"])} <= set(counts)
    assert int(counts[0]) >= int(counts[-1]), "the counts fall as the penalty grows"

    path = api_client.get(f"/v1/studies/{study['id']}/path").json()
    paths = svg(api_client, f"{plots}/paths")
    texts = paths.texts()
    assert {"Coefficient paths of study 'plot-diabetes-cv'", "l1_ratio = 0.5", "l1_ratio = 1 (lasso)"} <= set(texts)
    assert paths.series() == [
        f"series-{feature}-l1_ratio-{ratio:g}" for ratio in (0.5, 1.0) for feature in path["features"]
    ]
    assert texts.count("coefficient (standardized features)") == 2
    assert texts.count("nonzero coefficients") == 2
    # The chosen members lie on the lasso path (rule 1se along the best member's l1_ratio).
    assert (
        f"min: alpha = {best['params'][alpha]:.3g}" in texts and f"1-SE: alpha = {one_se['params'][alpha]:.3g}" in texts
    )

    compared = svg(api_client, f"{plots}/variants")
    assert "Members of study 'plot-diabetes-cv', the 25 best of 40" in compared.texts()
    assert len(compared.series()) == 25
    assert f"best: alpha={best['params'][alpha]:.3g}, l1_ratio={ratio:.3g}" in compared.texts()

    for plot in STUDY_PLOTS:
        png_matches_svg(api_client, f"{plots}/{plot}")


def test_a_comparison_of_variants_marks_the_best_and_the_grid_plots_do_not_apply(api_client: TestClient) -> None:
    study = trained(api_client, "studies", VARIANTS)
    plots = f"/v1/studies/{study['id']}/plots"
    compared = svg(api_client, f"{plots}/variants")
    texts = compared.texts()
    assert "Variants of study 'plot-which-regularizer'" in texts
    assert compared.series() == ["series-none", "series-l2", "series-dropout"]
    assert {"none", "l2", "dropout", "variant", "mean ± 1 SE", "within 1 SE of the best"} <= set(texts)
    assert {"accuracy (share classified right)", "mean over 3 folds ± 1 SE, higher is better"} <= set(texts)
    assert f"best: {study['best']['variant']}" in texts
    compared.element("best-marker")

    assert refused(api_client, f"{plots}/cv_curve.svg", 409) == (
        f"Study {study['id']} has no penalty axis in its grid (no grid, only variants); cv_curve plots the score "
        "against one of regularization.elastic_net.alpha, regularization.l1, regularization.l2. The variants plot "
        "compares its members."
    )
    assert refused(api_client, f"{plots}/paths.png", 409) == (
        f"Study {study['id']} has no coefficient paths: they are computed for linear regression members solved "
        "along a penalty grid (l1/l2 penalties only, proximal L1), and this study has none."
    )


def test_a_study_with_no_scores_yet_is_409_for_every_plot(api_client: TestClient) -> None:
    study_id = created(api_client.post("/v1/studies", json=ELASTIC_NET_CV))["id"]
    plots = f"/v1/studies/{study_id}/plots"
    nothing = f"Study {study_id} is queued and no member has a score yet; its plots appear as its folds finish."
    assert refused(api_client, f"{plots}/cv_curve.svg", 409) == nothing
    assert refused(api_client, f"{plots}/variants.png", 409) == nothing
    assert refused(api_client, f"{plots}/paths.svg", 409) == (
        f"Study {study_id} is queued; its coefficient paths are computed when it finishes."
    )


def test_the_api_starts_without_importing_matplotlib() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, api.main; print('matplotlib' in sys.modules)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=120,
        check=True,
    ).stdout
    assert loaded.strip() == "False"


def test_the_plot_routes_are_documented_as_images(api_client: TestClient) -> None:
    schema = api_client.get("/openapi.json").json()
    for path, plots in (
        ("/v1/jobs/{job_id}/plots/{plot}.{format}", JOB_PLOTS),
        ("/v1/studies/{study_id}/plots/{plot}.{format}", STUDY_PLOTS),
    ):
        operation = schema["paths"][path]["get"]
        assert set(operation["responses"]["200"]["content"]) == {"image/svg+xml", "image/png"}
        assert {"304", "404", "409", "422"} <= set(operation["responses"])
        kinds = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "path"}
        named = schema["components"]["schemas"][kinds["plot"]["$ref"].rsplit("/", 1)[1]]
        assert named["enum"] == plots
        assert schema["components"]["schemas"]["ImageFormat"]["enum"] == ["svg", "png"]
