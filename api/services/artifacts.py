"""A job's artifact: the file to download, and predictions from it. A succeeded job's weights are
complete; a job that stopped early (canceled, timed out, failed) may keep the weights of its last
checkpoint, served marked as partial with their epoch. Both are read from the store (core/storage.py):
downloads stream it in chunks, predictions load it once and keep it (api/services/inference.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from api.schemas.prediction import MAX_PREDICT_ROWS, PredictRequest
from api.services.inference import LoadedArtifact, load_stored_artifact, predict
from api.services.jobs import get_job
from core.errors import Conflict, InvalidInput, NotFound, ObjectMissing, TooLarge
from core.features import encode
from core.settings import Settings
from core.storage import artifact_object_key, get_store


@dataclass(frozen=True)
class StoredArtifact:
    job_id: str
    # The job's artifact_key, and the store's key for it.
    name: str
    key: str
    partial: bool
    # The epoch whose weights the file holds; None for jobs trained before it was recorded.
    epoch: int | None

    def missing(self) -> NotFound:
        return NotFound(
            f"The artifact of job {self.job_id} ({self.name}) is missing from the store; an operator can restore "
            f"it, or the job can be trained again (POST /v1/jobs/{self.job_id}/retrain)."
        )


@dataclass(frozen=True)
class ArtifactDownload:
    chunks: Iterator[bytes]
    headers: dict[str, str]


def stored_artifact(session: Session, tenant_id: str, job_id: str) -> StoredArtifact:
    """Which weights a job serves, from the database alone."""
    job = get_job(session, tenant_id, job_id)
    if job.artifact_key is None or (job.status != "succeeded" and not job.artifact_partial):
        if job.status in ("queued", "running"):
            raise Conflict(
                f"Job {job_id} is {job.status}; it has trained weights once it has succeeded (or, marked partial, "
                "once it has stopped after finishing an epoch)."
            )
        raise Conflict(
            f"Job {job_id} is {job.status} and kept no weights: it stopped before finishing an epoch, or its "
            "last weights were not finite."
        )
    partial = job.artifact_partial and job.status != "succeeded"
    return StoredArtifact(job_id, job.artifact_key, artifact_object_key(job.artifact_key), partial, job.artifact_epoch)


def open_artifact(session: Session, settings: Settings, tenant_id: str, job_id: str) -> ArtifactDownload:
    """The artifact's bytes as they come from the store, and the response headers that describe them."""
    stored = stored_artifact(session, tenant_id, job_id)
    try:
        opened = get_store(settings).open(stored.key)
    except ObjectMissing as exc:
        raise stored.missing() from exc
    headers = {
        "Content-Length": str(opened.size),
        "Content-Disposition": f'attachment; filename="regtrain-{job_id}.safetensors"',
        "X-Regtrain-Partial": "true" if stored.partial else "false",
    }
    if stored.epoch is not None:
        headers["X-Regtrain-Epoch"] = str(stored.epoch)
    return ArtifactDownload(opened.chunks, headers)


def predict_rows(
    session: Session, settings: Settings, tenant_id: str, job_id: str, body: PredictRequest
) -> dict[str, Any]:
    stored = stored_artifact(session, tenant_id, job_id)
    try:
        artifact = load_stored_artifact(get_store(settings), job_id, stored.key)
    except ObjectMissing as exc:
        raise stored.missing() from exc
    count = len(body.rows or body.records or [])
    if count > MAX_PREDICT_ROWS:
        raise TooLarge(f"{count} rows is more than {MAX_PREDICT_ROWS} per request; send them in smaller batches.")
    names = [column.name for column in artifact.layout] if artifact.layout else artifact.feature_names
    if body.records is not None:
        _check_records(body.records, names)
        columns = {name: [record[name] for record in body.records] for name in names}
    else:
        rows = body.rows or []
        lengths = sorted({len(row) for row in rows})
        if lengths != [len(names)]:
            raise InvalidInput(
                f"Each row needs {len(names)} values (the job's feature columns, in order); got rows of "
                f"length {', '.join(map(str, lengths))}."
            )
        if artifact.layout and any(column.kind == "categorical" for column in artifact.layout):
            raise InvalidInput("This job has text (categorical) columns; send `records` with the column values.")
        columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    features = _features(artifact, columns)
    predictions = predict(artifact, _fill_missing(artifact, features))
    if stored.partial:
        predictions["partial"] = {"epoch": stored.epoch}
    return predictions


def _features(artifact: LoadedArtifact, columns: dict[str, list[Any]]) -> np.ndarray:
    if artifact.layout is None:
        try:
            return np.column_stack([np.asarray(v, dtype=np.float64) for v in columns.values()])
        except (TypeError, ValueError) as exc:
            raise InvalidInput("Every value must be a number (or null for a missing one).") from exc
    for column in artifact.layout:
        if column.kind == "numeric" and any(isinstance(v, str) for v in columns[column.name]):
            raise InvalidInput(f"Column {column.name!r} is numeric in the training data; send numbers for it.")
    return encode(artifact.layout, columns)


def _fill_missing(artifact: LoadedArtifact, features: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(features)
    if not bad.any():
        return features
    if artifact.fill is None:
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidInput(
            f"Row {row} has no value for feature {col}; this job was trained with training.missing 'refuse' or "
            "'drop', so it cannot fill missing values (train with 'mean' for that)."
        )
    return np.where(bad, artifact.fill, features)


def _check_records(records: list[dict[str, Any]], names: list[str]) -> None:
    """Every record has every feature column of the job. Other keys (the target, an id, columns the job
    left out) are ignored, so whole rows of the user's table can be sent as they are."""
    for index, record in enumerate(records):
        missing = [name for name in names if name not in record]
        if missing:
            more = " and more" if len(missing) > 5 else ""
            raise InvalidInput(
                f"Record {index} lacks {', '.join(map(repr, missing[:5]))}{more}; the job's feature columns are "
                f"{', '.join(map(repr, names))}."
            )
