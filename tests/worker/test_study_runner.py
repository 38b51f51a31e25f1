"""The study runner in this process against a real database: a study stopped mid-way (the worker shuts
down after its first fold) resumes from the folds it recorded and ends with exactly the results of an
uninterrupted run; a one-member study scores its member as the job with that spec does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.schemas.study import StudyCreate
from api.services.studies import create_study
from core.db import get_session_factory
from core.settings import Settings, get_settings
from models import Job, StudyMember
from tests.support.app import configure, default_tenant_id, release
from tests.support.servers import wait_until
from worker import runner

STUDY: dict[str, Any] = {
    "job": {
        "dataset": "builtin:wine",
        "model": {"type": "mlp", "hidden_layers": [8]},
        "training": {"epochs": 4, "batch_size": 16, "early_stopping": None},
    },
    "variants": {"none": {}, "l2": {"regularization": {"l2": 0.01}}, "dropout": {"model": {"dropout": 0.3}}},
    "cv": {"folds": 3},
}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    configured = configure(tmp_path, monkeypatch)
    yield configured
    runner.SHUTTING_DOWN.clear()
    release()


def submit(body: dict[str, Any]) -> str:
    with get_session_factory()() as session:
        return create_study(session, get_settings(), default_tenant_id(session), StudyCreate.model_validate(body)).id


def read(study_id: str) -> tuple[Job, list[StudyMember]]:
    with get_session_factory()() as session:
        study = session.get(Job, study_id)
        assert study is not None
        members = list(
            session.scalars(select(StudyMember).where(StudyMember.study_id == study_id).order_by(StudyMember.position))
        )
        return study, members


def outcome(study_id: str) -> tuple[Any, list[Any]]:
    study, members = read(study_id)
    return study.result, [(m.fold_scores, m.mean_score, m.standard_error, m.train_score) for m in members]


def test_a_study_stopped_mid_way_resumes_with_the_same_results(settings: Settings) -> None:
    uninterrupted = submit(STUDY)
    runner.run_job(uninterrupted)
    assert read(uninterrupted)[0].status == "succeeded"

    interrupted = submit(STUDY)

    def shut_down_after_the_first_fold() -> None:
        wait_until(
            lambda: all(m.fold_scores[0] is not None for m in read(interrupted)[1]),
            timeout=60,
            interval=0.01,
            what="the first fold",
        )
        runner.SHUTTING_DOWN.set()

    watcher = threading.Thread(target=shut_down_after_the_first_fold)
    watcher.start()
    runner.run_job(interrupted)
    watcher.join()
    study, members = read(interrupted)
    assert (study.status, study.requeues) == ("queued", 1)
    assert all(m.fold_scores[0] is not None for m in members)
    assert any(None in m.fold_scores for m in members), "the shutdown came after the study had finished"

    runner.SHUTTING_DOWN.clear()
    runner.run_job(interrupted)
    study, _ = read(interrupted)
    assert (study.status, study.attempts) == ("succeeded", 2)
    assert outcome(interrupted) == outcome(uninterrupted)


def test_a_one_member_study_scores_its_member_as_the_job_does(settings: Settings) -> None:
    from api.schemas.job import JobCreate
    from api.services.jobs import create_job

    job_spec = {**STUDY["job"], "training": {**STUDY["job"]["training"], "validation_fraction": 0.25}}
    study_id = submit({"job": job_spec, "select": {"metric": "data_loss"}})
    with get_session_factory()() as session:
        job_id = create_job(session, get_settings(), default_tenant_id(session), JobCreate.model_validate(job_spec)).id
    runner.run_job(study_id)
    runner.run_job(job_id)
    study, members = read(study_id)
    with get_session_factory()() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.result is not None
        validation = job.result["validation"]
    assert study.status == "succeeded"
    (member,) = members
    # Without cv the member trains on the job's own split: its score is the job's, bit for bit.
    assert member.fold_scores == [validation["data_loss"]]
    assert member.epochs == job.result["epochs_run"]
