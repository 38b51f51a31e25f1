"""A job's artifact: the file to download, and predictions from it. A succeeded job's weights are
complete; a job that stopped early (canceled, timed out, failed) may keep the weights of its last
checkpoint, served marked as partial with their epoch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from api.schemas.prediction import MAX_PREDICT_ROWS, PredictRequest
from api.services.inference import LoadedArtifact, load_artifact, predict
from api.services.jobs import get_job
from core.errors import Conflict, InvalidInput, NotFound, TooLarge
from core.features import encode
from core.settings import Settings


@dataclass(frozen=True)
class StoredArtifact:
    path: Path
    partial: bool
    # The epoch whose weights the file holds; None for jobs trained before it was recorded.
    epoch: int | None


def artifact_path(session: Session, settings: Settings, tenant_id: str, job_id: str) -> StoredArtifact:
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
    path = settings.artifacts_dir / job.artifact_key
    if not path.is_file():
        raise NotFound(f"The artifact of job {job_id} is missing from the artifact store ({job.artifact_key}).")
    return StoredArtifact(path, job.artifact_partial and job.status != "succeeded", job.artifact_epoch)


def predict_rows(
    session: Session, settings: Settings, tenant_id: str, job_id: str, body: PredictRequest
) -> dict[str, Any]:
    stored = artifact_path(session, settings, tenant_id, job_id)
    artifact = load_artifact(stored.path)
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
