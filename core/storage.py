"""Where datasets, artifacts and checkpoints live: one interface, `Store`, over a local folder (the
embedded default, REGTRAIN_HOME itself) or an S3-compatible object store (REGTRAIN_STORAGE_URL=
s3://bucket/prefix), so that the API and workers on different hosts share nothing but the database,
the broker and the store.

Keys are relative, "/"-separated paths, the same in both stores:

    datasets/<parse>/data.parquet | data.npz   one parse of uploaded bytes (store_key below)
    artifacts/<job>.safetensors                 a job's trained weights (partial ones: <job>.partial-<n>)
    artifacts/checkpoints/<job>.safetensors     a job's last end-of-epoch checkpoint

A reader never sees part of an object: the local store writes a temporary file in the same folder,
fsyncs it and renames it over the key; S3 makes an object visible only when its single PUT or its
multipart upload completes. A store that cannot be reached raises StoreUnavailable (503 in the API); a
key that is not there raises ObjectMissing. Logs name the store by its location, never by its
credentials; what a client is told names neither.

boto3 is imported only when an S3 store is first used, so the API's start and the embedded default do
not pay for it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from core.errors import ObjectMissing, StoreUnavailable
from core.settings import Settings

if TYPE_CHECKING:
    from pydantic import SecretStr

log = logging.getLogger(__name__)

CANONICAL_FILE = {"table": "data.parquet", "arrays": "data.npz"}
CHUNK_BYTES = 1024 * 1024
# A temporary file's name starts with this, so that it is never taken for an object.
TEMPORARY_PREFIX = ".incoming-"
# What a client is told; the log says which store and why (never with credentials).
UNAVAILABLE = "The object store is unavailable right now; retry in a few seconds."


def store_key(sha256: str, na_values: Sequence[str] | None) -> str:
    """The store folder of one parse: the same bytes read with other missing-value markers are another
    table. None (arrays, and tables stored before the markers were recorded) is the bare sha256."""
    if na_values is None:
        return sha256
    markers = hashlib.sha256(json.dumps(list(na_values)).encode()).hexdigest()[:16]
    return f"{sha256}-na-{markers}"


def dataset_prefix(parse: str) -> str:
    return f"datasets/{parse}/"


def dataset_object_key(parse: str, kind: str) -> str:
    """The canonical file of a parse: data.parquet (kind "table") or data.npz ("arrays")."""
    return dataset_prefix(parse) + CANONICAL_FILE[kind]


def artifact_object_key(artifact_key: str) -> str:
    """`artifact_key` is the job's column: the artifact's file name."""
    return f"artifacts/{artifact_key}"


def checkpoint_object_key(job_id: str) -> str:
    return f"artifacts/checkpoints/{job_id}.safetensors"


@dataclass
class Opened:
    """An object being read: its size, and its bytes in chunks (the source is closed once they are read,
    or when the iterator is closed)."""

    size: int
    chunks: Iterator[bytes]


class Store(Protocol):
    # Where the store is (a folder or s3://bucket/prefix), for messages; never credentials.
    location: str

    def put_file(self, key: str, source: Path) -> None:
        """Stores the file's bytes under `key`, replacing what was there; readers see the old or the new
        object whole."""
        ...

    def put_stream(self, key: str, source: BinaryIO) -> None:
        """Stores what `source` reads until its end; if reading fails, the key keeps what it held."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Opened:
        """Raises ObjectMissing now, before any chunk, when the key is not there."""
        ...

    def stream(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]: ...

    def read_bytes(self, key: str) -> bytes: ...

    def get_to_file(self, key: str, destination: Path) -> None:
        """Writes the object to `destination` atomically (a temporary file in its folder, then a rename), so
        that concurrent readers and writers of the same destination never see part of it."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None:
        """Removes the object; a key that is not there is no error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Removes every object whose key starts with `prefix`; returns how many."""
        ...

    def probe(self) -> None:
        """Raises StoreUnavailable when the store cannot be used right now; quick (for readiness checks)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The object's own file when the store is a folder on this host (read or written in place, no
        copy); None for a remote store."""
        ...


def _check_key(key: str) -> str:
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"{key!r} is not a store key (a relative path without '.' or '..' parts)")
    return key


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}-{path.name}")


def _fsync_folder(folder: Path) -> None:
    """The rename itself survives a power loss only once the folder's entry is on disk."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_atomically(destination: Path, chunks: Iterator[bytes] | Sequence[bytes]) -> int:
    """Writes the chunks to a temporary file beside `destination`, fsyncs it and renames it over
    `destination`; on any failure the temporary file is removed and `destination` is untouched."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(destination)
    written = 0
    try:
        with temporary.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(destination.parent)
    return written


def _file_chunks(handle: Any, chunk_bytes: int) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


class LocalStore:
    """A folder; the default is REGTRAIN_HOME, which keeps the layout home/datasets and home/artifacts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def __repr__(self) -> str:
        return f"LocalStore({self.location!r})"

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _missing(self, key: str) -> ObjectMissing:
        return ObjectMissing(f"{key} is not in the store.")

    def _unavailable(self, key: str, exc: OSError) -> StoreUnavailable:
        log.warning("store %s: %s failed: %s", self.location, key, exc)
        return StoreUnavailable(UNAVAILABLE)

    def put_file(self, key: str, source: Path) -> None:
        with source.open("rb") as handle:
            self.put_stream(key, handle)

    def put_stream(self, key: str, source: BinaryIO) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unavailable(key, exc) from exc
        write_atomically(path, iter(lambda: source.read(CHUNK_BYTES), b""))

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            write_atomically(self._path(key), [data])
        except OSError as exc:
            raise self._unavailable(key, exc) from exc

    def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Opened:
        path = self._path(key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise self._missing(key) from exc
        except OSError as exc:
            raise self._unavailable(key, exc) from exc
        return Opened(os.fstat(handle.fileno()).st_size, _file_chunks(handle, chunk_bytes))

    def stream(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        return self.open(key, chunk_bytes).chunks

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.stream(key))

    def get_to_file(self, key: str, destination: Path) -> None:
        write_atomically(destination, self.open(key).chunks)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise self._missing(key) from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise self._unavailable(key, exc) from exc

    def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise ValueError(f"{prefix!r}: a prefix to delete is a folder and ends with '/'")
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return 0
        count = sum(1 for path in folder.rglob("*") if path.is_file())
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def probe(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unavailable(".", exc) from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise self._unavailable(".", PermissionError(f"{self.root} is not writable"))


# What an S3 request may take before the store counts as unreachable: connecting is quick on a working
# network; reads may wait on a busy store. botocore's standard retry mode retries throttling, 5xx and
# connection errors with exponential backoff within these attempts.
S3_CONNECT_TIMEOUT_SECONDS = 5
S3_READ_TIMEOUT_SECONDS = 60
S3_ATTEMPTS = 3
# Above this size an upload is multipart (parts of this size, at least S3's 5 MiB); the object appears only
# when the upload completes.
S3_MULTIPART_BYTES = 64 * 1024 * 1024
# A readiness probe answers within this, in one attempt.
S3_PROBE_TIMEOUT_SECONDS = 2
# Error codes of a key (or bucket) that is not there.
S3_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


class S3Store:
    """An S3-compatible bucket under a prefix. Credentials: REGTRAIN_S3_ACCESS_KEY_ID and
    REGTRAIN_S3_SECRET_ACCESS_KEY when set, else boto3's standard chain (AWS_* variables, shared files,
    instance or container roles)."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint_url: str | None = None,
        access_key_id: SecretStr | None = None,
        secret_access_key: SecretStr | None = None,
        multipart_bytes: int = S3_MULTIPART_BYTES,
    ) -> None:
        self.bucket, self.prefix, self.endpoint_url = bucket, prefix.strip("/"), endpoint_url
        self.multipart_bytes = multipart_bytes
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        # Kept as SecretStr: their repr and str are masked wherever this object is printed.
        self._access_key_id, self._secret_access_key = access_key_id, secret_access_key
        self._client: Any = None
        self._probe_client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        endpoint = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"S3Store({self.location!r}{endpoint})"

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def probe(self) -> None:
        with self._lock:
            if self._probe_client is None:
                self._probe_client = self._make_client(
                    connect_timeout=S3_PROBE_TIMEOUT_SECONDS, read_timeout=S3_PROBE_TIMEOUT_SECONDS, attempts=1
                )
        try:
            self._probe_client.head_bucket(Bucket=self.bucket)
        except self._errors() as exc:
            translated = self._translate(f"bucket {self.bucket}", exc)
            # A bucket that is not there is no missing object: nothing can be stored.
            raise StoreUnavailable(UNAVAILABLE) if isinstance(translated, ObjectMissing) else translated from exc

    def _make_client(
        self,
        connect_timeout: float = S3_CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = S3_READ_TIMEOUT_SECONDS,
        attempts: int = S3_ATTEMPTS,
    ) -> Any:
        import boto3
        from botocore.config import Config

        # botocore's debug log prints every request's headers, and their Authorization names the access key id.
        for name in ("boto3", "botocore", "s3transfer"):
            library = logging.getLogger(name)
            if library.level < logging.INFO:
                library.setLevel(logging.INFO)
        session = boto3.session.Session()
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": attempts, "mode": "standard"},
            # Stores other than AWS (SeaweedFS, MinIO) serve buckets as paths, not as host names.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            # Checksums only where the API requires them: not every S3-compatible store knows the newer ones.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        credentials = {}
        if self._access_key_id is not None and self._secret_access_key is not None:
            credentials = {
                "aws_access_key_id": self._access_key_id.get_secret_value(),
                "aws_secret_access_key": self._secret_access_key.get_secret_value(),
            }
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=session.region_name or "us-east-1",
            config=config,
            **credentials,
        )

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _translate(self, key: str, exc: Exception) -> Exception:
        """botocore's errors as the store's: a key that is not there, or a store that cannot be used (the
        log names the store and the error's code or kind, never a credential)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in S3_MISSING_KEY:
                return ObjectMissing(f"{key} is not in the store.")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            log.warning("store %s: %s failed: HTTP %s %s", self.location, key, status, code)
            return StoreUnavailable(UNAVAILABLE)
        if isinstance(exc, BotoCoreError):
            log.warning("store %s: %s failed: %s", self.location, key, type(exc).__name__)
            return StoreUnavailable(UNAVAILABLE)
        return exc

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def put_file(self, key: str, source: Path) -> None:
        # One open handle for the whole upload: a file renamed over meanwhile (a checkpoint) is read as it
        # was when opened, never mixed with its successor.
        with source.open("rb") as handle:
            self.put_stream(key, handle)

    def put_stream(self, key: str, source: BinaryIO) -> None:
        from boto3.s3.transfer import TransferConfig

        # A failed multipart upload is aborted by s3transfer: its parts never become the object.
        transfer = TransferConfig(multipart_threshold=self.multipart_bytes, multipart_chunksize=self.multipart_bytes)
        try:
            self.client.upload_fileobj(source, self.bucket, self._key(key), Config=transfer)
        except self._errors() as exc:
            raise self._translate(key, exc) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except self._errors() as exc:
            raise self._translate(key, exc) from exc

    def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Opened:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._errors() as exc:
            raise self._translate(key, exc) from exc
        return Opened(int(response["ContentLength"]), self._chunks(key, response["Body"], chunk_bytes))

    def _chunks(self, key: str, body: Any, chunk_bytes: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_bytes)
        except self._errors() as exc:
            raise self._translate(key, exc) from exc
        finally:
            body.close()

    def stream(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        return self.open(key, chunk_bytes).chunks

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.stream(key))

    def get_to_file(self, key: str, destination: Path) -> None:
        opened = self.open(key)
        written = write_atomically(destination, opened.chunks)
        if written != opened.size:
            destination.unlink(missing_ok=True)
            log.warning("store %s: %s came %d of %d bytes short", self.location, key, written, opened.size)
            raise StoreUnavailable(UNAVAILABLE)

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectMissing:
            return False
        return True

    def size(self, key: str) -> int:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except self._errors() as exc:
            raise self._translate(key, exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except self._errors() as exc:
            translated = self._translate(key, exc)
            if not isinstance(translated, ObjectMissing):
                raise translated from exc

    def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise ValueError(f"{prefix!r}: a prefix to delete is a folder and ends with '/'")
        deleted = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix.rstrip("/")) + "/"
            )
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    deleted += len(keys)
        except self._errors() as exc:
            raise self._translate(prefix, exc) from exc
        return deleted

    def local_path(self, key: str) -> None:
        return None


def _local_root(settings: Settings, url: str | None) -> Path | None:
    if url is None:
        return settings.home
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("REGTRAIN_STORAGE_URL: a file:// URL names a folder on this host (file:///path).")
        return Path(parts.path)
    if parts.scheme == "":
        return Path(url)
    return None


def make_store(settings: Settings) -> Store:
    """The store REGTRAIN_STORAGE_URL names (see the module's docstring)."""
    url = settings.storage_url
    root = _local_root(settings, url)
    if root is not None:
        return LocalStore(root)
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError(
            "REGTRAIN_STORAGE_URL must be a folder, file:///path or s3://bucket/prefix; its scheme is "
            f"{parts.scheme!r}."
        )
    if "@" in parts.netloc or not parts.hostname:
        raise ValueError(
            "REGTRAIN_STORAGE_URL must be s3://bucket/prefix, with the credentials in REGTRAIN_S3_ACCESS_KEY_ID and "
            "REGTRAIN_S3_SECRET_ACCESS_KEY (or the standard AWS variables), not in the URL."
        )
    endpoint = settings.s3_endpoint_url
    if endpoint is not None and "@" in urlsplit(endpoint).netloc:
        raise ValueError(
            "REGTRAIN_S3_ENDPOINT_URL must not hold credentials; set REGTRAIN_S3_ACCESS_KEY_ID and "
            "REGTRAIN_S3_SECRET_ACCESS_KEY instead."
        )
    if (settings.s3_access_key_id is None) != (settings.s3_secret_access_key is None):
        raise ValueError(
            "Set both REGTRAIN_S3_ACCESS_KEY_ID and REGTRAIN_S3_SECRET_ACCESS_KEY, or neither (then the standard AWS "
            "credential chain applies)."
        )
    return S3Store(
        parts.netloc,
        parts.path,
        endpoint_url=endpoint,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )


_stores: dict[tuple[Any, ...], Store] = {}
_stores_lock = threading.Lock()


def get_store(settings: Settings) -> Store:
    """One store per configuration in this process, so that an S3 client and its connections are reused."""
    credentials = hashlib.sha256()
    for secret in (settings.s3_access_key_id, settings.s3_secret_access_key):
        credentials.update(b"\0" + (secret.get_secret_value().encode() if secret is not None else b""))
    identity = (
        settings.storage_url,
        str(settings.home.resolve()) if settings.storage_url is None else None,
        settings.s3_endpoint_url,
        credentials.hexdigest(),
    )
    with _stores_lock:
        store = _stores.get(identity)
        if store is None:
            store = _stores[identity] = make_store(settings)
        return store
