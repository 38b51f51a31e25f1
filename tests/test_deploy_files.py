"""docker-compose.yml and the Dockerfile agree with the code: settings that exist, commands the CLI
knows, an API image without torch and a worker image with the pinned CUDA torch; and they keep secrets
out of the files and the images, and nothing reachable from other hosts without a key.

Docker itself is not needed: both files are parsed and checked against the code they deploy."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.testclient import TestClient
from packaging.requirements import Requirement
from sqlalchemy.engine import make_url

from cli.main import build_parser
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_PATH = ROOT / "docker-compose.yml"
DOCKERFILE_PATH = ROOT / "Dockerfile"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"
PYPROJECT_PATH = ROOT / "pyproject.toml"

EXPECTED_SERVICES = {"postgres", "redis", "objectstore", "migrate", "api", "worker", "scheduler"}
LONG_RUNNING_APP_SERVICES = ("api", "worker", "scheduler")

RESTARTING_POLICIES = {"always", "unless-stopped", "on-failure"}

# Compose's required-variable interpolation: `docker compose up` stops with the message when it is unset.
REQUIRED_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?(?P<message>[^}]+)\}")
SECRET_LOOKING = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
LOOPBACK = "127.0.0.1"


# --- Parsing -------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    parent: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """Stages by name, each with its own instructions (keyword upper-cased, arguments as written).
    Comment lines are dropped and continuation lines joined, as Docker does."""
    logical_lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical_lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"

    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical_lines:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"#{len(stages)}"
            current = Stage(name=name, parent=words[0])
            stages[name] = current
        elif current is not None:
            current.instructions.append((keyword, arguments))
    return stages


def lineage(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, oldest first."""
    chain = [stages[name]]
    while chain[0].parent in stages:
        chain.insert(0, stages[chain[0].parent])
    return chain


