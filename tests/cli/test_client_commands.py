"""The `regtrain` client commands as a user runs them: the installed console script, in a shell with only
REGTRAIN_URL and REGTRAIN_API_KEY set, against real API and worker processes. Judged by what they print
(checked against what the API says), their exit status, and the files they write."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from cli.main import build_parser
from tests.support.app import ADMIN_KEY
from tests.support.servers import free_port, wait_until
from tests.support.stack import Stack, start_stack

pytestmark = pytest.mark.integration

REGTRAIN = str(Path(sys.executable).with_name("regtrain"))
EPOCH_LINE = re.compile(r"^epoch +(\d+)/(\d+) \[[#.]{20}\]  train loss ")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(Path(tmp_path_factory.mktemp("client-stack")), database_url=None, broker_url=None)
    yield running
    running.stop()


@pytest.fixture
def user_env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    """A user's shell elsewhere: the API's address and a key, and a REGTRAIN_HOME that holds no key."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("REGTRAIN_")}
    env.update(REGTRAIN_URL=stack.base_url, REGTRAIN_API_KEY=ADMIN_KEY, REGTRAIN_HOME=str(tmp_path / "elsewhere"))
    return env


def regtrain(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REGTRAIN, *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def spec_file(directory: Path, body: dict[str, Any], name: str = "spec.json") -> str:
    path = directory / name
    path.write_text(json.dumps(body, indent=2))
    return str(path)


def assert_sentence(result: subprocess.CompletedProcess[str], *lines: str) -> None:
    """Exit status 2, exactly these lines on stderr (no traceback) and nothing on stdout."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == list(lines)
    assert result.stdout == ""


def epoch_numbers(stdout: str) -> list[tuple[int, int]]:
    return [(int(m[1]), int(m[2])) for line in stdout.splitlines() if (m := EPOCH_LINE.match(line))]


def row_of(table: str, identifier: str) -> list[str]:
    return next(re.split(r"\s{2,}", line) for line in table.splitlines() if line.startswith(identifier))


IRIS = {"name": "iris five", "dataset": "builtin:iris", "model": {"hidden_layers": [8]}, "training": {"epochs": 5}}
DIVERGING = {
    "dataset": "builtin:diabetes",
    "model": {"type": "linear"},
    "optimizer": {"type": "sgd", "lr": 10.0},
    "training": {"epochs": 50, "standardize": False},
}


@pytest.fixture(scope="module")
def followed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], str]:
    """`regtrain submit --follow` of a small job, its output going to a pipe; and the job's id."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("REGTRAIN_")}
    env.update(REGTRAIN_URL=stack.base_url, REGTRAIN_API_KEY=ADMIN_KEY)
    directory = tmp_path_factory.mktemp("followed")
    env["REGTRAIN_HOME"] = str(directory / "home")
    result = regtrain(env, "submit", spec_file(directory, IRIS), "--follow")
    first = result.stdout.splitlines()[0] if result.stdout else ""
    assert first.startswith("job ") and first.endswith(" queued"), (result.stdout, result.stderr, stack.logs())
    return result, first.split()[1]


def test_submit_follow_prints_each_epoch_once_in_order_then_the_result(
    stack: Stack, followed: tuple[subprocess.CompletedProcess[str], str]
) -> None:
    result, job_id = followed
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    job = stack.client.get(f"/v1/jobs/{job_id}").json()
    metrics = stack.client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    assert job["status"] == "succeeded"
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"job {job_id} queued", f"job {job_id} running"]
    assert epoch_numbers(result.stdout) == [(n, 5) for n in range(1, 6)]
    epoch_lines = [line for line in lines if EPOCH_LINE.match(line)]
    for line, recorded in zip(epoch_lines, metrics, strict=True):
        assert f"val accuracy {recorded['val_accuracy']:.4f}" in line
    assert f"job {job_id} succeeded" in lines
    validation = row_of(result.stdout, "validation")
    assert validation[:3] == [
        "validation",
        f"{job['result']['validation']['data_loss']:.4g}",
        f"{job['result']['validation']['accuracy']:.4g}",
    ]
    assert f"zero_fraction {job['result']['weights']['zero_fraction']:.4f}" in result.stdout
    # Written to a pipe: plain lines, no carriage returns or escape sequences.
    assert not re.search(r"[\x00-\x09\x0b-\x1f]", result.stdout)


def test_follow_replays_a_finished_job_exactly_as_it_was_followed_live(
    user_env: dict[str, str], followed: tuple[subprocess.CompletedProcess[str], str]
) -> None:
    live, job_id = followed
    again = regtrain(user_env, "follow", job_id)
    assert again.returncode == 0, again.stderr
    # Elapsed time and ETA come from the epochs' recorded durations, so the replay prints the same lines.
    assert again.stdout == live.stdout


