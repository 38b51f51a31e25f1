"""Schedule request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from api.schemas.common import Page, StrictModel, drop_null_from_schema, refuse_null
from api.schemas.job import EXAMPLE_JOB, DatasetRef, JobCreate
from api.schemas.study import StudyCreate
from models.job_status import JobStatus

CRON_HELP = (
    "Cron expression: minute hour day-of-month month day-of-week (e.g. `0 3 * * *` is 03:00 every day), "
    "or six fields with a leading seconds field. Evaluated in `timezone`: a slot in the hour skipped when "
    "clocks go forward fires when the gap ends; a slot in the hour repeated when they go back fires once."
)


class ScheduleCreate(StrictModel):
    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "nightly-wine",
                    "cron": "0 3 * * *",
                    "timezone": "Europe/Berlin",
                    "job": {**EXAMPLE_JOB, "dataset": "builtin:wine"},
                    "overlap": "skip",
                    "catch_up": "run_once",
                }
            ]
        }
    }

    name: str = Field(min_length=1, max_length=200)
    cron: str = Field(min_length=1, max_length=200, description=CRON_HELP)
    timezone: str = Field("UTC", max_length=64, description="IANA time zone name, e.g. `Europe/Berlin`.")
    job: JobCreate | None = Field(
        None, description="The job to submit at each slot; `NAME@latest` resolves when the slot fires."
    )
    study: StudyCreate | None = Field(
        None,
        description="Instead of a job, a study to run at each slot (e.g. nightly re-selection of lambda on the "
        "newest data; with `refit`, the selected member is then trained as a job).",
    )
    enabled: bool = True
    overlap: Literal["skip", "queue"] = Field(
        "skip", description="When the previous run is still queued or running: `skip` the slot or `queue` another run."
    )
    catch_up: Literal["skip", "run_once"] = Field(
        "skip", description="Slots missed while no scheduler ran: `skip` them, or `run_once` for all of them together."
    )

    @model_validator(mode="after")
    def _job_or_study(self) -> Self:
        if (self.job is None) == (self.study is None):
            raise ValueError("give exactly one of `job` (a job template) or `study` (a study template)")
        return self


class ScheduleUpdate(StrictModel):
    """A partial update: a field left out keeps its current value; a field given replaces it. No field
    may be null (`{"cron": null}` is refused with 422): to stop a schedule, send `{"enabled": false}`."""

    model_config = StrictModel.model_config | {"json_schema_extra": drop_null_from_schema}

    # None below only ever means "left out": explicit nulls are refused before validation.
    name: str | None = Field(None, min_length=1, max_length=200, description="New name. Leave out to keep it.")
    cron: str | None = Field(
        None, min_length=1, max_length=200, description=CRON_HELP + " Leave out to keep the current one."
    )
    timezone: str | None = Field(None, max_length=64, description="IANA time zone name. Leave out to keep it.")
    job: JobCreate | None = Field(None, description="A new job template (replaces the whole template).")
    study: StudyCreate | None = Field(None, description="A new study template (replaces the whole template).")
    enabled: bool | None = Field(None, description="false pauses the schedule, true resumes it from the next slot.")
    overlap: Literal["skip", "queue"] | None = Field(None, description="See ScheduleCreate. Leave out to keep it.")
    catch_up: Literal["skip", "run_once"] | None = Field(None, description="See ScheduleCreate. Leave out to keep it.")

    _no_nulls = field_validator("*", mode="before")(refuse_null)

    @model_validator(mode="after")
    def _job_or_study(self) -> Self:
        if self.job is not None and self.study is not None:
            raise ValueError("give `job` or `study`, not both: a schedule runs one template")
        return self


class ScheduleRead(BaseModel):
    id: str
    name: str
    cron: str
    timezone: str
    job: dict[str, Any] | None = Field(description="The job template, as given (null for a study schedule).")
    study: dict[str, Any] | None = Field(description="The study template, as given (null for a job schedule).")
    enabled: bool
    overlap: Literal["skip", "queue"]
    catch_up: Literal["skip", "run_once"]
    next_run_at: datetime | None = Field(description="The next slot, in UTC; null while disabled.")
    created_at: datetime
    updated_at: datetime


class SchedulePage(Page[ScheduleRead]):
    """Schedules, newest first."""


class RunJob(BaseModel):
    id: str
    status: JobStatus
    dataset: DatasetRef
    metric: str | None = Field(description="The headline validation metric: accuracy or r2.")
    value: float | None = Field(description="Its value, once the job has succeeded.")
    change: float | None = Field(description="Its change from the previous successful run of this schedule.")
    validation_data_loss: float | None


class RunRead(BaseModel):
    scheduled_for: datetime
    outcome: Literal["started", "skipped_overlap", "skipped_missed", "failed"]
    detail: str | None = Field(description="Why a slot was skipped or failed to start.")
    job: RunJob | None
    created_at: datetime


class RunPage(Page[RunRead]):
    """A schedule's slots, newest slot first."""
