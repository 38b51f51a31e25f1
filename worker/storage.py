"""The worker's side of the store (core/storage.py): retrying it while it is unreachable, putting what a
job made into it, and keeping a job's checkpoint there so that another worker host can resume the job.

The training engine (worker/training) knows nothing of stores: it writes its checkpoint to a local
file after every epoch and says so through a callback. CheckpointSync puts that file into the store
from a background thread, at most once every REGTRAIN_CHECKPOINT_UPLOAD_SECONDS (the first that long
after the first checkpoint, so a job shorter than that uploads once, at its end), and always the last
one when the attempt ends. A worker killed in between leaves the store's previous checkpoint, from which
the job resumes exactly, redoing at most those seconds of epochs. With the local store the engine
writes the store's own file, and nothing is copied."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from core.errors import ObjectMissing, StoreUnavailable
from core.settings import Settings, get_settings
from core.storage import TEMPORARY_PREFIX, Store, checkpoint_object_key
from worker.training.checkpoint import checkpoint_epoch

log = logging.getLogger(__name__)

T = TypeVar("T")


def retrying_store(operation: Callable[[], T], what: str, give_up: Callable[[], bool] | None = None) -> T:
    """`operation`, tried again with backoff while the store is unreachable, for up to
    REGTRAIN_STORE_RETRY_SECONDS (or until `give_up` says the attempt is over); then StoreUnavailable."""
    deadline = time.monotonic() + get_settings().store_retry_seconds
    delay = 0.5
    while True:
        try:
            return operation()
        except StoreUnavailable:
            if time.monotonic() + delay > deadline or (give_up is not None and give_up()):
                raise
            log.warning("store unavailable while %s; retrying in %.1f s", what, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def work_path(settings: Settings, key: str) -> Path:
    """Where this worker keeps its own copy of an object bound for a remote store: under its home."""
    return settings.home / "work" / key


@contextmanager
def put_when_written(
    store: Store, key: str, give_up: Callable[[], bool] | None = None, *, retry: bool = True
) -> Iterator[Path]:
    """A local path to write the object to; when the block ends without error and wrote the file, it goes
    into the store under `key` (retried while the store is unreachable, unless `retry` is False), and the
    local file is removed either way. With the local store the file is written beside the key's and
    renamed over it: no copy."""
    in_place = store.local_path(key)
    final = in_place if in_place is not None else work_path(get_settings(), key)
    # A name of its own: nothing half-written is ever under the key, and two writers never share a file.
    path = final.with_name(f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}-{final.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield path
        if not path.is_file():
            return
        if in_place is not None:
            os.replace(path, in_place)
        elif retry:
            retrying_store(lambda: store.put_file(key, path), f"storing {key}", give_up)
        else:
            store.put_file(key, path)
    finally:
        path.unlink(missing_ok=True)


class CheckpointSync:
    """A job's checkpoint: the local file the engine writes (`path`) and its copy in the store."""

    def __init__(self, store: Store, settings: Settings, job_id: str, owned: Callable[[], bool]) -> None:
        self.store, self.job_id, self.owned = store, job_id, owned
        self.key = checkpoint_object_key(job_id)
        in_place = store.local_path(self.key)
        self.remote = in_place is None
        self.path = in_place if in_place is not None else work_path(settings, self.key)
        self.interval = settings.checkpoint_upload_seconds
        self._written = 0  # the last epoch whose checkpoint the engine wrote
        self._uploaded = 0  # the last epoch whose checkpoint is in the store (as far as this attempt knows)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def fetch(self, give_up: Callable[[], bool] | None = None) -> None:
        """Before the attempt trains: the store's checkpoint, when it is further along than this worker's
        own copy (left by an earlier attempt here that died) or there is none here. Any checkpoint of the
        job resumes it exactly; the latest redoes the fewest epochs."""
        if not self.remote:
            return
        fetched = self.path.with_name(self.path.name + ".fetched")
        try:
            retrying_store(lambda: self.store.get_to_file(self.key, fetched), f"fetching {self.key}", give_up)
        except ObjectMissing:
            return
        stored_epoch = checkpoint_epoch(fetched)
        self._uploaded = stored_epoch
        own_epoch = checkpoint_epoch(self.path) if self.path.is_file() else 0
        if own_epoch > stored_epoch:
            fetched.unlink(missing_ok=True)
            with self._lock:
                self._written = own_epoch  # the store gets it when this attempt ends
            return
        fetched.replace(self.path)
        log.info("job %s resumes from the store's checkpoint of epoch %d", self.job_id, stored_epoch)

    def written(self, epoch: int) -> None:
        """The engine's callback after each checkpoint write; cheap: the upload happens elsewhere."""
        if not self.remote:
            return
        with self._lock:
            self._written = epoch
        if self._thread is None:
            self._thread = threading.Thread(target=self._upload_now_and_then, name=f"checkpoint-{self.job_id}")
            self._thread.daemon = True
            self._thread.start()
        self._wake.set()

    def _upload_now_and_then(self) -> None:
        if self._closed.wait(self.interval):
            return
        while True:
            self._wake.wait()  # a checkpoint newer than the last upload, or the end of the attempt
            if self._closed.is_set():
                return
            self._wake.clear()
            self._upload("periodic")
            if self._closed.wait(self.interval):
                return

    def _upload(self, why: str) -> bool:
        """Puts the latest checkpoint into the store; True when the store then holds it (or nothing newer
        was written)."""
        with self._lock:
            epoch = self._written
        if epoch <= self._uploaded or not self.owned():
            # Nothing new, or the job belongs to another attempt now, whose checkpoint this must not replace.
            return epoch <= self._uploaded
        try:
            # The engine renames each checkpoint over the last, and put_file reads one open handle: the
            # upload is one whole checkpoint, never two mixed.
            self.store.put_file(self.key, self.path)
        except StoreUnavailable as exc:
            log.warning("job %s: the %s checkpoint upload (epoch %d) failed: %s", self.job_id, why, epoch, exc.detail)
            return False
        self._uploaded = epoch
        return True

    def finish(self) -> None:
        """The attempt is over: stop uploading in the background, put the last checkpoint into the store,
        and drop this worker's copy once the store has it. Never raises: the job's outcome comes first."""
        if not self.remote or self._closed.is_set():
            return
        self._stop_uploading()
        # This worker's copy is kept only while it is newer than the store's and the job is still this
        # attempt's: a later attempt here then resumes from it.
        if self._upload("last") or not self.owned():
            self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        """The job trained to its end and its artifact is stored: no attempt will resume it, so its
        checkpoint goes, here and in the store (a small job never uploads one). Best effort: a checkpoint
        left behind costs space, never correctness."""
        self._stop_uploading()
        self.path.unlink(missing_ok=True)
        if self.remote and self._uploaded > 0 and self.owned():
            try:
                self.store.delete(self.key)
            except StoreUnavailable as exc:
                log.warning("job %s: its checkpoint stays in the store: %s", self.job_id, exc.detail)

    def _stop_uploading(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
