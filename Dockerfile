# syntax=docker/dockerfile:1
# Two images from one file: `api` (also runs `migrate` and `scheduler`) carries no torch and no CUDA,
# so it stays small and starts fast; `worker` carries the CUDA build of torch for GPU hosts.
#   docker build --target api -t regtrain-api .
#   docker build --target worker -t regtrain-worker .
# No key or password is set here (ENV or ARG would keep it in the image's history): REGTRAIN_ADMIN_KEY
# and the database URL are given to the containers at run time (see docker-compose.yml).

# base: what both images share, so that they agree on the user and the data directory.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REGTRAIN_HOME=/data
# A fixed UID owns /data (REGTRAIN_HOME: scratch files, and a worker's cache of datasets), so that it is
# writable as it is and so is a fresh named volume mounted there. Datasets, checkpoints and artifacts
# themselves live in the store (REGTRAIN_STORAGE_URL), which the containers do not share as a folder.
RUN groupadd --system --gid 10001 regtrain \
    && useradd --system --uid 10001 --gid regtrain --create-home regtrain \
    && mkdir -p /data \
    && chown regtrain:regtrain /data
WORKDIR /app

# source: the files the package is built from, listed once for both images. Tests, benchmarks and
# local state stay out (see .dockerignore).
FROM scratch AS source
COPY pyproject.toml README.md alembic.ini /app/
COPY api /app/api
COPY core /app/core
COPY models /app/models
COPY migrations /app/migrations
COPY worker /app/worker
COPY scheduler /app/scheduler
COPY cli /app/cli

# api: the HTTP API, and the image for the one-shot `regtrain migrate` and for the scheduler.
# The base dependencies exclude torch, so this image has no CUDA.
FROM base AS api
COPY --from=source /app /app
RUN pip install --no-cache-dir .
USER regtrain
EXPOSE 8000
# slim images have no curl; the port comes from the same settings class the server reads.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; from core.settings import get_settings; urllib.request.urlopen(f'http://127.0.0.1:{get_settings().port}/healthz', timeout=4)"]
CMD ["regtrain", "api", "--host", "0.0.0.0"]

# worker: trains jobs. On Linux x86_64 the default index's torch wheel is the CUDA build (its CUDA
# libraries come as pip packages; the driver comes from the host through the NVIDIA runtime).
FROM base AS worker
# torch goes in its own layer before the source: it is gigabytes and changes only with its pin,
# which must equal the `worker` extra's pin in pyproject.toml or the next step would replace it.
RUN pip install --no-cache-dir torch==2.13.0
COPY --from=source /app /app
RUN pip install --no-cache-dir ".[worker]"
USER regtrain
CMD ["regtrain", "worker"]
