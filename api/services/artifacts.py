"""A succeeded job's artifact: the file to download, and predictions from it."""

from __future__ import annotations

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


def artifact_path(session: Session, settings: Settings, tenant_id: str, job_id: str) -> Path:
    job = get_job(session, tenant_id, job_id)
    if job.status != "succeeded" or job.artifact_key is None:
        raise Conflict(f"Job {job_id} is {job.status}; it has trained weights only once it has succeeded.")
    path = settings.artifacts_dir / job.artifact_key
    if not path.is_file():
        raise NotFound(f"The artifact of job {job_id} is missing from the artifact store ({job.artifact_key}).")
    return path


def predict_rows(
    session: Session, settings: Settings, tenant_id: str, job_id: str, body: PredictRequest
) -> dict[str, Any]:
    artifact = load_artifact(artifact_path(session, settings, tenant_id, job_id))
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
    return predict(artifact, _fill_missing(artifact, features))


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
    known = set(names)
    for index, record in enumerate(records):
        missing = [name for name in names if name not in record]
        unknown = [name for name in record if name not in known]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(map(repr, missing[:5]))}{' and more' if len(missing) > 5 else ''}")
            if unknown:
                parts.append(f"has unknown column(s) {', '.join(map(repr, unknown[:5]))}")
            raise InvalidInput(f"Record {index} {' and '.join(parts)}; the job's columns are {', '.join(names)}.")
