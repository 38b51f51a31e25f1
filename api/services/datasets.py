"""Dataset use cases: upload, generate, list, read, delete, and resolving a job's `dataset`."""

from __future__ import annotations

import hashlib
import os
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

from api.ingest import Ingested, IngestLimits, ingest
from api.schemas.dataset import NAME_PATTERN, NAME_RULE, SyntheticCreate
from api.services import idempotency, quotas
from api.services.synthetic import generate
from api.services.uploads import ReceivedUpload
from core.builtins import BUILTIN_PREFIX, BUILTINS, BuiltinDataset
from core.errors import Conflict, InvalidInput, NotFound
from core.settings import Settings
from core.storage import canonical_path, dataset_dir
from models import Dataset, Job, JobStatus

# Two uploads under one name at the same moment race for the next version; the loser retries.
VERSION_ATTEMPTS = 5
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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


def _profile_json(ingested: Ingested) -> list[dict[str, Any]]:
    return [
        {**column.__dict__, "top_values": [[v, c] for v, c in column.top_values] if column.top_values else None}
        for column in ingested.columns
    ]


def _store(settings: Settings, sha256: str, ingested: Ingested, staging: Path) -> None:
    """Moves the canonical file into the content-addressed store (the first copy of these bytes wins)."""
    final = dataset_dir(settings, sha256)
    if final.exists():
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(staging, final)
    except OSError:
        if not final.exists():
            raise


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


def _ingest_into_store(
    settings: Settings, session: Session, source: Path, filename: str | None, sha256: str, target: str | None
) -> tuple[str, str, int, list[dict[str, Any]], str | None]:
    """(format, kind, rows, profile, target), from an earlier identical upload when there is one. The
    target is checked before anything is stored, so a rejected upload leaves nothing behind."""
    known = session.scalars(select(Dataset).where(Dataset.sha256 == sha256).limit(1)).first()
    if known is not None and canonical_path(settings, sha256, known.kind).exists():
        return (
            known.format,
            known.kind,
            known.rows,
            known.columns,
            _check_target(known.kind, known.columns, known.rows, target),
        )
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=settings.datasets_dir))
    try:
        ingested = ingest(source, filename, staging, _limits(settings))
        columns = _profile_json(ingested)
        checked = _check_target(ingested.kind, columns, ingested.rows, target)
        _store(settings, sha256, ingested, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ingested.format, ingested.kind, ingested.rows, columns, checked


def create_from_upload(session: Session, settings: Settings, tenant_id: str, upload: ReceivedUpload) -> Dataset:
    try:
        name = _check_name(upload.fields.get("name"))
        _check_filename(upload.filename)
        if upload.size_bytes == 0:
            raise InvalidInput("The file is empty.")
        quotas.check_storage(session, settings, tenant_id, upload.size_bytes)
        settings.ensure_home()
        fmt, kind, rows, columns, target = _ingest_into_store(
            settings, session, upload.path, upload.filename, upload.sha256, upload.fields.get("target") or None
        )
        return _insert_version(
            session,
            tenant_id=tenant_id,
            name=name,
            format=fmt,
            kind=kind,
            rows=rows,
            columns=columns,
            target=target,
            sha256=upload.sha256,
            size_bytes=upload.size_bytes,
            source="upload",
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
        _, kind, rows, columns, target = _ingest_into_store(settings, session, path, None, sha256, body.target)
        size = path.stat().st_size
    quotas.check_storage(session, settings, tenant_id, size)
    return _insert_version(
        session,
        tenant_id=tenant_id,
        name=body.name,
        format="synthetic",
        kind=kind,
        rows=rows,
        columns=columns,
        target=target,
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
    sha256 = row.sha256
    session.delete(row)
    session.commit()
    if not session.scalar(select(func.count()).select_from(Dataset).where(Dataset.sha256 == sha256)):
        shutil.rmtree(dataset_dir(settings, sha256), ignore_errors=True)


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
        {**c, "top_values": [{"value": v, "count": n} for v, n in c["top_values"]] if c.get("top_values") else None}
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
        "generator": row.generator,
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
