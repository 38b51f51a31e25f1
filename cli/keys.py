"""`regtrain keys` and `regtrain tenants`: API keys and tenants managed on the database directly, by an
operator on a host that has the service's settings (like `regtrain migrate`, they need no key); and the
notice that `regtrain up` and `regtrain api` print about the first admin key.

Every failure the operator can fix (an unknown tenant or key id, a bad scope, a database that is not
migrated or not reachable) is one sentence on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.errors import DomainError, NotFound
from core.settings import Settings, get_settings

# Exit status for a request the operator can correct, as argparse uses for bad arguments.
USAGE_ERROR = 2
# Rows read per query when listing; the listing itself prints every row.
LIST_PAGE_SIZE = 500
BEARER_HINT = "send it as Authorization: Bearer <key>"


class SchemaNotReady(Exception):
    """The database is missing or not at the latest migration."""


def fail(message: str) -> int:
    print(f"regtrain: {message}", file=sys.stderr)
    return USAGE_ERROR


def redact(url: str) -> str:
    """A database URL without its credentials, fit to print."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def require_schema_at_head(settings: Settings) -> None:
    """Checked before any command reads tenants or keys, so that a missing `regtrain migrate` is named
    as such instead of surfacing as "no such table"."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from core.db import get_engine
    from core.migrate import alembic_config

    if settings.embedded:
        # Checked first: opening a SQLite URL would create an empty database file where none was.
        database = settings.home / "regtrain.sqlite"
        if not database.is_file():
            raise SchemaNotReady(
                f"there is no database at {database.resolve()}: run `regtrain migrate` first, or set REGTRAIN_HOME "
                "to the service's data directory."
            )
    # Reading the revision is not news; alembic logs it at INFO as if it were.
    alembic_log = logging.getLogger("alembic.runtime.migration")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        with get_engine().connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        alembic_log.setLevel(level)
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    if current != heads:
        raise SchemaNotReady(
            f"the database at {redact(settings.resolved_database_url)} is not at the latest schema: "
            "run `regtrain migrate` first."
        )


def run_on_database(work: Callable[[Session], int], unreachable_status: int = USAGE_ERROR) -> int:
    """Runs `work` in one session after checking the schema, turning the errors an operator can fix into
    a sentence and exit status 2 (`unreachable_status` when the database cannot be reached at all)."""
    from core.db import session_scope

    settings = get_settings()
    try:
        require_schema_at_head(settings)
        with session_scope() as session:
            return work(session)
    except SchemaNotReady as error:
        return fail(str(error))
    except DomainError as error:
        return fail(error.detail)
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else "unknown error"
        fail(f"cannot use the database at {redact(settings.resolved_database_url)}: {reason}.")
        return unreachable_status


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def parse_scopes(text: str) -> list[str]:
    return [scope.strip() for scope in text.split(",") if scope.strip()]


# Tenants


def cmd_tenants_create(args: argparse.Namespace) -> int:
    from api.services.keys import create_tenant

    limits = {
        "max_queued_jobs": args.max_queued_jobs,
        "max_running_jobs": args.max_running_jobs,
        "max_stored_bytes": args.max_stored_bytes,
    }

    def work(session: Session) -> int:
        tenant = create_tenant(session, args.name, {key: value for key, value in limits.items() if value is not None})
        print(f"tenant {tenant.name} created (id {tenant.id})")
        return 0

    return run_on_database(work)


def cmd_tenants_list(_: argparse.Namespace) -> int:
    from api.services.keys import list_tenants

    settings = get_settings()

    def limit(value: int | None, default: int) -> str:
        return str(value) if value is not None else f"{default} (default)"

    def work(session: Session) -> int:
        tenants = _all_pages(lambda limit, offset: list_tenants(session, limit, offset))
        rows = [
            [
                tenant.id,
                tenant.name,
                limit(tenant.max_queued_jobs, settings.tenant_max_queued_jobs),
                limit(tenant.max_running_jobs, settings.tenant_max_running_jobs),
                limit(tenant.max_stored_bytes, settings.tenant_max_stored_bytes),
                _when(tenant.created_at),
            ]
            for tenant in tenants
        ]
        header = ["id", "name", "max queued jobs", "max running jobs", "max stored bytes", "created (UTC)"]
        print(format_table(header, rows))
        return 0

    return run_on_database(work)


def _all_pages(page: Callable[[int, int], tuple[list[Any], int]]) -> list[Any]:
    rows: list[Any] = []
    while True:
        batch, total = page(LIST_PAGE_SIZE, len(rows))
        rows.extend(batch)
        if not batch or len(rows) >= total:
            return rows


# Keys


def cmd_keys_create(args: argparse.Namespace) -> int:
    from api.services.keys import check_scopes, create_key, create_tenant, find_tenant

    def work(session: Session) -> int:
        # Scopes are checked before a tenant is created, so that a typo leaves nothing behind.
        scopes = check_scopes(parse_scopes(args.scopes))
        try:
            tenant = find_tenant(session, args.tenant)
        except NotFound:
            if not args.create_tenant:
                raise NotFound(
                    f"There is no tenant with id or name {args.tenant!r}; add --create-tenant, or run "
                    f"`regtrain tenants create {args.tenant}` first."
                ) from None
            tenant = create_tenant(session, args.tenant)
            print(f"tenant {tenant.name} created (id {tenant.id})")
        row, key = create_key(session, tenant.id, args.name, scopes)
        print(f"key     {key}")
        print(f"id      {row.id}")
        print(f"prefix  {row.prefix}")
        print(f"tenant  {tenant.name}")
        print(f"scopes  {','.join(row.scopes)}")
        print("The key is shown only this once (only its SHA-256 is stored); send it as Authorization: Bearer <key>.")
        return 0

    return run_on_database(work)


def cmd_keys_list(args: argparse.Namespace) -> int:
    from api.services.keys import key_read, list_keys, tenant_names

    def work(session: Session) -> int:
        rows = _all_pages(lambda limit, offset: list_keys(session, args.tenant, limit, offset))
        names = tenant_names(session)
        table = []
        for row in rows:
            key = key_read(row, names)
            table.append(
                [
                    key["id"],
                    key["tenant"],
                    key["name"],
                    key["prefix"],
                    ",".join(key["scopes"]),
                    _when(key["created_at"]),
                    _when(key["last_used_at"]),
                    _when(key["revoked_at"]),
                ]
            )
        header = ["id", "tenant", "name", "prefix", "scopes", "created (UTC)", "last used (UTC)", "revoked (UTC)"]
        print(format_table(header, table))
        return 0

    return run_on_database(work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from api.services.keys import revoke_key

    def work(session: Session) -> int:
        row = revoke_key(session, args.id)
        revoked_at = _when(row.revoked_at)
        print(f"key {row.id} ({row.prefix}, {row.name}) revoked at {revoked_at} UTC; it is refused from now on")
        return 0

    return run_on_database(work)


def cmd_keys_new(_: argparse.Namespace) -> int:
    from api.services.keys import new_key

    print(new_key())
    return 0


def add_commands(commands: Any) -> None:
    """The `keys` and `tenants` subcommands, added to the `regtrain` parser's subparsers."""
    from api.services.keys import SCOPES

    tenants = commands.add_parser("tenants", help="Create and list tenants (on the database, no key needed).")
    tenant_commands = tenants.add_subparsers(dest="tenants_command", required=True)
    create_tenant = tenant_commands.add_parser("create", help="Create a tenant.")
    create_tenant.add_argument("name")
    create_tenant.add_argument("--max-queued-jobs", type=int, help="Default: REGTRAIN_TENANT_MAX_QUEUED_JOBS.")
    create_tenant.add_argument("--max-running-jobs", type=int, help="Default: REGTRAIN_TENANT_MAX_RUNNING_JOBS.")
    create_tenant.add_argument("--max-stored-bytes", type=int, help="Default: REGTRAIN_TENANT_MAX_STORED_BYTES.")
    create_tenant.set_defaults(func=cmd_tenants_create)
    tenant_commands.add_parser("list", help="List tenants and their quotas.").set_defaults(func=cmd_tenants_list)

    keys = commands.add_parser("keys", help="Create, list and revoke API keys (on the database, no key needed).")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="Create a key and print it, once.")
    create.add_argument("--tenant", required=True, help="The tenant's name or id.")
    create.add_argument("--name", required=True, help="What the key is for, shown in listings.")
    create.add_argument(
        "--scopes", default="read,write", help=f"Comma-separated, from {', '.join(SCOPES)} (default: read,write)."
    )
    create.add_argument("--create-tenant", action="store_true", help="Create the tenant if there is none by that name.")
    create.set_defaults(func=cmd_keys_create)
    listing = key_commands.add_parser("list", help="List keys: never the key itself, only its prefix.")
    listing.add_argument("--tenant", help="Only this tenant's keys (name or id).")
    listing.set_defaults(func=cmd_keys_list)
    revoke = key_commands.add_parser("revoke", help="Revoke a key; requests with it are refused at once.")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_keys_revoke)
    key_commands.add_parser(
        "new", help="Print a fresh random key (e.g. for REGTRAIN_ADMIN_KEY); stores nothing."
    ).set_defaults(func=cmd_keys_new)


