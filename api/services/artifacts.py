"""A succeeded job's artifact: the file to download, and predictions from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from api.schemas.prediction import MAX_PREDICT_ROWS, PredictRequest
from api.services.inference import load_artifact, predict
from api.services.jobs import get_job
from core.errors import Conflict, InvalidInput, NotFound, TooLarge
from core.settings import Settings


def artifact_path(session: Session, settings: Settings, job_id: str) -> Path:
    job = get_job(session, job_id)
    if job.status != "succeeded" or job.artifact_key is None:
        raise Conflict(f"Job {job_id} is {job.status}; it has trained weights only once it has succeeded.")
    path = settings.artifacts_dir / job.artifact_key
    if not path.is_file():
        raise NotFound(f"The artifact of job {job_id} is missing from the artifact store ({job.artifact_key}).")
    return path


def predict_rows(session: Session, settings: Settings, job_id: str, body: PredictRequest) -> dict[str, Any]:
    artifact = load_artifact(artifact_path(session, settings, job_id))
    count = len(body.rows or body.records or [])
    if count > MAX_PREDICT_ROWS:
        raise TooLarge(f"{count} rows is more than {MAX_PREDICT_ROWS} per request; send them in smaller batches.")
    if body.records is not None:
        return predict(artifact, _records_to_rows(body.records, artifact.feature_names))
    rows = body.rows or []
    lengths = sorted({len(row) for row in rows})
    if lengths != [artifact.n_features]:
        raise InvalidInput(
            f"Each row needs {artifact.n_features} values (the job's features, in order); got rows of "
            f"length {', '.join(map(str, lengths))}."
        )
    return predict(artifact, np.asarray(rows, dtype=np.float64))


def _records_to_rows(records: list[dict[str, float]], feature_names: list[str]) -> np.ndarray:
    known = set(feature_names)
    for index, record in enumerate(records):
        missing = [name for name in feature_names if name not in record]
        unknown = [name for name in record if name not in known]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(map(repr, missing[:5]))}{' and more' if len(missing) > 5 else ''}")
            if unknown:
                parts.append(f"has unknown column(s) {', '.join(map(repr, unknown[:5]))}")
            raise InvalidInput(
                f"Record {index} {' and '.join(parts)}; the job's columns are {', '.join(feature_names)}."
            )
    return np.asarray([[record[name] for name in feature_names] for record in records], dtype=np.float64)
