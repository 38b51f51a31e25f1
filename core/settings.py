"""The one place that reads the environment: every setting has the REGTRAIN_ prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


# Python's logging levels, as uvicorn and Celery name them too.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REGTRAIN_", extra="ignore")

    home: Path = Field(Path("var"), description="Data directory: SQLite files, artifacts, uploads.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file under home (embedded mode)."
    )
    broker_url: str | None = Field(
        None, description="Celery broker URL; default: a SQLite-backed kombu transport under home."
    )
    max_upload_bytes: int = Field(512 * MIB, gt=0, description="Largest dataset upload; larger bodies get 413.")
    max_columns: int = Field(10_000, ge=1, description="Most columns (or features per row) a dataset may have.")
    max_decompressed_bytes: int = Field(
        4 * 1024 * MIB, gt=0, description="Most bytes a compressed upload (NPZ, HDF5, Parquet) may expand to."
    )
    max_epochs: int = Field(10_000, ge=1, description="Largest `training.epochs` a job may ask for.")
    job_time_limit_seconds: int = Field(
        6 * 3600, ge=1, description="Longest a job may train; the broker's visibility timeout sits above it."
    )
    worker_concurrency: int = Field(1, ge=1)
    max_attempts: int = Field(3, ge=1, description="Attempts lost to dead workers before a job fails (worker_lost).")
    lease_seconds: float = Field(
        15.0, gt=0, description="A running attempt whose heartbeat is older than this is presumed dead and requeued."
    )
    sweep_after_seconds: float = Field(
        45.0, gt=0, description="A queued job whose message left no trace in the broker this long ago is re-sent."
    )
    max_parameters: int = Field(
        50_000_000, ge=1, description="Largest network (trainable parameters) a job may ask for."
    )
    max_cells: int = Field(2_000_000_000, ge=1, description="Largest rows x features a job may train on.")
    max_categories: int = Field(
        1000,
        ge=1,
        description="Most distinct values a text column may have to be one-hot encoded; a column with more is "
        "`high_cardinality` and jobs leave it out.",
    )
    max_queued_jobs: int = Field(1000, ge=1, description="Queued jobs beyond which new submissions get 429.")
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=1, description="How long an Idempotency-Key is remembered.")
    admin_key: SecretStr | None = Field(
        None,
        description="The first admin key, created with the default tenant when no key exists yet; when unset, "
        "one is generated and written to home/admin.key (mode 0600).",
    )
    docs: Literal["public", "off"] = Field(
        "public", description="Whether /docs, /redoc and /openapi.json are served (they never need a key)."
    )
    metrics: Literal["public", "key", "off"] = Field(
        "key",
        description="Who may read GET /metrics (Prometheus text): anyone (public), a caller with any valid key "
        "of `read` scope sent as `Authorization: Bearer <key>` (key), or nobody: 404 (off).",
    )
    tenant_max_queued_jobs: int = Field(
        500, ge=1, description="Queued jobs one tenant may have (a tenant's own limit overrides it)."
    )
    tenant_max_running_jobs: int = Field(
        8, ge=1, description="Jobs of one tenant that run at once; its further jobs wait, queued."
    )
    tenant_max_stored_bytes: int = Field(
        20 * 1024 * MIB, ge=1, description="Dataset bytes one tenant may store; an upload beyond it gets 413."
    )
    events_max_stream_seconds: float = Field(
        600,
        gt=0,
        description="How long one event stream (GET .../events) stays open; a client then reconnects with "
        "Last-Event-ID and loses nothing. Bounds what one connection holds.",
    )
    url: str | None = Field(
        None,
        description="Client side: the API address the client commands (`regtrain submit`, `jobs`, `show`, ...) talk "
        "to; default http://host:port.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="Client side: the key the client commands send as `Authorization: Bearer`; default: the "
        "key in home/admin.key when that file is readable.",
    )
    max_study_members: int = Field(1000, ge=1, description="Most members (grid points x variants) a study may have.")
    max_study_fits: int = Field(
        20_000, ge=1, description="Most member fits (members x cross-validation folds) a study may ask for."
    )
    storage_url: str | None = Field(
        None,
        description="Where datasets, artifacts and checkpoints are kept: a folder (default: home, as home/datasets "
        "and home/artifacts; a path or file:///path) or s3://bucket/prefix, an S3-compatible object store that the "
        "API and workers on other hosts share.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="The S3 API's address when the store is not AWS (SeaweedFS, MinIO: http://host:port); requests "
        "then use path-style addressing. Default: AWS's own endpoints.",
    )
    s3_access_key_id: SecretStr | None = Field(
        None, description="The store's access key id; unset: the standard AWS variables and credential chain."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="The store's secret access key; unset: the standard AWS variables and credential chain."
    )
    store_retry_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a worker retries an unreachable store before it hands its job back to the queue.",
    )
    checkpoint_upload_seconds: float = Field(
        5.0,
        ge=0,
        description="Most often a worker puts a running job's checkpoint into a remote store (always the last one): "
        "a worker killed meanwhile costs at most this much training, which another worker redoes.",
    )
    dataset_cache_bytes: int = Field(
        20 * 2**30,
        ge=0,
        description="Most a worker keeps in its cache of datasets fetched from a remote store: past this, the least "
        "recently used are removed (never one used in the last minute), and fetched again when a job needs them.",
    )
    epoch_record_seconds: float = Field(
        0.25,
        ge=0,
        description="Most often a worker writes a running job's epochs to the database: those that ended meanwhile "
        "together, at most this often, and what is left when the attempt ends. The job's checkpoint follows its "
        "recorded epochs. 0 writes every epoch on its own.",
    )
    log_level: str = Field(
        "info", description=f"How much every process logs: one of {', '.join(LOG_LEVELS)} (any case)."
    )

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"the log level must be one of {', '.join(LOG_LEVELS)}")
        return value.lower()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'regtrain.sqlite').resolve()}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.home / 'broker.sqlite').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def datasets_dir(self) -> Path:
        """Content-addressed: one folder per sha256 of uploaded bytes, holding the canonical form."""
        return self.home / "datasets"

    @property
    def admin_key_path(self) -> Path:
        return self.home / "admin.key"

    @property
    def embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.datasets_dir.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