# The first admin key


def _key_state(session: Session, key: str) -> str:
    """'valid', 'revoked' or 'unknown', looked up by hash without counting as a use of the key."""
    from api.services.keys import hash_key
    from models import ApiKey

    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None:
        return "unknown"
    return "revoked" if row.revoked_at is not None else "valid"


def _admin_key_notice(session: Session, settings: Settings) -> tuple[str, bool]:
    """The line to print about the admin key, and whether it is a warning. Never contains a key."""
    from api.services.keys import ensure_admin_key

    bootstrap = ensure_admin_key(session, settings)
    path = settings.admin_key_path.resolve()
    if bootstrap.written_to is not None:
        return f"admin key written to {bootstrap.written_to.resolve()} (mode 0600); {BEARER_HINT}", False
    if bootstrap.created:
        return f'admin key of tenant "default" created from REGTRAIN_ADMIN_KEY; {BEARER_HINT}', False
    if settings.admin_key is not None:
        state = _key_state(session, settings.admin_key.get_secret_value())
        if state == "valid":
            return f"admin key: the one in REGTRAIN_ADMIN_KEY; {BEARER_HINT}", False
        if state == "revoked":
            return "REGTRAIN_ADMIN_KEY holds a key that has been revoked; `regtrain keys create` makes another", True
        return (
            "REGTRAIN_ADMIN_KEY is not a key of this service: keys already existed when it was set, so it was "
            "not stored; `regtrain keys create` makes another",
            True,
        )
    if path.is_file():
        try:
            state = _key_state(session, path.read_text().strip())
        except OSError:
            state = "unreadable"
        if state == "valid":
            return f"admin key in {path}; {BEARER_HINT}", False
        return f"the key in {path} is {state}; `regtrain keys list` shows the keys there are", True
    return "API keys exist; `regtrain keys list` shows them and `regtrain keys create` makes another", False


def announce_admin_key(start_without_database: bool = False) -> int:
    """On start (`up`, `api`), after migrating: make the first admin key if no key exists, and say where
    it is. 0, or 2 with a sentence on stderr when the database or REGTRAIN_ADMIN_KEY is not usable.
    With `start_without_database`, a database that cannot be reached is only reported: the API then
    starts anyway, answers 503 until the database is back, and makes the key on its next start."""

    def work(session: Session) -> int:
        line, warning = _admin_key_notice(session, get_settings())
        print(f"regtrain: {line}", file=sys.stderr if warning else sys.stdout, flush=True)
        return 0

    return run_on_database(work, unreachable_status=0 if start_without_database else USAGE_ERROR)
