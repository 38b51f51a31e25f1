"""What GET /metrics reports, in Prometheus text format.

Two kinds of numbers, and where each comes from:

- Read from the database (and the broker) at scrape time, so every API process reports the same value
  and a restart loses nothing: jobs by status and tenant, queue depth, and figures over the most recent
  finished jobs (durations, epoch seconds, samples per second). Those recent figures are gauges over a
  window of the last RECENT_JOBS finished jobs, not Prometheus histograms: a window moves, and
  rate() over it would mean nothing, so they are named `regtrain_recent_*` and carry a `quantile` label
  (0.5, 0.9, 1 = the largest).
- Counted by this process as it answers: HTTP requests by route template and status, and their latency.
  These are per process: with several API processes (uvicorn --workers, or several hosts) each has its
  own counters, and a scraper sums them over its targets. A process's counters start at zero when it
  starts, as Prometheus counters do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services.health import BROKER_CHECK_TIMEOUT_SECONDS
from api.services.keys import authenticate, require_scope
from core.celery_app import get_celery, queue_depth
from core.errors import NotFound, Unauthorized
from core.queues import ALL_QUEUES
from core.settings import Settings
from models import EpochMetric, Job, Tenant
from models.job_status import JobStatus

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# How many finished jobs the regtrain_recent_* gauges look at: enough for stable quantiles, few enough
# that a scrape (every 15 s by Prometheus' default) stays one small indexed query.
RECENT_JOBS = 100
QUANTILES = (0.5, 0.9, 1.0)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)

# A request that matched no route is labelled with this instead of its raw path, so that a client
# probing random URLs cannot grow the label set.
UNMATCHED_ROUTE = "<unmatched>"

# Created once per process and registered in each scrape's registry (not the global default one).
HTTP_REQUESTS = Counter(
    "regtrain_http_requests",
    "HTTP requests this API process answered, by method, route template (e.g. /v1/jobs/{job_id}) and status.",
    ["method", "route", "status"],
    registry=None,
)
HTTP_REQUEST_SECONDS = Histogram(
    "regtrain_http_request_duration_seconds",
    "Seconds this API process took to answer a request, by method and route template.",
    ["method", "route"],
    registry=None,
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_REQUEST_SECONDS.labels(method=method, route=route).observe(seconds)


def render_metrics(session: Session) -> bytes:
    """The whole exposition: this process's HTTP counters and the figures read now from the database
    and the broker."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HTTP_REQUESTS)
    registry.register(HTTP_REQUEST_SECONDS)
    registry.register(_ScrapeCollector(session))
    return generate_latest(registry)


