"""Dataset use cases: upload, generate, list, read, delete, and resolving a job's `dataset`."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.ingest import DEFAULT_NA_VALUES, Ingested, IngestLimits, ingest
from api.schemas.dataset import NAME_PATTERN, NAME_RULE, SyntheticCreate
from api.services import idempotency, quotas
from api.services.column_roles import dataset_warnings, infer_role
from api.services.synthetic import generate
from api.services.uploads import ReceivedUpload
from core.builtins import BUILTIN_PREFIX, BUILTINS, BuiltinDataset
from core.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from core.settings import Settings
from core.storage import CANONICAL_FILE, dataset_object_key, dataset_prefix, get_store, store_key
from models import Dataset, Job, JobStatus

log = logging.getLogger(__name__)

# Two uploads under one name at the same moment race for the next version; the loser retries.
VERSION_ATTEMPTS = 5
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# An upload's own `na_values`: a JSON list of at most this many strings of at most MARKER_CHARS each.
MAX_MARKERS = 100
MARKER_CHARS = 100


@dataclass(frozen=True)
class ResolvedDataset:
    """What a job needs to know of its dataset at submit time."""

    id: str
    name: str
    version: int
    sha256: str
    rows: int
    kind: str  # "builtin", "table" or "arrays"
    target: str | None
    columns: list[dict[str, Any]]
    builtin: BuiltinDataset | None = None


def _check_name(name: str | None) -> str:
    if not name or not re.match(NAME_PATTERN, name):
        raise InvalidInput(f"The dataset name {name!r} is not valid: use {NAME_RULE}.")
    return name


def _check_filename(filename: str | None) -> None:
    if (filename and any(separator in filename for separator in ("/", "\\", "\0"))) or filename in {".", ".."}:
        raise InvalidInput(f"The file name {filename!r} contains a path separator; send a plain file name.")


def _limits(settings: Settings) -> IngestLimits:
    return IngestLimits(max_columns=settings.max_columns, max_decompressed_bytes=settings.max_decompressed_bytes)


def _column(columns: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((column for column in columns if column["name"] == name), None)


def _check_target(kind: str, columns: list[dict[str, Any]], rows: int, target: str | None) -> str | None:
    if rows < 2:
        raise InvalidInput(f"The dataset has {rows} row; training needs at least 2.")
    if kind == "arrays":
        if target not in (None, "y"):
            raise InvalidInput(f"Array datasets (X and y) have their target in y; there is no column {target!r}.")
        target = "y"
    if target is None:
        return None
    column = _column(columns, target)
    if column is None:
        names = ", ".join(c["name"] for c in columns[:20])
        raise InvalidInput(f"There is no column {target!r} to use as the target; the columns are {names}.")
    if column["distinct"] == 1 and column["dtype"] in ("string", "bool", "int64"):
        value = column["top_values"][0][0] if column.get("top_values") else "?"
        raise InvalidInput(
            f"Every row of target {target!r} has the same value ({value!r}): classification needs at least two classes."
        )
    return target


def parse_na_values(field: str | None) -> tuple[str, ...]:
    """The upload's `na_values` form field (a JSON list of strings), or the default markers when absent."""
    if field is None:
        return DEFAULT_NA_VALUES
    try:
        markers = json.loads(field)
    except ValueError:
        markers = None
    if (
        not isinstance(markers, list)
        or len(markers) > MAX_MARKERS
        or not all(isinstance(m, str) and len(m) <= MARKER_CHARS for m in markers)
    ):
        raise InvalidInput(
            f"na_values must be a JSON list of at most {MAX_MARKERS} strings (of at most {MARKER_CHARS} characters), "
            'the cell texts to read as missing, such as ["", "?"]; "" stands for empty and blank cells.'
        )
    return tuple(markers)


def na_values_of(row: Dataset) -> tuple[str, ...] | None:
    """The markers a stored table was read with; None for arrays, synthetic data and older uploads."""
    if row.source != "upload" or not row.generator or "na_values" not in row.generator:
        return None
    return tuple(row.generator["na_values"])


def _profile_json(ingested: Ingested, max_categories: int) -> list[dict[str, Any]]:
    columns = []
    for column in ingested.columns:
        profile = {
            **column.__dict__,
            "top_values": [[v, c] for v, c in column.top_values] if column.top_values else None,
        }
        if ingested.kind == "table":
            profile["role"] = infer_role(profile, ingested.rows, max_categories)
        else:
            profile["role"] = "feature"
        # Inputs of the role, which says what they mean.
        del profile["unique"], profile["iso_datetime"]
        columns.append(profile)
    return columns


def _store(settings: Settings, parse: str, kind: str, staging: Path) -> None:
    """Puts the canonical file into the content-addressed store (the first copy of this parse wins)."""
    store, key = get_store(settings), dataset_object_key(parse, kind)
    if not store.exists(key):
        store.put_file(key, staging / CANONICAL_FILE[kind])


