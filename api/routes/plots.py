"""Plots of jobs and studies as SVG or PNG images, drawn on the server from what was recorded; an ETag
lets a browser or client revalidate instead of downloading the same picture again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from api.deps import Reader, SessionDep
from api.plots import ImageFormat, JobPlot, StudyPlot
from api.plots.render import Image
from api.schemas.common import ErrorRead
from api.services import plots

router = APIRouter(tags=["plots"])

FormatPath = Annotated[
    ImageFormat,
    Path(description="`svg` (vector: text stays text, each data series is a group `series-<name>`) or `png`."),
]

IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        max_length=1000,
        description="The ETag of a copy you hold: if the image is unchanged the answer is 304 with no body.",
    ),
]


def _responses(not_found: str, conflict: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "content": {"image/svg+xml": {}, "image/png": {}},
            "description": "The image; deterministic: the same recorded numbers give the same bytes and ETag.",
            "headers": {"ETag": {"description": "Identifies these bytes.", "schema": {"type": "string"}}},
        },
        304: {"description": "The image is unchanged since the ETag sent in If-None-Match."},
        404: {"model": ErrorRead, "description": not_found},
        409: {"model": ErrorRead, "description": conflict},
    }


def image_response(image: Image, if_none_match: str | None, filename: str) -> Response:
    headers = {"ETag": image.etag, "Cache-Control": "private, no-cache"}
    sent = {tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")}
    if image.etag in sent or "*" in sent:
        return Response(status_code=304, headers=headers)
    headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return Response(image.content, media_type=image.media_type, headers=headers)


@router.get(
    "/v1/jobs/{job_id}/plots/{plot}.{format}",
    response_class=Response,
    responses=_responses(
        "No job with this id, or (weights) no statistics at that epoch.",
        "Nothing recorded yet, or the plot does not apply (penalties of a job without penalties).",
    ),
)
def get_job_plot(
    job_id: str,
    plot: Annotated[JobPlot, Path(description="Which plot.")],
    format: FormatPath,
    caller: Reader,
    session: SessionDep,
    epoch: Annotated[
        int | None, Query(ge=1, description="weights only: the epoch (default: the weights the job keeps).")
    ] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """A job's plot: learning curves (training vs validation data loss), penalty terms, sparsity (zero and
    near-zero weights) against epoch, or per-layer weight histograms at an epoch."""
    image = plots.job_plot(session, caller.tenant_id, job_id, plot, format, epoch)
    return image_response(image, if_none_match, f"job-{job_id}-{plot.value}.{format.value}")


@router.get(
    "/v1/studies/{study_id}/plots/{plot}.{format}",
    response_class=Response,
    responses=_responses(
        "No study with this id.",
        "No member scored yet, or the plot does not apply (no penalty axis; no coefficient paths).",
    ),
)
def get_study_plot(
    study_id: str,
    plot: Annotated[StudyPlot, Path(description="Which plot.")],
    format: FormatPath,
    caller: Reader,
    session: SessionDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """A study's plot: the CV curve against log10(penalty) with ±1 SE and the min and 1-SE choices,
    the coefficient paths, or the variants' mean scores with ±1 SE."""
    image = plots.study_plot(session, caller.tenant_id, study_id, plot, format)
    return image_response(image, if_none_match, f"study-{study_id}-{plot.value}.{format.value}")