def test_on_a_terminal_follow_redraws_one_line(
    user_env: dict[str, str], followed: tuple[subprocess.CompletedProcess[str], str]
) -> None:
    _, job_id = followed
    primary, secondary = pty.openpty()
    wide = {**user_env, "COLUMNS": "200"}  # wide enough for the whole line
    with subprocess.Popen([REGTRAIN, "follow", job_id], env=wide, stdout=secondary) as process:
        os.close(secondary)
        output = b""
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            assert ready, "the command wrote nothing for 60 s"
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closes when the command exits
                break
            if not chunk:
                break
            output += chunk
        os.close(primary)
        assert process.wait(timeout=60) == 0
    text = output.decode().replace("\r\n", "\n")  # the terminal turns each LF into CR LF
    bar_line = next(line for line in text.split("\n") if line.startswith("\repoch"))
    redraws = bar_line.split("\r")[1:]
    assert [EPOCH_LINE.match(part.rstrip()) is not None for part in redraws] == [True] * 5
    assert f"job {job_id} succeeded" in text.split("\n")


def test_a_failed_job_ends_with_its_error_and_exit_status_1(
    stack: Stack, user_env: dict[str, str], tmp_path: Path
) -> None:
    result = regtrain(user_env, "submit", spec_file(tmp_path, DIVERGING), "--follow")
    job_id = result.stdout.split()[1]
    job = stack.client.get(f"/v1/jobs/{job_id}").json()
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert job["status"] == "failed" and job["error"]["type"] == "diverged"
    lines = result.stdout.splitlines()
    assert lines[-2:] == [f"job {job_id} failed", f"error  diverged: {job['error']['message']}"]


def test_submit_without_follow_prints_the_id_and_status(stack: Stack, user_env: dict[str, str], tmp_path: Path) -> None:
    result = regtrain(user_env, "submit", spec_file(tmp_path, {"dataset": "builtin:iris", "training": {"epochs": 1}}))
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.split()[1]
    assert result.stdout == f"job {job_id} queued\n"
    stack.wait_for(job_id)


def test_jobs_lists_a_table_that_agrees_with_the_api(
    stack: Stack, user_env: dict[str, str], followed: tuple[subprocess.CompletedProcess[str], str]
) -> None:
    _, job_id = followed
    job = stack.client.get(f"/v1/jobs/{job_id}").json()
    result = regtrain(user_env, "jobs")
    assert result.returncode == 0, result.stderr
    header = re.split(r"\s{2,}", result.stdout.splitlines()[0])
    assert header == ["ID", "NAME", "STATUS", "DATASET", "EPOCHS", "CREATED", "VALIDATION"]
    row = row_of(result.stdout, job_id)
    assert row[:5] == [job_id, "iris five", "succeeded", "builtin:iris v1", "5/5"]
    assert row[6] == f"accuracy {job['result']['validation']['accuracy']:.4f}"
    total = stack.client.get("/v1/jobs").json()["total"]
    assert result.stdout.splitlines()[-1] == f"{total} jobs"

    failed = regtrain(user_env, "jobs", "--status", "failed", "--limit", "1")
    assert failed.returncode == 0, failed.stderr
    rows = failed.stdout.splitlines()[1:-1]
    assert len(rows) == 1 and re.split(r"\s{2,}", rows[0])[2] == "failed"


def test_show_summarizes_a_job_and_json_prints_the_apis_answer(
    stack: Stack, user_env: dict[str, str], followed: tuple[subprocess.CompletedProcess[str], str]
) -> None:
    _, job_id = followed
    job = stack.client.get(f"/v1/jobs/{job_id}").json()
    shown = regtrain(user_env, "show", job_id)
    assert shown.returncode == 0, shown.stderr
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in shown.stdout.splitlines()[:9])
    assert fields["job"] == f"{job_id} (iris five)"
    assert fields["status"] == "succeeded"
    assert fields["dataset"] == "builtin:iris v1"
    assert fields["model"] == "mlp [8], adam lr 0.001"
    assert fields["progress"] == "epoch 5/5"
    assert row_of(shown.stdout, "train")[2] == f"{job['result']['train']['accuracy']:.4g}"

    raw = regtrain(user_env, "show", job_id, "--json")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout) == job