def effective(stages: dict[str, Stage], name: str, keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction that applies to the image built with --target name."""
    return [arguments for stage in lineage(stages, name) for kw, arguments in stage.instructions if kw == keyword]


def env_of(stages: dict[str, Stage], name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in effective(stages, name, "ENV"):
        words = shlex.split(arguments)
        if "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def pip_install_arguments(stages: dict[str, Stage], name: str) -> list[list[str]]:
    """The words after `pip install` in each RUN of the image, one list per pip command."""
    commands = []
    for arguments in effective(stages, name, "RUN"):
        for command in arguments.split("&&"):
            words = shlex.split(command)
            for index in range(len(words) - 1):
                if words[index].endswith("pip") and words[index + 1] == "install":
                    commands.append(words[index + 2 :])
    return commands


def requirements_in(pip_arguments: list[str]) -> list[str]:
    return [word for word in pip_arguments if not word.startswith("-")]


def project_extras(requirement: str) -> set[str] | None:
    """The extras of a requirement that installs this project from its source tree (`.`,
    `.[worker]`), or None for any other requirement."""
    path, _, extras = requirement.partition("[")
    if path.rstrip("/") not in (".", "/app"):
        return None
    return {extra.strip() for extra in extras.rstrip("]").split(",") if extra.strip()}


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("the regtrain parser has no subcommands")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run regtrain itself: the ones built from this repository."""
    return {name: service for name, service in services.items() if "build" in service}


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse_dockerfile(DOCKERFILE_PATH.read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT_PATH.read_text())


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No REGTRAIN_* variable from the shell running the tests leaks into the Settings under test."""
    for name in list(os.environ):
        if name.startswith("REGTRAIN_"):
            monkeypatch.delenv(name)
    return monkeypatch


def settings_for(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    return Settings()


def build_target(service: dict[str, Any]) -> str:
    build = service["build"]
    assert isinstance(build, dict), "name the Dockerfile target: the API and worker images differ"
    return str(build["target"])


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    dependencies = service.get("depends_on", {})
    assert isinstance(dependencies, dict), "use depends_on's long form, which says what to wait for"
    return {name: spec["condition"] for name, spec in dependencies.items()}


# --- Compose services ----------------------------------------------------------------------------


def test_compose_has_the_seven_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_app_services_are_built_from_this_repository(app_services: dict[str, dict[str, Any]]) -> None:
    assert set(app_services) == {"migrate", "api", "worker", "scheduler"}
    assert {name: build_target(service) for name, service in app_services.items()} == {
        "migrate": "api",
        "api": "api",
        "worker": "worker",
        "scheduler": "api",
    }


def test_migrate_is_one_shot_after_postgres_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["regtrain", "migrate"]
    assert migrate["restart"] == "no"
    assert depends_on(migrate) == {"postgres": "service_healthy"}


@pytest.mark.parametrize("name", LONG_RUNNING_APP_SERVICES)
def test_long_running_services_wait_for_migrate_and_redis(services: dict[str, dict[str, Any]], name: str) -> None:
    conditions = depends_on(services[name])
    assert conditions["migrate"] == "service_completed_successfully"
    assert conditions["redis"] == "service_healthy"


@pytest.mark.parametrize("name", LONG_RUNNING_APP_SERVICES)
def test_long_running_services_are_restarted_when_they_die(services: dict[str, dict[str, Any]], name: str) -> None:
    # A dead worker or scheduler is restarted: by `regtrain up` here, by compose in production.
    assert services[name]["restart"] in RESTARTING_POLICIES


def test_postgres_and_redis_have_readiness_checks(services: dict[str, dict[str, Any]]) -> None:
    postgres_check = " ".join(services["postgres"]["healthcheck"]["test"])
    redis_check = services["redis"]["healthcheck"]["test"]
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in postgres_check
    assert services["redis"]["image"] == "redis:7"
    assert redis_check[-2:] == ["redis-cli", "ping"]


def test_postgres_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    mounts = [mount.split(":") for mount in compose["services"]["postgres"]["volumes"]]
    assert ["postgres-data", "/var/lib/postgresql/data"] in mounts
    assert "postgres-data" in compose["volumes"]


def test_worker_reserves_a_gpu(services: dict[str, dict[str, Any]]) -> None:
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    gpus = [device for device in devices if device["driver"] == "nvidia" and "gpu" in device["capabilities"]]
    assert len(gpus) == 1
    count = gpus[0]["count"]
    assert count == "all" or (isinstance(count, int) and count >= 1)


def test_only_the_worker_reserves_devices(services: dict[str, dict[str, Any]]) -> None:
    with_devices = {name for name, service in services.items() if "deploy" in service}
    assert with_devices == {"worker"}


def test_services_without_http_disable_the_api_images_health_check(
    app_services: dict[str, dict[str, Any]],
) -> None:
    # The api image's HEALTHCHECK probes /healthz; migrate and scheduler run from it but serve no HTTP.
    for name, service in app_services.items():
        serves_http = service["command"][1] == "api"
        if build_target(service) == "api" and not serves_http:
            assert service["healthcheck"] == {"disable": True}, name


# --- Settings in compose -------------------------------------------------------------------------


def test_every_regtrain_variable_in_compose_is_a_setting(
    compose: dict[str, Any], app_services: dict[str, dict[str, Any]], stages: dict[str, Stage]
) -> None:
    prefix = Settings.model_config["env_prefix"]
    assert prefix == "REGTRAIN_"
    fields = set(Settings.model_fields)
    variables = set(compose["x-regtrain-env"])
    for service in app_services.values():
        variables |= set(service["environment"])
    for target in ("api", "worker"):
        variables |= set(env_of(stages, target))
    regtrain_variables = {name for name in variables if name.startswith(prefix)}
    assert {"REGTRAIN_DATABASE_URL", "REGTRAIN_BROKER_URL", "REGTRAIN_HOME", "REGTRAIN_HOST"} <= regtrain_variables
    unknown = {name for name in regtrain_variables if name[len(prefix) :].lower() not in fields}
    assert unknown == set()


def test_every_app_service_gets_the_shared_environment(
    compose: dict[str, Any], app_services: dict[str, dict[str, Any]]
) -> None:
    shared = compose["x-regtrain-env"]
    for name, service in app_services.items():
        environment = service["environment"]
        assert {key: environment.get(key) for key in shared} == shared, name
    assert app_services["api"]["environment"]["REGTRAIN_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("name", ["migrate", "api", "worker", "scheduler"])
def test_compose_settings_select_postgres_and_redis(
    app_services: dict[str, dict[str, Any]], clean_environment: pytest.MonkeyPatch, name: str
) -> None:
    settings = settings_for(app_services[name], clean_environment)
    assert not settings.embedded
    assert settings.home == Path("/data")
    assert make_url(settings.resolved_database_url).drivername == "postgresql+psycopg"
    assert urlsplit(settings.resolved_broker_url).scheme == "redis"


def test_database_url_names_the_postgres_service_and_its_credentials(compose: dict[str, Any]) -> None:
    url = make_url(compose["x-regtrain-env"]["REGTRAIN_DATABASE_URL"])
    postgres = compose["services"][url.host]
    assert postgres["image"].startswith("postgres:")
    assert url.drivername == "postgresql+psycopg"
    assert url.port == 5432
    assert (url.username, url.password, url.database) == (
        postgres["environment"]["POSTGRES_USER"],
        postgres["environment"]["POSTGRES_PASSWORD"],
        postgres["environment"]["POSTGRES_DB"],
    )


def test_broker_url_names_the_redis_service(compose: dict[str, Any]) -> None:
    url = urlsplit(compose["x-regtrain-env"]["REGTRAIN_BROKER_URL"])
    assert url.scheme == "redis"
    assert url.hostname in compose["services"]
    assert compose["services"][url.hostname]["image"].startswith("redis:")
    assert url.port == 6379
    assert url.path.lstrip("/").isdigit()


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """(host address, host port, container port) of each published port, short or long form; the
    address is None where the mapping names none, which Docker takes to mean every interface."""
    mappings = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            mappings.append((port.get("host_ip"), str(port.get("published", "")), str(port["target"])))
            continue
        parts = str(port).split(":")
        if len(parts) == 3:
            mappings.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            mappings.append((None, parts[0], parts[1]))
        else:
            mappings.append((None, "", parts[0]))
    return mappings


def test_api_port_mapping_matches_the_api_setting(
    app_services: dict[str, dict[str, Any]], stages: dict[str, Stage], clean_environment: pytest.MonkeyPatch
) -> None:
    settings = settings_for(app_services["api"], clean_environment)
    assert published_ports(app_services["api"]) == [(LOOPBACK, "8000", str(settings.port))]
    assert effective(stages, "api", "EXPOSE") == [str(settings.port)]


# --- Secrets and exposure ------------------------------------------------------------------------


def test_only_the_api_is_published_and_only_on_loopback(services: dict[str, dict[str, Any]]) -> None:
    # The API inside its container listens on 0.0.0.0 for the other containers; from the host, only
    # loopback reaches it. A mapping without an address would listen on every interface of the host.
    published = {name: published_ports(service) for name, service in services.items() if service.get("ports")}
    assert set(published) == {"api"}
    for name, mappings in published.items():
        assert all(address == LOOPBACK for address, _, _ in mappings), (name, mappings)


@pytest.mark.parametrize("name", ["postgres", "redis", "objectstore"])
def test_database_and_broker_ports_are_not_published(services: dict[str, dict[str, Any]], name: str) -> None:
    assert "ports" not in services[name]
    assert services[name].get("network_mode") != "host"


def test_admin_key_comes_from_the_environment_and_is_required(
    compose: dict[str, Any], app_services: dict[str, dict[str, Any]]
) -> None:
    value = app_services["api"]["environment"]["REGTRAIN_ADMIN_KEY"]
    required = REQUIRED_VARIABLE.fullmatch(value)
    assert required, f"REGTRAIN_ADMIN_KEY must be ${{REGTRAIN_ADMIN_KEY:?message}}, not {value!r}"
    assert required["name"] == "REGTRAIN_ADMIN_KEY"
    assert "regtrain keys new" in required["message"]
    # No regtrain secret is written into the file itself, for any service.
    for name, service in app_services.items():
        for variable, setting in {**compose["x-regtrain-env"], **service["environment"]}.items():
            if variable.startswith("REGTRAIN_") and SECRET_LOOKING.search(variable):
                assert REQUIRED_VARIABLE.fullmatch(str(setting)), (name, variable)
    assert not re.search(r"rt_[A-Za-z0-9_-]{20,}", COMPOSE_PATH.read_text()), "a key is written in compose"


def test_admin_key_is_a_secret_setting(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("REGTRAIN_ADMIN_KEY", "rt_" + "x" * 43)
    settings = Settings()
    assert settings.admin_key is not None
    assert "x" * 43 not in repr(settings)


def test_dockerfile_sets_no_secret_looking_env_or_arg(stages: dict[str, Stage]) -> None:
    for stage in stages.values():
        for keyword, arguments in stage.instructions:
            if keyword == "ENV":
                names = list(env_of({stage.name: Stage(stage.name, "", [(keyword, arguments)])}, stage.name))
            elif keyword == "ARG":
                names = [word.partition("=")[0] for word in shlex.split(arguments)]
            else:
                continue
            assert not [name for name in names if SECRET_LOOKING.search(name)], (stage.name, keyword, arguments)
    assert not re.search(r"rt_[A-Za-z0-9_-]{20,}", DOCKERFILE_PATH.read_text())


def test_dockerignore_keeps_secrets_out_of_the_build_context() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE_PATH.read_text().splitlines() if not line.startswith("#")}
    assert {".env", "var", "**/admin.key"} <= patterns


def test_regtrain_services_share_no_volume(app_services: dict[str, dict[str, Any]]) -> None:
    """Datasets, checkpoints and artifacts travel through the object store, so the API and the worker
    may run on hosts that share no disk: none of them mounts a volume."""
    assert {name: service.get("volumes") for name, service in app_services.items() if service.get("volumes")} == {}


@pytest.mark.parametrize("name", ["migrate", "api", "worker", "scheduler"])
def test_compose_settings_select_the_object_store_service(
    services: dict[str, dict[str, Any]],
    app_services: dict[str, dict[str, Any]],
    clean_environment: pytest.MonkeyPatch,
    name: str,
) -> None:
    settings = settings_for(app_services[name], clean_environment)
    assert settings.storage_url is not None and urlsplit(settings.storage_url).scheme == "s3"
    endpoint = urlsplit(settings.s3_endpoint_url or "")
    store = services[endpoint.hostname or ""]
    assert store["image"].startswith("chrislusf/seaweedfs:") and "-s3" in store["command"]
    assert f"-s3.port={endpoint.port}" in store["command"]
    assert store["volumes"] == ["objectstore-data:/data"], "a named volume, so that objects outlive the container"
    # Its one identity is the key pair the services sign with, from the same required variables.
    environment = app_services[name]["environment"]
    for variable, own in (
        ("REGTRAIN_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("REGTRAIN_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    ):
        required = REQUIRED_VARIABLE.fullmatch(environment[variable])
        assert required and required["name"] == variable
        assert store["environment"][own] == environment[variable]
    if name in ("api", "worker"):
        assert depends_on(app_services[name])["objectstore"] == "service_healthy"


# --- Commands ------------------------------------------------------------------------------------


def test_compose_commands_are_cli_commands(app_services: dict[str, dict[str, Any]]) -> None:
    parser = build_parser()
    known = subcommands(parser)
    assert known >= {"migrate", "api", "worker", "scheduler", "up"}
    for name, service in app_services.items():
        program, subcommand, *_ = service["command"]
        assert program == "regtrain", name
        assert subcommand in known, name
        assert parser.parse_args(service["command"][1:]).command == subcommand, name


@pytest.mark.parametrize(("target", "subcommand"), [("api", "api"), ("worker", "worker")])
def test_image_commands_are_cli_commands(
    stages: dict[str, Stage], pyproject: dict[str, Any], target: str, subcommand: str
) -> None:
    command = json.loads(effective(stages, target, "CMD")[-1])
    assert command[0] in pyproject["project"]["scripts"]
    assert pyproject["project"]["scripts"][command[0]] == "cli.main:main"
    assert build_parser().parse_args(command[1:]).command == subcommand


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_defines_the_api_and_worker_targets(stages: dict[str, Stage]) -> None:
    assert {"api", "worker"} <= set(stages)
    for target in ("api", "worker"):
        assert lineage(stages, target)[0].parent == "python:3.11-slim"


def test_compose_build_targets_exist_in_the_dockerfile(
    app_services: dict[str, dict[str, Any]], stages: dict[str, Stage]
) -> None:
    for service in app_services.values():
        assert service["build"]["context"] == "."
        assert build_target(service) in stages


def test_api_image_installs_the_project_without_torch(stages: dict[str, Stage], pyproject: dict[str, Any]) -> None:
    requirements = [req for args in pip_install_arguments(stages, "api") for req in requirements_in(args)]
    assert [project_extras(req) for req in requirements] == [set()], "exactly `pip install .`, no extras"
    # `pip install .` pulls the base dependencies: they must not bring torch either.
    base_dependencies = {Requirement(dep).name.lower() for dep in pyproject["project"]["dependencies"]}
    assert "torch" not in base_dependencies
    assert not any("torch" in req.lower() for req in requirements)


def test_worker_image_installs_the_worker_extra_and_the_pinned_torch(
    stages: dict[str, Stage], pyproject: dict[str, Any]
) -> None:
    requirements = [req for args in pip_install_arguments(stages, "worker") for req in requirements_in(args)]
    assert {"worker"} in [project_extras(req) for req in requirements]
    extra_torch = [Requirement(req) for req in pyproject["project"]["optional-dependencies"]["worker"]]
    extra_torch = [req for req in extra_torch if req.name == "torch"]
    image_torch = [Requirement(req) for req in requirements if project_extras(req) is None]
    image_torch = [req for req in image_torch if req.name == "torch"]
    assert [str(req.specifier) for req in extra_torch] == ["==2.13.0"]
    # The same exact pin, or installing the extra would swap the torch layer for another build.
    assert [str(req.specifier) for req in image_torch] == ["==2.13.0"]


def test_pip_uses_the_default_index_and_no_cache(stages: dict[str, Stage]) -> None:
    for target in ("api", "worker"):
        commands = pip_install_arguments(stages, target)
        assert commands, target
        for arguments in commands:
            assert "--no-cache-dir" in arguments, (target, arguments)
            options = [word.split("=")[0] for word in arguments if word.startswith("-")]
            assert not {"-i", "--index-url", "--extra-index-url", "-f", "--find-links"} & set(options)


@pytest.mark.parametrize("target", ["api", "worker"])
def test_images_run_as_a_non_root_user_in_app(stages: dict[str, Stage], target: str) -> None:
    users = effective(stages, target, "USER")
    assert users, target
    assert users[-1] not in ("root", "0", "0:0")
    assert effective(stages, target, "WORKDIR")[-1] == "/app"


@pytest.mark.parametrize("target", ["api", "worker"])
def test_images_keep_data_where_compose_mounts_it(
    stages: dict[str, Stage], compose: dict[str, Any], target: str
) -> None:
    assert env_of(stages, target)["REGTRAIN_HOME"] == compose["x-regtrain-env"]["REGTRAIN_HOME"]


def test_images_copy_every_packaged_directory(stages: dict[str, Stage], pyproject: dict[str, Any]) -> None:
    copied = set()
    for arguments in stages["source"].instructions:
        words = arguments[1].split()
        copied |= {word.rstrip("/") for word in words[:-1] if not word.startswith("--")}
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied
    assert {"pyproject.toml", pyproject["project"]["readme"], "alembic.ini"} <= copied
    for target in ("api", "worker"):
        assert "--from=source /app /app" in effective(stages, target, "COPY")


def test_every_copied_path_exists(stages: dict[str, Stage]) -> None:
    # A missing source fails `docker build` at its COPY, long after the change that removed it.
    copied = [
        word
        for keyword, arguments in stages["source"].instructions
        if keyword == "COPY"
        for word in arguments.split()[:-1]
    ]
    assert len(copied) >= 9
    assert [source for source in copied if not (ROOT / source).exists()] == []


def test_dockerignore_keeps_local_state_out_but_not_the_sources(stages: dict[str, Stage]) -> None:
    patterns = [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE_PATH.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".venv", "var", ".git"} <= set(patterns)
    copied = [
        word
        for keyword, arguments in stages["source"].instructions
        if keyword == "COPY"
        for word in arguments.split()[:-1]
    ]
    for source in copied:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in patterns), source


def test_api_health_check_probes_healthz_with_urllib(stages: dict[str, Stage]) -> None:
    from api.main import app

    health_checks = effective(stages, "api", "HEALTHCHECK")
    assert len(health_checks) == 1
    assert "urllib.request" in health_checks[0]
    assert "/healthz" in health_checks[0]
    # urlopen raises on anything but a 2xx answer, so the route must answer 200 without a database.
    response = TestClient(app).get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_api_image_commands_run_without_torch() -> None:
    """The api image runs `regtrain api`, `regtrain migrate` and the scheduler with no torch installed."""
    script = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not in the api image")
        return None

sys.meta_path.insert(0, NoTorch())
import api.main, cli.main, core.migrate, core.celery_app, models
cli.main.build_parser()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_package_carries_every_file_the_dashboard_serves() -> None:
    """`pip install .` (the images) installs only what package-data names besides the modules."""
    package_data = tomllib.loads(PYPROJECT_PATH.read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["api.ui"]
    ui = ROOT / "api" / "ui"
    files = [path.relative_to(ui).as_posix() for path in ui.rglob("*") if path.is_file() and path.suffix != ".py"]
    files = [name for name in files if "__pycache__" not in name]
    assert files, "the dashboard has templates and static files"
    missing = [name for name in files if not any(fnmatch.fnmatch(name, pattern) for pattern in patterns)]
    assert missing == [], f"not installed by `pip install .`: {missing}"
