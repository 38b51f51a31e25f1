"""`regtrain keys` and `regtrain tenants`, run as an operator runs them: real commands on a real SQLite
database under REGTRAIN_HOME, judged by what they print and by whether the keys they make authenticate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from api.services.keys import Caller, authenticate, hash_key
from core.db import make_engine
from core.errors import Unauthorized

TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
KEY_PATTERN = re.compile(r"^key\s+(rt_[A-Za-z0-9_-]{43})$", re.MULTILINE)


def regtrain(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("REGTRAIN_")}
    env["REGTRAIN_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=120
    )


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2 and one sentence on stderr naming `words`: no traceback, nothing on stdout."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("regtrain: ")
    for word in words:
        assert word in lines[0]
    assert result.stdout == ""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    migrated = regtrain(home, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    return home


@pytest.fixture
def check_key(home: Path) -> Iterator[Callable[[str], Caller]]:
    """Authenticates a key as the API does, each time in a session of its own: an open SQLite transaction
    would hold the write lock that the commands under test need."""
    engine = make_engine(f"sqlite:///{home / 'regtrain.sqlite'}")

    def check(key: str) -> Caller:
        with Session(engine, expire_on_commit=False) as session:
            return authenticate(session, key)

    yield check
    engine.dispose()


def columns(line: str) -> list[str]:
    """The cells of a row of a printed table: columns are at least two spaces apart."""
    return re.split(r"\s{2,}", line.strip())


def created_key(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    match = KEY_PATTERN.search(result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_a_created_key_authenticates_is_listed_by_prefix_only_and_stops_working_when_revoked(
    home: Path, check_key: Callable[[str], Caller]
) -> None:
    created = regtrain(home, "keys", "create", "--tenant", "acme", "--name", "ci", "--create-tenant")
    key = created_key(created)
    assert "tenant acme created" in created.stdout
    assert re.search(r"^scopes\s+read,write$", created.stdout, re.MULTILINE)

    caller = check_key(key)
    assert caller.scopes == {"read", "write"}
    assert not caller.allows("admin")

    listing = regtrain(home, "keys", "list")
    assert listing.returncode == 0, listing.stderr
    header, *rows = [columns(line) for line in listing.stdout.splitlines()]
    assert header == ["id", "tenant", "name", "prefix", "scopes", "created (UTC)", "last used (UTC)", "revoked (UTC)"]
    assert len(rows) == 1
    key_id, tenant, name, prefix, scopes, _, last_used, revoked = rows[0]
    assert (key_id, tenant, name, scopes, revoked) == (caller.key_id, "acme", "ci", "read,write", "-")
    assert re.fullmatch(TIMESTAMP, last_used), "authenticating counts as a use"
    assert key.startswith(prefix) and len(prefix) < len(key)
    assert key not in listing.stdout
    assert hash_key(key) not in listing.stdout

    revoked = regtrain(home, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert f"key {key_id} ({prefix}, ci) revoked" in revoked.stdout
    with pytest.raises(Unauthorized, match="revoked"):
        check_key(key)
    revoked_at = columns(regtrain(home, "keys", "list").stdout.splitlines()[1])[-1]
    assert re.fullmatch(TIMESTAMP, revoked_at)


def test_an_admin_key_for_a_tenant_made_with_tenants_create(home: Path, check_key: Callable[[str], Caller]) -> None:
    tenant = regtrain(home, "tenants", "create", "lab", "--max-running-jobs", "2")
    assert tenant.returncode == 0, tenant.stderr
    key = created_key(regtrain(home, "keys", "create", "--tenant", "lab", "--name", "ops", "--scopes", "admin"))
    assert check_key(key).allows("admin")

    tenants = regtrain(home, "tenants", "list").stdout
    lab = [columns(line) for line in tenants.splitlines() if columns(line)[1] == "lab"]
    assert [row[2:4] for row in lab] == [["500 (default)", "2"]]
    only_lab = regtrain(home, "keys", "list", "--tenant", "lab").stdout.splitlines()
    assert [columns(row)[1:3] for row in only_lab[1:]] == [["lab", "ops"]]


def test_unknown_tenant_exits_2_with_a_sentence(home: Path) -> None:
    result = regtrain(home, "keys", "create", "--tenant", "acme", "--name", "ci")
    assert_refused(result, "'acme'", "--create-tenant")
    assert_refused(regtrain(home, "keys", "list", "--tenant", "acme"), "'acme'")


def test_a_bad_scope_exits_2_and_creates_no_tenant(home: Path) -> None:
    result = regtrain(home, "keys", "create", "--tenant", "acme", "--name", "ci", "--create-tenant", "--scopes", "rw")
    assert_refused(result, "read, write, admin", "'rw'")
    assert "acme" not in regtrain(home, "tenants", "list").stdout


def test_unknown_key_id_and_duplicate_tenant_exit_2(home: Path) -> None:
    assert_refused(regtrain(home, "keys", "revoke", "no-such-id"), "'no-such-id'")
    assert regtrain(home, "tenants", "create", "lab").returncode == 0
    assert_refused(regtrain(home, "tenants", "create", "lab"), "'lab'")


def test_keys_new_prints_a_fresh_key_and_touches_nothing(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    first, second = regtrain(home, "keys", "new"), regtrain(home, "keys", "new")
    for result in (first, second):
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"rt_[A-Za-z0-9_-]{43}\n", result.stdout)
    assert first.stdout != second.stdout
    assert not home.exists()


def test_commands_on_a_database_that_was_never_migrated_say_to_migrate(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    assert_refused(regtrain(home, "keys", "list"), "regtrain migrate")
    assert not (home / "regtrain.sqlite").exists(), "checking must not create an empty database"
