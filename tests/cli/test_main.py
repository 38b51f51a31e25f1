"""What every `regtrain` command shares: its process's log level comes from REGTRAIN_LOG_LEVEL, and a
setting it cannot use is a sentence, not a traceback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import log_level
from core.settings import get_settings


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("setting", "level"), [("warning", logging.WARNING), ("DEBUG", logging.DEBUG), ("error", logging.ERROR)]
)
def test_the_log_level_setting_is_the_commands(
    fresh_settings: None, monkeypatch: pytest.MonkeyPatch, setting: str, level: int
) -> None:
    monkeypatch.setenv("REGTRAIN_LOG_LEVEL", setting)
    assert log_level() == level


def test_unreadable_settings_leave_info_for_the_command_to_report(
    fresh_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGTRAIN_LOG_LEVEL", "loud")
    assert log_level() == logging.INFO


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("REGTRAIN_LOG_LEVEL", "loud", "REGTRAIN_LOG_LEVEL: Value error, the log level must be one of critical, error"),
        ("REGTRAIN_PORT", "eighty", "REGTRAIN_PORT: Input should be a valid integer"),
    ],
)
def test_a_setting_a_command_cannot_use_is_a_sentence_without_its_value(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGTRAIN_")}
    env.update(REGTRAIN_HOME=str(tmp_path), **{variable: value})
    for command in (["jobs"], ["migrate"]):
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"regtrain: a setting is not valid: {said}"), done.stderr
        assert "Traceback" not in done.stderr and value not in done.stderr