def _insert_version(session: Session, **values: Any) -> Dataset:
    for attempt in range(VERSION_ATTEMPTS):
        latest = (
            session.scalar(
                select(func.max(Dataset.version)).where(
                    Dataset.tenant_id == values["tenant_id"], Dataset.name == values["name"]
                )
            )
            or 0
        )
        row = Dataset(version=latest + 1, **values)
        session.add(row)
        try:
            session.commit()
            return row
        except IntegrityError:
            session.rollback()
            if attempt == VERSION_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class StoredParse:
    format: str
    kind: str
    rows: int
    columns: list[dict[str, Any]]
    target: str | None
    # The markers the table was read with (None: arrays, or no markers applied).
    na_values: tuple[str, ...] | None


def _ingest_into_store(
    settings: Settings,
    session: Session,
    source: Path,
    filename: str | None,
    sha256: str,
    target: str | None,
    na_values: tuple[str, ...] | None,
) -> StoredParse:
    """The parse of these bytes with these markers, from an earlier identical upload read with the same
    markers when there is one (arrays have none to differ). The target is checked before anything is
    stored, so a rejected upload leaves nothing behind. `na_values` None reads with no markers at all."""
    for known in session.scalars(select(Dataset).where(Dataset.sha256 == sha256)):
        recorded = na_values_of(known)
        same_parse = known.kind == "arrays" or recorded == na_values
        if same_parse and get_store(settings).exists(dataset_object_key(store_key(sha256, recorded), known.kind)):
            checked = _check_target(known.kind, known.columns, known.rows, target)
            return StoredParse(known.format, known.kind, known.rows, known.columns, checked, recorded)
    # Parsed on this host's disk, then put into the store whole.
    incoming = settings.home / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=incoming))
    try:
        ingested = ingest(source, filename, staging, _limits(settings), na_values or ())
        columns = _profile_json(ingested, settings.max_categories)
        checked = _check_target(ingested.kind, columns, ingested.rows, target)
        recorded = na_values if ingested.kind == "table" else None
        _store(settings, store_key(sha256, recorded), ingested.kind, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return StoredParse(ingested.format, ingested.kind, ingested.rows, columns, checked, recorded)


def create_from_upload(session: Session, settings: Settings, tenant_id: str, upload: ReceivedUpload) -> Dataset:
    try:
        name = _check_name(upload.fields.get("name"))
        _check_filename(upload.filename)
        if upload.size_bytes == 0:
            raise InvalidInput("The file is empty.")
        na_values = parse_na_values(upload.fields.get("na_values"))
        quotas.check_storage(session, settings, tenant_id, upload.size_bytes)
        settings.ensure_home()
        parse = _ingest_into_store(
            settings,
            session,
            upload.path,
            upload.filename,
            upload.sha256,
            upload.fields.get("target") or None,
            na_values,
        )
        return _insert_version(
            session,
            tenant_id=tenant_id,
            name=name,
            format=parse.format,
            kind=parse.kind,
            rows=parse.rows,
            columns=parse.columns,
            target=parse.target,
            sha256=upload.sha256,
            size_bytes=upload.size_bytes,
            source="upload",
            # How the upload was read (no column of its own: the generator's record holds it for uploads).
            generator={"na_values": list(parse.na_values)} if parse.na_values is not None else None,
        )
    finally:
        upload.discard()


def upload(
    session: Session, settings: Settings, tenant_id: str, received: ReceivedUpload, key: str | None
) -> dict[str, Any]:
    """POST /v1/datasets: store (at most once per Idempotency-Key) and return the dataset."""
    request_hash = idempotency.body_hash(
        {"sha256": received.sha256, "filename": received.filename, "fields": received.fields}
    )
    try:
        return idempotency.run_once(
            session,
            settings,
            tenant_id,
            "POST /v1/datasets",
            key,
            request_hash,
            lambda: dataset_read(create_from_upload(session, settings, tenant_id, received)),
        )
    finally:
        received.discard()


def create_synthetic(session: Session, settings: Settings, tenant_id: str, body: SyntheticCreate) -> Dataset:
    table, record = generate(body)
    settings.ensure_home()
    with tempfile.TemporaryDirectory(dir=settings.home) as scratch:
        path = Path(scratch) / "synthetic.parquet"
        pq.write_table(table, path)
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        # Generated numbers and labels: no cell text to read as missing.
        parse = _ingest_into_store(settings, session, path, None, sha256, body.target, None)
        size = path.stat().st_size
    quotas.check_storage(session, settings, tenant_id, size)
    return _insert_version(
        session,
        tenant_id=tenant_id,
        name=body.name,
        format="synthetic",
        kind=parse.kind,
        rows=parse.rows,
        columns=parse.columns,
        target=parse.target,
        sha256=sha256,
        size_bytes=size,
        source="synthetic",
        generator=record,
    )


def list_datasets(
    session: Session, tenant_id: str, name: str | None, limit: int, offset: int
) -> tuple[list[Dataset], int]:
    query = select(Dataset).where(Dataset.tenant_id == tenant_id)
    if name is not None:
        query = query.where(Dataset.name == name)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Dataset.created_at.desc(), Dataset.version.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


def _owned(session: Session, tenant_id: str, dataset_id: str) -> Dataset | None:
    """Another tenant's dataset is as unknown as one that never existed: ids must not be probeable."""
    row = session.get(Dataset, dataset_id) if UUID_PATTERN.match(dataset_id) else None
    return row if row is not None and row.tenant_id == tenant_id else None


def get_dataset(session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    row = _owned(session, tenant_id, dataset_id)
    if row is None:
        raise NotFound(f"There is no dataset with id {dataset_id!r}.")
    return row


def delete_dataset(session: Session, settings: Settings, tenant_id: str, dataset_id: str) -> None:
    row = get_dataset(session, tenant_id, dataset_id)
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.dataset_id == dataset_id, Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
    )
    if active:
        raise Conflict(
            f"Dataset {row.name}@{row.version} is used by {active} queued or running job(s); cancel them or wait "
            "for them to finish before deleting it."
        )
    sha256, key = row.sha256, store_key(row.sha256, na_values_of(row))
    session.delete(row)
    session.commit()
    sharing = session.scalars(select(Dataset).where(Dataset.sha256 == sha256))
    if not any(store_key(other.sha256, na_values_of(other)) == key for other in sharing):
        try:
            get_store(settings).delete_prefix(dataset_prefix(key))
        except StoreUnavailable:
            # The dataset is gone for its tenant; its unshared bytes stay in the store, unused.
            log.warning("dataset %s was deleted, but its stored parse %s could not be removed", dataset_id, key)


def resolve_dataset(session: Session, tenant_id: str, ref: str) -> ResolvedDataset:
    """`builtin:NAME` (shared by every tenant), or one of the tenant's datasets by id, `NAME@latest` or
    `NAME@VERSION`, as of now."""
    if ref.startswith(BUILTIN_PREFIX):
        builtin = BUILTINS.get(ref.removeprefix(BUILTIN_PREFIX))
        if builtin is None:
            known = ", ".join(BUILTIN_PREFIX + n for n in BUILTINS)
            raise InvalidInput(f"There is no built-in dataset {ref!r}; the built-ins are {known}.")
        return ResolvedDataset(
            id=builtin.ref,
            name=builtin.ref,
            version=1,
            sha256=builtin.sha256,
            rows=builtin.rows,
            kind="builtin",
            target="target",
            columns=[],
            builtin=builtin,
        )
    if UUID_PATTERN.match(ref):
        row = _owned(session, tenant_id, ref)
    elif "@" in ref:
        name, _, version = ref.rpartition("@")
        query = select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.name == name)
        if version == "latest":
            row = session.scalars(query.order_by(Dataset.version.desc()).limit(1)).first()
        elif version.isdigit():
            row = session.scalars(query.where(Dataset.version == int(version))).first()
        else:
            raise InvalidInput(f"{ref!r}: the part after '@' must be 'latest' or a version number.")
    else:
        raise InvalidInput(
            f"There is no dataset {ref!r}. Name one as NAME@latest or NAME@VERSION, by id, or use a built-in "
            f"such as 'builtin:wine' ({', '.join(BUILTIN_PREFIX + n for n in BUILTINS)})."
        )
    if row is None:
        raise InvalidInput(f"There is no dataset {ref!r}; GET /v1/datasets lists the datasets and their versions.")
    return ResolvedDataset(
        id=row.id,
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        rows=row.rows,
        kind=row.kind,
        target=row.target,
        columns=row.columns,
    )


