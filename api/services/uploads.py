"""Receiving a multipart upload: streamed to disk, never held whole in memory, cut off with 413 as
soon as the body passes REGTRAIN_MAX_UPLOAD_BYTES."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from core.errors import InvalidInput, TooLarge
from core.settings import Settings

COPY_CHUNK_BYTES = 1024 * 1024
# Text fields (name, target) are short; a larger one is a mistake, not data.
MAX_FIELD_BYTES = 64 * 1024


@dataclass
class ReceivedUpload:
    path: Path
    filename: str | None
    sha256: str
    size_bytes: int
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _too_large(settings: Settings, size: int | None = None) -> TooLarge:
    seen = f"is {size:,} bytes" if size is not None else "passed the limit"
    return TooLarge(
        f"The upload {seen}; the largest accepted is {settings.max_upload_bytes:,} bytes "
        "(REGTRAIN_MAX_UPLOAD_BYTES). Split the data or ask the operator to raise the limit."
    )


async def _counted(request: Request, settings: Settings) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > settings.max_upload_bytes:
            raise _too_large(settings)
        yield chunk


async def receive_upload(request: Request, settings: Settings) -> ReceivedUpload:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise _too_large(settings, int(declared))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("Send the dataset as multipart/form-data with a `file` part and a `name` field.")
    parser = MultiPartParser(
        request.headers, _counted(request, settings), max_files=1, max_fields=8, max_part_size=MAX_FIELD_BYTES
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInput(f"The multipart body could not be read: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("The upload has no `file` part; send the dataset file in a part named `file`.")
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        incoming = settings.home / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with tempfile.NamedTemporaryFile(dir=incoming, delete=False, suffix=".upload") as out:
            while chunk := await upload.read(COPY_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return ReceivedUpload(
            path=Path(out.name), filename=upload.filename, sha256=digest.hexdigest(), size_bytes=size, fields=fields
        )
    finally:
        await form.close()


def store_original(upload: ReceivedUpload, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(upload.path, destination)