def test_plot_writes_the_apis_svg_and_png(
    user_env: dict[str, str], followed: tuple[subprocess.CompletedProcess[str], str], tmp_path: Path
) -> None:
    _, job_id = followed
    svg = regtrain(user_env, "plot", job_id, "--out", "curves.svg", cwd=tmp_path)
    assert svg.returncode == 0, svg.stderr
    root = ElementTree.parse(tmp_path / "curves.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    size = (tmp_path / "curves.svg").stat().st_size
    assert svg.stdout == f"wrote curves.svg (learning_curves of job {job_id}, {size} bytes)\n"

    weights = str(tmp_path / "weights.png")
    png = regtrain(user_env, "plot", job_id, "--out", weights, "--plot", "weights", "--epoch", "2")
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "weights.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["curves.svg", "weights.png"], "no temporary left"


def test_plot_refusals_are_sentences(
    stack: Stack, user_env: dict[str, str], followed: tuple[subprocess.CompletedProcess[str], str], tmp_path: Path
) -> None:
    _, job_id = followed
    assert_sentence(
        regtrain(user_env, "plot", job_id, "--out", str(tmp_path / "curves.jpg")),
        f"regtrain: cannot tell the image format from {str(tmp_path / 'curves.jpg')!r}: name the file *.svg or *.png.",
    )
    assert_sentence(
        regtrain(user_env, "plot", "no-such-id", "--out", str(tmp_path / "x.svg")),
        "regtrain: there is no job or study with id 'no-such-id'.",
    )
    assert_sentence(
        regtrain(user_env, "plot", job_id, "--out", str(tmp_path / "x.svg"), "--plot", "cv_curve"),
        "regtrain: a job has no plot 'cv_curve'; its plots are learning_curves, penalties, sparsity, weights.",
    )
    # The API's own refusal: a job with no recorded epochs has nothing to plot (409).
    failed = stack.submit(DIVERGING)
    stack.wait_for(failed["id"])
    refused = regtrain(user_env, "plot", failed["id"], "--out", str(tmp_path / "x.svg"))
    detail = stack.client.get(f"/v1/jobs/{failed['id']}/plots/learning_curves.svg").json()["detail"]
    assert_sentence(refused, f"regtrain: {detail}")
    assert list(tmp_path.iterdir()) == []


def test_unknown_ids_are_sentences_even_when_they_look_like_paths(user_env: dict[str, str]) -> None:
    for command in ("show", "follow"):
        # Sent as one path segment: "../keys" never reaches GET /v1/keys.
        for unknown in ("no-such-id", "../keys", ".."):
            assert_sentence(
                regtrain(user_env, command, unknown), f"regtrain: there is no job or study with id {unknown!r}."
            )


def test_an_api_that_does_not_answer_is_named(user_env: dict[str, str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {**user_env, "REGTRAIN_URL": url}
    for args in (["jobs"], ["show", "x"], ["submit", spec_file(tmp_path, IRIS), "--follow"]):
        result = regtrain(env, *args)
        assert result.returncode == 2, result
        assert result.stderr.startswith(f"regtrain: cannot reach the API at {url} (")
        assert result.stderr.endswith("); is `regtrain up` running there?\n")
        assert "Traceback" not in result.stderr


def test_a_missing_or_refused_key_is_the_servers_sentence(user_env: dict[str, str]) -> None:
    no_key = {name: value for name, value in user_env.items() if name != "REGTRAIN_API_KEY"}
    missing = regtrain(no_key, "jobs")
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1] == (
        "regtrain: no key was sent: set REGTRAIN_API_KEY, or run where REGTRAIN_HOME holds admin.key."
    )
    assert missing.stderr.startswith("regtrain: This request needs an API key")
    assert_sentence(
        regtrain({**user_env, "REGTRAIN_API_KEY": "rt_" + "x" * 43}, "jobs"),
        "regtrain: This API key is not valid: it is unknown or has been revoked.",
    )


def test_the_key_file_of_regtrain_home_is_sent_when_no_key_is_set(user_env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "admin.key").write_text(ADMIN_KEY + "\n")
    env = {name: value for name, value in user_env.items() if name != "REGTRAIN_API_KEY"}
    env["REGTRAIN_HOME"] = str(home)
    result = regtrain(env, "jobs", "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("ID ")


def test_spec_files_the_command_cannot_use_are_sentences(user_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert_sentence(regtrain(user_env, "submit", str(missing)), f"regtrain: there is no file {missing}.")
    broken = tmp_path / "broken.json"
    broken.write_text('{"dataset": "builtin:iris",\n  "training": {"epochs": 3,}}\n')
    assert_sentence(
        regtrain(user_env, "study", str(broken), "--follow"),
        f"regtrain: {broken} is not valid JSON: Expecting property name enclosed in double quotes at line 2, "
        "column 28.",
    )
    invalid = spec_file(tmp_path, {"dataset": "builtin:iris", "training": {"epochs": "many"}, "colour": "red"})
    assert_sentence(
        regtrain(user_env, "submit", invalid),
        "regtrain: the API refused the request:",
        "  training.epochs: Input should be a valid integer",
        "  colour: Extra inputs are not permitted",
    )


def test_study_follow_shows_the_fits_then_the_chosen_members(
    stack: Stack, user_env: dict[str, str], tmp_path: Path
) -> None:
    study_spec = {
        "name": "tiny lasso",
        "job": {"dataset": "builtin:diabetes", "model": {"type": "linear"}, "training": {"validation_fraction": 0}},
        "search": {"regularization.l1": {"path": {"n": 5, "eps": 0.01}}},
        "cv": {"folds": 3},
        "select": {"metric": "mse", "rule": "1se"},
    }
    result = regtrain(user_env, "study", spec_file(tmp_path, study_spec), "--follow")
    assert result.returncode == 0, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    study_id = lines[0].split()[1]
    study = stack.client.get(f"/v1/studies/{study_id}").json()
    assert study["status"] == "succeeded"
    assert lines[:2] == [f"study {study_id} queued", f"study {study_id} running"]
    fits = [line for line in lines if line.startswith("fits ")]
    assert fits[-1] == "fits 15/15 [####################] 100%"
    assert len(fits) == len(set(fits)), "each progress line once"
    summary = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in lines[2 + len(fits) :])
    assert summary["study"] == f"{study_id} (tiny lasso)"
    assert summary["status"] == "succeeded"
    assert summary["members"] == "5, scored by mse, rule 1se, 3-fold cross-validation"
    for label, key in (("best", "best"), ("1-SE", "one_se"), ("selected", "selected")):
        member = study[key]
        assert summary[label] == (
            f"member {member['position']} l1={member['params']['regularization.l1']:.4g}: "
            f"mse {member['mean']:.4g} ± {member['standard_error']:.4g}"
        )

    listed = regtrain(user_env, "studies")
    assert listed.returncode == 0, listed.stderr
    assert row_of(listed.stdout, study_id)[:5] == [study_id, "tiny lasso", "succeeded", "builtin:diabetes v1", "15/15"]

    plotted = regtrain(user_env, "plot", study_id, "--out", str(tmp_path / "cv.svg"))
    assert plotted.returncode == 0, plotted.stderr
    assert plotted.stdout.startswith(f"wrote {tmp_path / 'cv.svg'} (cv_curve of study {study_id}, ")
    ElementTree.parse(tmp_path / "cv.svg")


def test_ctrl_c_stops_following_and_the_job_goes_on(stack: Stack, user_env: dict[str, str], tmp_path: Path) -> None:
    long_job = {"dataset": "builtin:digits", "training": {"epochs": 2000, "early_stopping": None}}
    output = tmp_path / "out.txt"
    with output.open("w") as out:
        process = subprocess.Popen(
            [REGTRAIN, "submit", spec_file(tmp_path, long_job), "--follow"],
            env=user_env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            # A terminal's Ctrl-C, whatever started the tests: a runner started in the background (`&`) passes
            # on SIGINT ignored, and Python then never raises KeyboardInterrupt.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        wait_until(lambda: epoch_numbers(output.read_text()), timeout=120, what="the first epoch line")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    job_id = output.read_text().split()[1]
    assert process.returncode == 130
    assert stderr == (
        f"regtrain: stopped following; the job goes on. Follow it again with `regtrain follow {job_id}`.\n"
    )
    assert stack.client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    assert stack.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    stack.wait_for(job_id)


def readme_commands() -> list[list[str]]:
    """Every `regtrain ...` command in the README's shell blocks, with optional `[...]` parts left out."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL):
        for line in block.splitlines():
            for part in re.split(r"&&|\$\(|\)", line.split("#", 1)[0]):
                if part.strip().startswith("regtrain "):
                    commands.append(shlex.split(re.sub(r"\[[^\]]*\]", "", part))[1:])
    return commands


def test_every_regtrain_command_in_the_readme_is_one_the_command_takes() -> None:
    commands = readme_commands()
    assert {"submit", "study", "follow", "jobs", "studies", "show", "plot", "up", "keys"} <= {c[0] for c in commands}
    parser = build_parser()
    for words in commands:
        assert parser.parse_args(words).command == words[0], words


def test_the_readme_puts_the_command_on_the_path_before_its_first_use() -> None:
    readme = (ROOT / "README.md").read_text()
    first_use = min(readme.index(f"regtrain {name}") for name in ("submit", "jobs", "up", "keys", "migrate"))
    assert readme.index("source .venv/bin/activate") < first_use