class _ScrapeCollector(Collector):
    """Reads the database and the broker when (and only when) the registry is collected."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterable[Metric]:
        yield jobs_by_status(self.session)
        yield from broker_queues()
        yield from recent_jobs(self.session)


def jobs_by_status(session: Session) -> GaugeMetricFamily:
    """Every tenant gets a sample for every status, zeros included, so a status that empties shows 0
    rather than vanishing."""
    family = GaugeMetricFamily(
        "regtrain_jobs", "Jobs in the database now, by status and tenant name.", labels=["status", "tenant"]
    )
    counts = {
        (tenant, status): count
        for tenant, status, count in session.execute(
            select(Tenant.name, Job.status, func.count(Job.id))
            .join(Tenant, Tenant.id == Job.tenant_id)
            .group_by(Tenant.name, Job.status)
        )
    }
    for tenant in session.scalars(select(Tenant.name).order_by(Tenant.name)):
        for status in JobStatus:
            family.add_metric([status.value, tenant], counts.get((tenant, status), 0))
    return family


def broker_queues() -> Iterator[GaugeMetricFamily]:
    """Queue depth per queue. When the broker cannot be reached within a couple of seconds the depth
    samples are left out (not reported as 0, which would look like an empty queue) and
    regtrain_broker_up is 0, so an alert can say why they are missing. A queue whose depth cannot be
    read although the broker answered is left out too (and logged)."""
    up = GaugeMetricFamily("regtrain_broker_up", "1 if this scrape reached the Celery broker, 0 if not.")
    depth = GaugeMetricFamily(
        "regtrain_queue_depth",
        "Messages waiting in a broker queue, not yet taken by a worker (absent while the broker is down).",
        labels=["queue"],
    )
    try:
        with get_celery().connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("metrics: the broker is unreachable, queue depths left out: %s", exc)
        up.add_metric([], 0)
    else:
        up.add_metric([], 1)
        for queue in ALL_QUEUES:
            try:
                depth.add_metric([queue], queue_depth(queue))
            except Exception:
                log.exception("metrics: could not read the depth of queue %s; left out", queue)
    yield up
    yield depth


def recent_jobs(session: Session) -> Iterator[GaugeMetricFamily]:
    rows = session.execute(
        select(Job.id, Job.status, Job.started_at, Job.finished_at, Job.result)
        .where(Job.status.in_(FINISHED))
        .order_by(Job.created_at.desc())
        .limit(RECENT_JOBS)
    ).all()
    considered = GaugeMetricFamily(
        "regtrain_recent_jobs",
        f"Finished jobs the regtrain_recent_* gauges are computed over (the last {RECENT_JOBS} submitted).",
    )
    considered.add_metric([], len(rows))
    yield considered

    durations = GaugeMetricFamily(
        "regtrain_recent_job_duration_seconds",
        f"Seconds from start to finish of the last {RECENT_JOBS} finished jobs that started, by final status: "
        "quantile 0.5, 0.9 and 1 (the longest).",
        labels=["status", "quantile"],
    )
    for status in FINISHED:
        _add_quantiles(
            durations,
            [status.value],
            [_seconds(row.started_at, row.finished_at) for row in rows if row.status == status and row.started_at],
        )
    yield durations

    throughput = GaugeMetricFamily(
        "regtrain_recent_samples_per_second",
        f"Training samples per second (result.samples_per_second) of the succeeded jobs among the last "
        f"{RECENT_JOBS} finished: quantile 0.5, 0.9 and 1 (the fastest).",
        labels=["quantile"],
    )
    _add_quantiles(
        throughput,
        [],
        [
            float(row.result["samples_per_second"])
            for row in rows
            if row.status == JobStatus.SUCCEEDED and (row.result or {}).get("samples_per_second") is not None
        ],
    )
    yield throughput

    epoch_seconds = GaugeMetricFamily(
        "regtrain_recent_epoch_seconds",
        f"Mean seconds per epoch (from the epoch_metric table) of each of the last {RECENT_JOBS} finished jobs, "
        "taken per job: quantile 0.5, 0.9 and 1 (the slowest job's mean).",
        labels=["quantile"],
    )
    job_ids = [row.id for row in rows]
    means = (
        session.scalars(
            select(func.avg(EpochMetric.seconds)).where(EpochMetric.job_id.in_(job_ids)).group_by(EpochMetric.job_id)
        ).all()
        if job_ids
        else []
    )
    _add_quantiles(epoch_seconds, [], [float(mean) for mean in means if mean is not None])
    yield epoch_seconds


def _seconds(started_at: datetime, finished_at: datetime | None) -> float:
    return (finished_at - started_at).total_seconds() if finished_at else math.nan


def _add_quantiles(family: GaugeMetricFamily, labels: list[str], values: Sequence[float]) -> None:
    """Nearest-rank quantiles; no samples at all when there are no values (a gauge of 0 would be a lie)."""
    ordered = sorted(value for value in values if math.isfinite(value))
    if not ordered:
        return
    for quantile in QUANTILES:
        rank = max(math.ceil(quantile * len(ordered)) - 1, 0)
        family.add_metric([*labels, _format_quantile(quantile)], ordered[rank])


def _format_quantile(quantile: float) -> str:
    return f"{quantile:g}"


def authorize_scrape(session: Session, settings: Settings, key: str | None) -> None:
    """REGTRAIN_METRICS: "public" lets anyone scrape, "key" needs a valid key with the read scope, "off"
    answers 404 as if there were no such page."""
    if settings.metrics == "off":
        raise NotFound("Metrics are not served by this server (REGTRAIN_METRICS=off).")
    if settings.metrics == "key":
        if key is None:
            raise Unauthorized(
                "Reading metrics needs an API key with the read scope: send `Authorization: Bearer <key>` "
                "(or set REGTRAIN_METRICS=public)."
            )
        require_scope(authenticate(session, key), "read")
