"""The store's contract, held by both stores alike: the local folder and S3 (a real SeaweedFS server).
Objects read back as written, in whole or in chunks; a writer that fails leaves the old object (or none);
a missing key is a domain error that names it; credentials never show."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ObjectMissing, StoreUnavailable
from core.settings import Settings
from core.storage import TEMPORARY_PREFIX, LocalStore, S3Store, Store, get_store, make_store
from tests.support.s3 import ACCESS_KEY_ID, BUCKET, SECRET_ACCESS_KEY, SeaweedFS
from tests.support.servers import free_port

MIB = 1024 * 1024


def s3_settings(tmp_path: Path, endpoint_url: str, secret: str = SECRET_ACCESS_KEY) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=tmp_path / "home",
        storage_url=f"s3://{BUCKET}/contract-{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=endpoint_url,
        s3_access_key_id=ACCESS_KEY_ID,  # type: ignore[arg-type]
        s3_secret_access_key=secret,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return make_store(Settings(_env_file=None, home=tmp_path / "home"))  # type: ignore[call-arg]
    server: SeaweedFS = request.getfixturevalue("s3_server")
    return make_store(s3_settings(tmp_path, server.endpoint_url))


class FailingSource(io.RawIOBase):
    """A writer's source that breaks after `good` bytes, as a crashing writer would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("the writer died")
        n = self.left if size < 0 else min(size, self.left)
        self.left -= n
        return b"x" * n


def test_the_default_store_is_home_in_todays_layout(tmp_path: Path) -> None:
    store = make_store(Settings(_env_file=None, home=tmp_path))  # type: ignore[call-arg]
    store.put_bytes("datasets/abc/data.parquet", b"table")
    store.put_bytes("artifacts/checkpoints/job.safetensors", b"checkpoint")
    assert (tmp_path / "datasets" / "abc" / "data.parquet").read_bytes() == b"table"
    assert (tmp_path / "artifacts" / "checkpoints" / "job.safetensors").read_bytes() == b"checkpoint"
    assert store.local_path("datasets/abc/data.parquet") == tmp_path / "datasets" / "abc" / "data.parquet"


