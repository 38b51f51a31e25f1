from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from starlette.concurrency import run_in_threadpool

from api.deps import IdempotencyKeyDep, Reader, SessionDep, SettingsDep, Writer
from api.schemas.common import ErrorRead, Limit, Offset
from api.schemas.dataset import NAME_RULE, BuiltinRead, DatasetPage, DatasetRead, SyntheticCreate
from api.services import datasets
from api.services.uploads import receive_upload

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorRead, "description": "No dataset with this id."}}

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "name"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV (header row, UTF-8), Parquet, NPZ (arrays X and y) or HDF5 "
                            "(datasets X and y).",
                        },
                        "name": {
                            "type": "string",
                            "description": f"Dataset name: {NAME_RULE}. The same name again makes the next version.",
                        },
                        "target": {"type": "string", "description": "Default target column of jobs on it."},
                        "na_values": {
                            "type": "string",
                            "description": "A JSON list of strings: the cell texts read as missing, replacing the "
                            'default ["", "NA", "N/A", "NaN", "null", "NULL", "None", "?"]. Cells are compared after '
                            'removing surrounding spaces and tabs, so "" stands for empty and blank cells. Applies to '
                            "every CSV column (before types are inferred: a numeric column with NA stays numeric) and "
                            'to Parquet text columns; not to NPZ or HDF5. Example: ["", "?"] when "NA" means '
                            "North America. The same bytes with other na_values are another parse.",
                            "example": '["", "?"]',
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    openapi_extra=UPLOAD_BODY,
    responses={
        413: {"model": ErrorRead, "description": "Larger than REGTRAIN_MAX_UPLOAD_BYTES."},
        422: {"model": ErrorRead, "description": "The file or a field is invalid; nothing stored."},
    },
)
async def upload_dataset(
    request: Request,
    caller: Writer,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> DatasetRead:
    """Upload a dataset file; it is validated, profiled and stored as the next version of its name."""
    upload = await receive_upload(request, settings)
    stored = await run_in_threadpool(datasets.upload, session, settings, caller.tenant_id, upload, idempotency_key)
    return DatasetRead.model_validate(stored)


@router.post("/synthetic", status_code=status.HTTP_201_CREATED, response_model=DatasetRead)
def create_synthetic(body: SyntheticCreate, caller: Writer, session: SessionDep, settings: SettingsDep) -> DatasetRead:
    """Generate a stored, versioned dataset of informative, correlated-group and noise features."""
    return DatasetRead.model_validate(
        datasets.dataset_read(datasets.create_synthetic(session, settings, caller.tenant_id, body))
    )


@router.get("/builtin", response_model=list[BuiltinRead])
def list_builtins(_caller: Reader) -> list[BuiltinRead]:
    """The built-in datasets (scikit-learn's bundled files), usable as `builtin:NAME` with no upload."""
    return [BuiltinRead.model_validate(builtin) for builtin in datasets.builtin_reads()]


@router.get("", response_model=DatasetPage)
def list_datasets(
    caller: Reader,
    session: SessionDep,
    name: Annotated[str | None, Query(description="Only the versions of this name.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> DatasetPage:
    """List datasets, newest first."""
    rows, total = datasets.list_datasets(session, caller.tenant_id, name, limit, offset)
    items = [DatasetRead.model_validate(datasets.dataset_read(row)) for row in rows]
    return DatasetPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetRead, responses=NOT_FOUND)
def get_dataset(dataset_id: str, caller: Reader, session: SessionDep) -> DatasetRead:
    """A dataset version with its profile: columns, missing values, ranges, the target's class balance."""
    return DatasetRead.model_validate(
        datasets.dataset_read(datasets.get_dataset(session, caller.tenant_id, dataset_id))
    )


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, 409: {"model": ErrorRead, "description": "A queued or running job uses it."}},
)
def delete_dataset(dataset_id: str, caller: Writer, session: SessionDep, settings: SettingsDep) -> None:
    """Delete a dataset version (its jobs keep their records); refused while a queued or running job uses it."""
    datasets.delete_dataset(session, settings, caller.tenant_id, dataset_id)