def dataset_read(row: Dataset) -> dict[str, Any]:
    columns = [
        {
            **c,
            "top_values": [{"value": v, "count": n} for v, n in c["top_values"]] if c.get("top_values") else None,
            "role": "target" if c["name"] == row.target else c.get("role", "feature"),
        }
        for c in row.columns
    ]
    summary = None
    target = _column(row.columns, row.target) if row.target else None
    if target is not None:
        summary = {
            "column": target["name"],
            "classes": [{"value": v, "count": n} for v, n in target["top_values"]]
            if target.get("top_values") and target["distinct"] is not None and target["distinct"] <= 20
            else None,
            "min": target["min"],
            "max": target["max"],
            "mean": target["mean"],
        }
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "format": row.format,
        "kind": row.kind,
        "rows": row.rows,
        "columns": columns,
        "target": row.target,
        "target_summary": summary,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "source": row.source,
        "generator": row.generator if row.source == "synthetic" else None,
        "na_values": list(markers) if (markers := na_values_of(row)) is not None else None,
        "warnings": dataset_warnings(row.columns, row.target) if row.kind == "table" else [],
        "created_at": row.created_at,
    }


def builtin_reads() -> list[dict[str, Any]]:
    return [
        {
            "id": b.ref,
            "task": b.task,
            "rows": b.rows,
            "features": b.features,
            "classes": b.classes,
            "image_shape": list(b.image_shape) if b.image_shape else None,
            "sha256": b.sha256,
            "description": b.description,
        }
        for b in BUILTINS.values()
    ]