def test_what_is_put_reads_back_whole_and_in_chunks(store: Store, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    store.put_bytes("artifacts/a.safetensors", data)
    assert store.exists("artifacts/a.safetensors")
    assert store.size("artifacts/a.safetensors") == len(data)
    assert store.read_bytes("artifacts/a.safetensors") == data
    chunks = list(store.stream("artifacts/a.safetensors", chunk_bytes=4096))
    assert b"".join(chunks) == data and [len(c) for c in chunks] == [4096, 4096, 2048]
    opened = store.open("artifacts/a.safetensors")
    assert opened.size == len(data) and b"".join(opened.chunks) == data

    source = tmp_path / "upload.parquet"
    source.write_bytes(b"first")
    store.put_file("datasets/k/data.parquet", source)
    source.write_bytes(b"second, longer")
    store.put_file("datasets/k/data.parquet", source)
    copy = tmp_path / "cache" / "k" / "data.parquet"
    store.get_to_file("datasets/k/data.parquet", copy)
    assert copy.read_bytes() == b"second, longer"
    assert [p.name for p in copy.parent.iterdir()] == ["data.parquet"], "no temporary file is left"


def test_a_multipart_upload_reads_back_whole(store: Store) -> None:
    if isinstance(store, S3Store):
        store.multipart_bytes = 5 * MIB  # S3's smallest part: three parts here
    data = bytes(range(256)) * (11 * MIB // 256)
    store.put_stream("artifacts/big.safetensors", io.BytesIO(data))
    assert store.size("artifacts/big.safetensors") == len(data)
    assert store.read_bytes("artifacts/big.safetensors") == data


@pytest.mark.parametrize("size", [1000, 11 * MIB], ids=["single-put", "multipart"])
def test_a_writer_that_fails_leaves_the_old_object(store: Store, size: int) -> None:
    if isinstance(store, S3Store):
        store.multipart_bytes = 5 * MIB
    store.put_bytes("artifacts/checkpoints/j.safetensors", b"epoch 3")
    with pytest.raises(OSError, match="the writer died"):
        store.put_stream("artifacts/checkpoints/j.safetensors", FailingSource(size - 1))
    assert store.read_bytes("artifacts/checkpoints/j.safetensors") == b"epoch 3"
    with pytest.raises(OSError, match="the writer died"):
        store.put_stream("artifacts/checkpoints/new.safetensors", FailingSource(size - 1))
    assert not store.exists("artifacts/checkpoints/new.safetensors"), "a failed first write leaves no object"
    local = store.local_path("artifacts/checkpoints/j.safetensors")
    if local is not None:
        assert not [p for p in local.parent.iterdir() if p.name.startswith(TEMPORARY_PREFIX)]


def test_a_missing_key_is_a_domain_error_that_names_it(store: Store, tmp_path: Path) -> None:
    key = "datasets/absent/data.parquet"
    assert not store.exists(key)
    for read in (store.read_bytes, store.size, store.open, lambda k: store.get_to_file(k, tmp_path / "copy")):
        with pytest.raises(ObjectMissing) as raised:
            read(key)
        assert key in raised.value.detail and raised.value.status_code == 404
    assert not (tmp_path / "copy").exists()


def test_delete_and_delete_prefix(store: Store) -> None:
    for key in ("datasets/a/data.parquet", "datasets/a/extra.bin", "datasets/ab/data.parquet"):
        store.put_bytes(key, b"x")
    store.delete("datasets/a/extra.bin")
    store.delete("datasets/a/extra.bin")  # a key that is gone already is no error
    assert not store.exists("datasets/a/extra.bin")
    assert store.delete_prefix("datasets/a/") == 1
    assert not store.exists("datasets/a/data.parquet")
    assert store.exists("datasets/ab/data.parquet"), "a sibling that shares the prefix's text stays"
    assert store.delete_prefix("datasets/none/") == 0


def test_keys_that_climb_out_are_refused(store: Store) -> None:
    for key in ("../etc/passwd", "datasets/../../x", "/abs", "datasets//x"):
        with pytest.raises(ValueError, match="not a store key"):
            store.put_bytes(key, b"x")


def test_an_unreachable_store_is_unavailable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = make_store(s3_settings(tmp_path, f"http://127.0.0.1:{free_port()}"))
    for operation in (lambda: store.exists("a/b"), lambda: store.put_bytes("a/b", b"x"), lambda: store.open("a/b")):
        with pytest.raises(StoreUnavailable) as raised:
            operation()
        assert raised.value.status_code == 503 and raised.value.retry_after_seconds
        assert raised.value.detail == "The object store is unavailable right now; retry in a few seconds."
    assert f"s3://{BUCKET}/contract-" in caplog.text and "EndpointConnectionError" in caplog.text


def test_a_probe_of_a_working_store_passes_and_leaves_it_as_it_was(store: Store, tmp_path: Path) -> None:
    store.put_bytes("kept/a", b"x")
    store.probe()
    assert store.read_bytes("kept/a") == b"x"
    assert store.delete_prefix("kept/") == 1, "the probe stored nothing beside it"
    fresh = LocalStore(tmp_path / "fresh")
    fresh.probe()
    assert (tmp_path / "fresh").is_dir() and not any((tmp_path / "fresh").iterdir()), "made its folder, wrote nothing"


def test_a_probe_of_a_store_that_cannot_be_used_is_unavailable(tmp_path: Path) -> None:
    unreachable = make_store(s3_settings(tmp_path, f"http://127.0.0.1:{free_port()}"))
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    for store in (unreachable, LocalStore(blocked / "store")):
        with pytest.raises(StoreUnavailable) as raised:
            store.probe()
        assert raised.value.detail == "The object store is unavailable right now; retry in a few seconds."


def test_a_probe_of_a_bucket_that_is_not_there_is_unavailable(s3_server: SeaweedFS, tmp_path: Path) -> None:
    settings = s3_settings(tmp_path, s3_server.endpoint_url)
    settings.storage_url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x"
    with pytest.raises(StoreUnavailable):
        make_store(settings).probe()


def test_credentials_never_show(s3_server: SeaweedFS, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_secret = "wrong-secret-" + uuid.uuid4().hex
    settings = s3_settings(tmp_path, s3_server.endpoint_url, secret=wrong_secret)
    store = get_store(settings)
    with pytest.raises(StoreUnavailable) as raised:
        store.put_bytes("artifacts/x.safetensors", b"x")
    assert f"s3://{BUCKET}/contract-" in caplog.text and "SignatureDoesNotMatch" in caplog.text, "the log says why"
    good = get_store(s3_settings(tmp_path, s3_server.endpoint_url))
    good.put_bytes("artifacts/x.safetensors", b"x")
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(store), str(store)]
    shown += [raised.value.detail, str(raised.value), caplog.text]
    for secret in (wrong_secret, SECRET_ACCESS_KEY, ACCESS_KEY_ID):
        assert not any(secret in text for text in shown), f"{secret} shows"


def test_credentials_in_the_url_are_refused_without_echoing_them(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path, storage_url="s3://AKIDSECRET:hush@bucket/x")  # type: ignore[call-arg]
    with pytest.raises(ValueError) as raised:
        make_store(settings)
    assert "hush" not in str(raised.value) and "REGTRAIN_S3_ACCESS_KEY_ID" in str(raised.value)
    with pytest.raises(ValueError, match="scheme is 'http'"):
        make_store(Settings(_env_file=None, home=tmp_path, storage_url="http://store/x"))  # type: ignore[call-arg]


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[LocalStore]:
    yield LocalStore(tmp_path / "store")


def test_a_local_reader_keeps_the_object_it_opened(local_store: LocalStore) -> None:
    """A worker reading a checkpoint or dataset in place while it is replaced reads one version whole."""
    local_store.put_bytes("artifacts/checkpoints/j.safetensors", b"A" * 10_000)
    opened = local_store.open("artifacts/checkpoints/j.safetensors", chunk_bytes=1000)
    first = next(opened.chunks)
    local_store.put_bytes("artifacts/checkpoints/j.safetensors", b"B" * 20_000)
    assert first + b"".join(opened.chunks) == b"A" * 10_000
    assert local_store.read_bytes("artifacts/checkpoints/j.safetensors") == b"B" * 20_000


def test_the_api_and_the_local_store_do_without_boto3(tmp_path: Path) -> None:
    """boto3 is imported only when an S3 store is used: the API's start and `make up` do not pay for it."""
    script = f"""
import sys
from api.main import app
from core.settings import Settings
from core.storage import get_store
store = get_store(Settings(_env_file=None, home={str(tmp_path)!r}))
store.put_bytes("artifacts/a.safetensors", b"x")
assert store.read_bytes("artifacts/a.safetensors") == b"x"
print(sorted(name for name in ("boto3", "botocore", "s3transfer") if name in sys.modules))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGTRAIN_")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**env, "REGTRAIN_HOME": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
