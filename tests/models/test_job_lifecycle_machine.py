"""A Hypothesis state machine over the job lifecycle as the workers, the API and the reaper drive it,
on a real SQLite database: terminal states absorb, at most one attempt can write, and results exist
only for succeeded jobs, whatever the order of events."""

from __future__ import annotations

from pathlib import Path
from tempfile import mkdtemp

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine
from core.migrate import upgrade
from models import TERMINAL_STATUSES, Job, JobStatus, transition, update_running
from tests.support.app import default_tenant_id

MAX_ATTEMPTS = 3


class JobLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        url = f"sqlite:///{Path(mkdtemp()) / 'lifecycle.sqlite'}"
        upgrade(url)
        self.engine = make_engine(url)
        self.sessions: sessionmaker[Session] = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.jobs: list[str] = []
        # Attempts a (simulated) worker believes it holds, live or crashed: job -> attempt numbers.
        self.workers: dict[str, set[int]] = {}
        self.crashed: dict[str, set[int]] = {}
        self.ended: dict[str, str] = {}

    def teardown(self) -> None:
        self.engine.dispose()

    def pairs(self, attempts: dict[str, set[int]]) -> list[tuple[str, int]]:
        """(job, attempt) pairs in submission order: job ids are random, so ordering by them would make
        hypothesis's replay of an example draw other jobs than the example did."""
        return sorted(
            ((j, a) for j, s in attempts.items() for a in s), key=lambda pair: (self.jobs.index(pair[0]), pair[1])
        )

    def row(self, job_id: str) -> Job:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job

    @rule()
    def submit(self) -> None:
        with self.sessions() as session:
            job = Job(
                tenant_id=default_tenant_id(session),
                spec={},
                task="classification",
                device="cpu",
                queue="q",
                dataset_ref="d",
                dataset_id="d",
                dataset_name="d",
                dataset_version=1,
                dataset_sha256="0" * 64,
                progress_epochs=3,
            )
            session.add(job)
            session.commit()
            self.jobs.append(job.id)
            self.workers[job.id], self.crashed[job.id] = set(), set()

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        with self.sessions() as session:
            job = transition(session, job_id, JobStatus.RUNNING, source=JobStatus.QUEUED)
            session.commit()
        if job is not None:
            self.workers[job_id].add(job.attempts)

    @precondition(lambda self: any(self.workers.values()))
    @rule(data=st.data(), succeed=st.booleans())
    def finish(self, data: st.DataObject, succeed: bool) -> None:
        job_id, attempt = data.draw(st.sampled_from(self.pairs(self.workers)))
        to = JobStatus.SUCCEEDED if succeed else JobStatus.FAILED
        values = {"result": {"ok": True}} if succeed else {"error_type": "diverged"}
        with self.sessions() as session:
            moved = transition(session, job_id, to, source=JobStatus.RUNNING, attempt=attempt, **values)
            session.commit()
        if moved is not None:
            self.ended[job_id] = to.value
        self.workers[job_id].discard(attempt)

    @precondition(lambda self: any(self.workers.values()))
    @rule(data=st.data())
    def heartbeat_or_write(self, data: st.DataObject) -> None:
        job_id, attempt = data.draw(st.sampled_from(self.pairs(self.workers)))
        with self.sessions() as session:
            owned = update_running(session, job_id, attempt, progress_epoch=attempt)
            session.commit()
        current = self.row(job_id)
        # Only the current attempt of a running job can write.
        assert owned == (current.status == "running" and current.attempts == attempt)

    @precondition(lambda self: any(self.workers.values()))
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        job_id, attempt = data.draw(st.sampled_from(self.pairs(self.workers)))
        self.workers[job_id].discard(attempt)
        self.crashed[job_id].add(attempt)

    @precondition(lambda self: any(self.crashed.values()))
    @rule(data=st.data())
    def reap(self, data: st.DataObject) -> None:
        """The reaper found a stale lease (time has passed): requeue, or fail after MAX_ATTEMPTS."""
        job_id = data.draw(st.sampled_from([j for j in self.jobs if self.crashed[j]]))
        current = self.row(job_id)
        if current.status != "running" or current.attempts not in self.crashed[job_id]:
            return
        with self.sessions() as session:
            if current.attempts - current.requeues >= MAX_ATTEMPTS:
                moved = transition(
                    session, job_id, JobStatus.FAILED, attempt=current.attempts, error_type="worker_lost"
                )
                if moved is not None:
                    self.ended[job_id] = "failed"
            else:
                transition(session, job_id, JobStatus.QUEUED, attempt=current.attempts)
            session.commit()

    @precondition(lambda self: any(self.workers.values()))
    @rule(data=st.data())
    def hand_back(self, data: st.DataObject) -> None:
        job_id, attempt = data.draw(st.sampled_from(self.pairs(self.workers)))
        with self.sessions() as session:
            transition(
                session, job_id, JobStatus.QUEUED, source=JobStatus.RUNNING, attempt=attempt, requeues=Job.requeues + 1
            )
            session.commit()
        self.workers[job_id].discard(attempt)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        with self.sessions() as session:
            moved = transition(session, job_id, JobStatus.CANCELED)
            session.commit()
        if moved is not None:
            self.ended[job_id] = "canceled"

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def resurrect(self, data: st.DataObject) -> None:
        """Anything trying to move a finished job anywhere changes nothing."""
        job_id = data.draw(st.sampled_from(self.jobs))
        with self.sessions() as session:
            session.execute(update(Job).where(Job.id == job_id).values(progress_epoch=Job.progress_epoch))
            for to in JobStatus:
                if job_id in self.ended:
                    assert transition(session, job_id, to) is None
            session.commit()

    @invariant()
    def terminal_states_absorb_and_results_belong_to_successes(self) -> None:
        for job_id in self.jobs:
            job = self.row(job_id)
            if job_id in self.ended:
                assert job.status == self.ended[job_id], "a terminal status never changes"
                assert job.finished_at is not None
            else:
                assert job.status not in {s.value for s in TERMINAL_STATUSES}
            assert (job.result is not None) == (job.status == "succeeded")
            # Attempts lost to dead workers never exceed the limit: the reaper fails the job at it.
            assert job.attempts - job.requeues <= MAX_ATTEMPTS


JobLifecycle.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestJobLifecycle = JobLifecycle.TestCase
