"""Faults on either side of a run end in their named state: a restic that makes no progress (`timeout`), a store
that cannot be reached (`source_unreachable`), a restore target without room (`target_full`)."""

from __future__ import annotations

import concurrent.futures
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, assert_ok
from tests.e2e.sources import SqliteSource
from tests.support.s3server import free_port

STALL_SECONDS = 1
# What restic's S3 client (minio-go) says it is; boto3, which replica's probe uses, says "Boto3/...".
RESTIC_USER_AGENT = b"minio-go"


def error_lines(stderr: str) -> list[str]:
    """Return the CLI's error lines; never a traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("replica: error: ")]


def last_run(deployment: Deployment, job: str) -> dict[str, Any]:
    """Return the newest run of a job as `replica runs --json` shows it."""
    runs = deployment.replica_json("runs", "--job", job)
    assert runs, f"no run recorded for {job}"
    return dict(runs[0])


class SilentToRestic:
    """A TCP front to the S3 server that relays every request but restic's, which it accepts and never answers.

    replica's probe (boto3) therefore finds the bucket, and restic hangs on its first request, as it does on an
    endpoint that stopped answering.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            head += chunk
        if RESTIC_USER_AGENT in head.lower():
            self.held.append(client)  # accepted, read, never answered
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        upstream.sendall(head)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        for connection in self.held:
            connection.close()
        self.server.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            end.close()


@pytest.fixture
def silent_to_restic(deployment: Deployment) -> Iterator[SilentToRestic]:
    front = SilentToRestic(int(deployment.s3.endpoint_url.rsplit(":", 1)[1]))
    yield front
    front.close()


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory: pytest.TempPathFactory) -> SqliteSource:
    return SqliteSource(tmp_path_factory.mktemp("fault-source"))


def test_a_backup_whose_restic_makes_no_progress_ends_as_timeout(
    deployment: Deployment, sqlite_source: SqliteSource, silent_to_restic: SilentToRestic
) -> None:
    # GIVEN a job whose endpoint passes replica's probe but never answers restic, and a 1 s stall limit
    destinations = [
        {"name": "primary", "bucket": deployment.new_bucket("stall-p"), "endpoint_url": silent_to_restic.endpoint_url},
        {"name": "offsite", "bucket": deployment.new_bucket("stall-o"), "endpoint_url": silent_to_restic.endpoint_url},
    ]
    deployment.write_job("stalled", sqlite_source.store_config(), destinations)
    environment = deployment.environment(REPLICA_STALL_SECONDS=str(STALL_SECONDS))

    # WHEN it backs up
    started = time.monotonic()
    result = deployment.replica("backup", "stalled", env=environment, timeout=120)
    elapsed = time.monotonic() - started

    # THEN restic is stopped within the stall limit plus its SIGINT grace, the run ends `timeout` and says why
    assert elapsed < STALL_SECONDS + 10, f"took {elapsed:.1f}s"
    assert result.returncode != 0
    (line,) = error_lines(result.stderr)
    assert "'primary'" in line and f"made no progress for {STALL_SECONDS} s" in line
    run = last_run(deployment, "stalled")
    assert (run["kind"], run["status"], run["failure"]) == ("backup", "failed", "timeout")
    leftovers = subprocess.run(["pgrep", "-f", "replica-job=stalled"], capture_output=True, text=True, check=False)
    assert leftovers.stdout == ""


def test_stores_that_cannot_be_reached_end_as_source_unreachable(deployment: Deployment, tmp_path: Path) -> None:
    # GIVEN a PostgreSQL job pointing at a port nobody listens on and a SQLite job whose file does not exist, both
    # with reachable buckets (no repository is needed: nothing reaches restic)
    jobs = {
        "pg-closed": {"kind": "postgresql", "host": "127.0.0.1", "port": free_port(), "database": "app"},
        "sqlite-missing": {"kind": "sqlite", "path": str(tmp_path / "gone.sqlite3")},
    }
    for name, store in jobs.items():
        deployment.write_job(name, store, deployment.two_destinations(name), canary=name == "pg-closed")

    # WHEN both back up (side by side, to save time)
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = dict(zip(jobs, pool.map(lambda name: deployment.replica("backup", name), jobs), strict=True))

    # THEN each run fails as `source_unreachable`, naming the store
    (line,) = error_lines(results["pg-closed"].stderr)
    assert "127.0.0.1" in line and "Connection refused" in line, line
    (line,) = error_lines(results["sqlite-missing"].stderr)
    assert "gone.sqlite3" in line and "does not exist" in line, line
    runs = {run["job"]: run for run in deployment.replica_json("runs", "--limit", "2")}
    for name, result in results.items():
        assert result.returncode != 0
        run = runs[name]
        assert (run["kind"], run["status"], run["failure"]) == ("backup", "failed", "source_unreachable"), run


def test_a_restore_into_a_full_file_system_ends_as_target_full_and_leaves_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    # GIVEN a directory job backed up with 3 MB of data, and a 1 MB file system (a tmpfs in a mount namespace of its
    # own) to restore into
    source = tmp_path / "source"
    source.mkdir()
    (source / "large.bin").write_bytes(random.randbytes(3_000_000))
    (source / "small.txt").write_text("small\n")
    deployment.write_job("fullrestore", {"kind": "directory", "path": str(source)}, deployment.two_destinations("full"))
    assert_ok(deployment.replica("init", "fullrestore"))
    assert_ok(deployment.replica("backup", "fullrestore"))
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    target = mount_point / "restored"

    # WHEN it is restored there (and the file system's content listed before the namespace goes)
    replica = (sys.executable, "-m", "replica")
    script = 'mount -t tmpfs -o size=1m tmpfs "$0" && "$@"; code=$?; echo "left: $(ls -A "$0")"; exit $code'
    result = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            script,
            str(mount_point),
            *replica,
            "restore",
            "fullrestore",
            "--to",
            str(target),
        ],
        env=deployment.environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=deployment.root,
    )
    deployment.outputs.append(f"$ replica restore fullrestore\n{result.stdout}\n{result.stderr}")

    # THEN the run fails as `target_full` naming the target, and nothing is left on the file system
    assert result.returncode != 0, result.stdout
    (line,) = error_lines(result.stderr)
    assert str(target) in line and "no space left on device" in line, line
    assert "left: \n" in result.stdout, result.stdout
    run = last_run(deployment, "fullrestore")
    assert (run["kind"], run["status"], run["failure"]) == ("restore", "failed", "target_full"), run
