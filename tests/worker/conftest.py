from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.builtins import BUILTINS
from core.settings import Settings
from tests.support.app import configure, release
from worker import runner
from worker.datasets import load_dataset


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A migrated home for running jobs in this process with worker.runner."""
    # Long enough that a loaded machine never times out a test that is not about the limit.
    configured = configure(tmp_path, monkeypatch, job_time_limit_seconds="120")
    # Loaded before any attempt starts its clock, as a warm worker has it.
    load_dataset("builtin:digits", BUILTINS["digits"].sha256, "target")
    yield configured
    runner.SHUTTING_DOWN.clear()
    release()
