"""Domain errors. Each carries its HTTP status; the API turns them into {"detail", "error"}."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def code(self) -> str:
        return type(self).__name__


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class TooLarge(DomainError):
    status_code = 413


class InvalidInput(DomainError):
    status_code = 422


class TooManyRequests(DomainError):
    status_code = 429
    retry_after_seconds = 30


class Unavailable(DomainError):
    status_code = 503
    retry_after_seconds = 5


class Unauthorized(DomainError):
    """No key, or a key that is unknown or revoked."""

    status_code = 401


class Forbidden(DomainError):
    """A valid key without the scope the request needs."""

    status_code = 403


class StoreUnavailable(Unavailable):
    """The store of datasets, artifacts and checkpoints cannot be reached; a retry later may succeed."""


class ObjectMissing(NotFound):
    """An object that the database points at is not in the store."""
