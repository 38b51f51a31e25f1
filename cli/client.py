"""The client side of the `regtrain` command: JSON over HTTP to a running API, with the key as a bearer token.

Whatever stops a command that a user can act on (an API that does not answer, a refused key, an unknown
id, a spec the API refuses, a file that cannot be read) is a `CommandError`: one sentence on stderr and
an exit status, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from cli.keys import USAGE_ERROR
from core.settings import Settings, get_settings

# A job or study that ended badly, or an API that failed on its side.
FAILURE = 1
# The events stream sends a keepalive comment every 15 s; a read that waits much longer means a dead link.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=45.0)
REQUEST_TIMEOUT = httpx.Timeout(30.0)
NO_KEY_HINT = "no key was sent: set REGTRAIN_API_KEY, or run where REGTRAIN_HOME holds admin.key."


class CommandError(Exception):
    """Ends a command: `message` goes to stderr after "regtrain: ", `status` is the exit status."""

    def __init__(self, message: str, status: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NotFoundError(CommandError):
    """The API answered 404: callers that try a job, then a study, catch this one."""


def segment(identifier: str) -> str:
    """An id as one path segment: a slash or a "?" in it cannot reach another route, nor can "." or "..",
    which URL normalization would otherwise resolve."""
    quoted = quote(identifier, safe="")
    return quoted.replace(".", "%2E") if set(identifier) <= {"."} else quoted


def api_url(settings: Settings, given: str | None = None) -> str:
    return (given or settings.url or f"http://{settings.host}:{settings.port}").rstrip("/")


def client_key(settings: Settings) -> str | None:
    """REGTRAIN_API_KEY, else the first admin key when this host's REGTRAIN_HOME holds it and it is readable."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    try:
        return settings.admin_key_path.read_text().strip() or None
    except OSError:
        return None


def read_json_file(path: str) -> Any:
    """A spec file's JSON; a missing file or bad JSON is a sentence naming the file and the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise CommandError(f"there is no file {path}.") from error
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise CommandError(f"cannot read {path}: {reason}.") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from error


def explain(response: httpx.Response) -> str:
    """The server's sentence for a refused request; FastAPI's validation errors become "field: reason" lines."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    detail = answer.get("detail") if isinstance(answer, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        problems = []
        for problem in detail:
            if not isinstance(problem, dict):
                continue
            # The first element of a location is where the value came from (body, query, path).
            where = ".".join(str(part) for part in problem.get("loc", [])[1:])
            problems.append(f"{where}: {problem.get('msg')}" if where else str(problem.get("msg")))
        return "the API refused the request:\n  " + "\n  ".join(problems)
    return f"the API answered {response.status_code} {response.reason_phrase}."


class ApiClient:
    """A running API's `/v1`, with the key as a bearer token. Every refusal becomes a `CommandError`: 401 and
    403 with the server's sentence (and a hint when no key was sent), 404 as `NotFoundError`, other 4xx with
    the server's sentence and exit status 2, 5xx with exit status 1."""

    def __init__(self, base_url: str, key: str | None) -> None:
        self.base_url = base_url
        self.key = key
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT)

    @classmethod
    def from_settings(cls, url: str | None = None) -> ApiClient:
        settings = get_settings()
        return cls(api_url(settings, url), client_key(settings))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def unreachable(self, error: httpx.TransportError) -> CommandError:
        reason = str(error) or type(error).__name__
        return CommandError(f"cannot reach the API at {self.base_url} ({reason}); is `regtrain up` running there?")

    def check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        sentence = explain(response)
        if response.status_code in (401, 403):
            if self.key is None:
                sentence = f"{sentence}\nregtrain: {NO_KEY_HINT}"
            raise CommandError(sentence)
        if response.status_code == 404:
            raise NotFoundError(sentence)
        raise CommandError(sentence, USAGE_ERROR if response.status_code < 500 else FAILURE)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **options)
        except httpx.TransportError as error:
            raise self.unreachable(error) from error
        return self.check(response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body).json()

    def download(self, path: str, **params: Any) -> bytes:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).content

    @contextmanager
    def stream(self, path: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """An open streaming GET; transport errors are left to the caller, which reconnects."""
        with self.http.stream("GET", path, headers=headers, timeout=STREAM_TIMEOUT) as response:
            yield response

    def job_or_study(self, identifier: str) -> tuple[str, dict[str, Any]]:
        """("job", body) or ("study", body): ids of both share one namespace, so the job is asked for first."""
        try:
            return "job", self.get(f"/v1/jobs/{segment(identifier)}")
        except NotFoundError:
            pass
        try:
            return "study", self.get(f"/v1/studies/{segment(identifier)}")
        except NotFoundError as error:
            raise CommandError(f"there is no job or study with id {identifier!r}.") from error
