"""Point-in-time restore of a physical PostgreSQL job: a cluster of the test's own archives its WAL with `replica
wal-push` under a write load (a marker row per second and a light pgbench), one base backup is taken with `replica
backup`, and `replica restore --at T` brings back exactly the markers committed before T."""

from __future__ import annotations

import grp
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from replica.wal.segments import parse_lsn
from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.support.pg_cluster import (
    SERVER_USER,
    PgCluster,
    as_postgres,
    pg_cluster,
    postgres_folder,
    reachable_by_postgres,
    replica_command,
    replica_paths,
)
from tests.support.s3server import S3Server, free_port

JOB = "pitr"
DATABASE = "shop"
MARKER_INTERVAL_SECONDS = 1.0


@pytest.fixture(scope="module")
def deployment(s3_server: S3Server) -> Iterator[Deployment]:
    """A deployment the `postgres` OS user can read (its server runs `replica wal-push`): rooted in /tmp, the
    password file and the state folder shared with the postgres group."""
    root = Path(tempfile.mkdtemp(prefix="replica-pitr-deployment-", dir="/tmp"))
    root.chmod(0o711)
    postgres_gid = grp.getgrnam(SERVER_USER).gr_gid
    for name in ("jobs", "policies"):
        (root / name).mkdir(mode=0o755)
    (root / "state").mkdir()
    os.chown(root / "state", -1, postgres_gid)
    (root / "state").chmod(0o2770)
    password = root / "restic-password"
    password.write_text(f"canary-restic-{secrets.token_hex(12)}")
    os.chown(password, -1, postgres_gid)
    password.chmod(0o640)
    with reachable_by_postgres(replica_paths()):
        deployed = Deployment(root, s3_server)
        deployed.write_policy()
        try:
            yield deployed
            assert deployed.leaked_secrets() == []
        finally:
            for bucket in deployed.buckets:
                deployed.s3.delete_bucket(bucket)
            subprocess.run(["rm", "-rf", str(root)], check=False)


class MarkerWriter:
    """Inserts one marker row per interval in its own thread; each committed marker's id and commit time are kept."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.committed: list[tuple[int, datetime]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        with self.cluster.connect(DATABASE) as connection:
            while not self._stop.is_set():
                row = connection.execute("INSERT INTO markers DEFAULT VALUES RETURNING id").fetchone()
                assert row is not None
                marker = row[0]
                committed = connection.execute(
                    "SELECT pg_xact_commit_timestamp(xmin) FROM markers WHERE id = %s", (marker,)
                ).fetchone()
                assert committed is not None and committed[0] is not None
                self.committed.append((marker, committed[0]))
                self._stop.wait(MARKER_INTERVAL_SECONDS)

    def __enter__(self) -> MarkerWriter:
        self._thread.start()
        return self

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + count * MARKER_INTERVAL_SECONDS + 30
        while len(self.committed) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.committed) >= count

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _start_restored(data_dir: Path, port: int, environment: dict[str, str]) -> PgCluster:
    restored = PgCluster(data_dir.parent, port=port)
    restored.data_dir = data_dir
    restored.configure()
    restored.start(environment)
    return restored


def test_point_in_time_restore_brings_back_exactly_the_rows_committed_before_t(deployment: Deployment) -> None:
    environment = deployment.environment()
    # GIVEN a cluster of its own archiving every WAL file with `replica wal-push` to two destinations
    destinations = deployment.two_destinations("pitr")
    with pg_cluster(replica_command("wal-push", "--job", JOB, "%p"), environment) as cluster:
        cluster.query(f"CREATE DATABASE {DATABASE}")
        cluster.query(
            "CREATE TABLE markers (id serial PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            DATABASE,
        )
        pgbench = str(cluster.bin_dir / "pgbench")
        init = ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", SERVER_USER]
        subprocess.run(as_postgres(pgbench, "-i", "-s", "1", "-q", *init, DATABASE), check=True, capture_output=True)
        store = {
            "kind": "postgresql",
            "mode": "physical",
            "host": "127.0.0.1",
            "port": cluster.port,
            "user": SERVER_USER,
            "database": DATABASE,
        }
        deployment.write_job(JOB, store, destinations, canary=True)
        assert_ok(deployment.replica("init", JOB))
        # AND a write load: a marker row per second and a light pgbench (20 transactions a second)
        load = subprocess.Popen(
            as_postgres(pgbench, "-T", "8", "-R", "20", "-c", "1", "-n", *init, DATABASE),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with MarkerWriter(cluster) as writer:
                writer.wait_for(2)
                # AND one base backup taken under that load
                backup = deployment.replica("backup", JOB)
                assert_ok(backup)
                taken = len(writer.committed)
                writer.wait_for(taken + 3)
            cluster.wait_archived()
        finally:
            load.wait(timeout=30)
        # WHEN restoring to a T halfway between two markers committed after the base backup
        before, after = writer.committed[taken + 1], writer.committed[taken + 2]
        point = before[1] + (after[1] - before[1]) / 2
        target_root = postgres_folder("replica-pitr-restored-")
        try:
            data_dir = target_root / "data"
            restore = deployment.replica("restore", JOB, "--at", point.isoformat(), "--to", str(data_dir))
            assert_ok(restore)
            # THEN the restored cluster holds exactly the markers committed before T
            restored = _start_restored(data_dir, free_port(), environment)
            try:
                markers = restored.query("SELECT id FROM markers ORDER BY id", DATABASE)
                assert [row[0] for row in markers] == list(range(1, before[0] + 1))
                assert restored.query("SELECT count(*) FROM pgbench_accounts", DATABASE) == [(100000,)]
            finally:
                restored.stop()
            # AND the base backup's WAL range and cluster identity were recorded with the snapshot
            rows = catalog_rows(deployment, f"SELECT destination, fingerprint FROM snapshots WHERE job = '{JOB}'")
            assert sorted(row[0] for row in rows) == ["offsite", "primary"]
            recorded = json.loads(rows[0][1])
            assert recorded["mode"] == "physical" and recorded["timeline"] == 1
            assert parse_lsn(recorded["start_lsn"]) < parse_lsn(recorded["end_lsn"])
            assert recorded["wal_segment_size"] == 1024 * 1024 and recorded["system_identifier"]
            # AND a second restore into the now non-empty directory is refused without --force
            again = deployment.replica("restore", JOB, "--at", point.isoformat(), "--to", str(data_dir))
            assert again.returncode != 0 and "--force" in again.stderr + again.stdout
            dry = deployment.replica("restore", JOB, "--at", point.isoformat(), "--to", str(data_dir), "--dry-run")
            assert "REFUSED" in dry.stdout
            # AND a time before the base backup ended has no base backup to start from
            early = writer.committed[0][1].isoformat()
            none = deployment.replica("restore", JOB, "--at", early, "--to", str(target_root / "early"))
            assert none.returncode != 0 and "no base backup that ended before" in none.stderr
            assert not (target_root / "early").exists()
            # AND the restore was recorded as a restore run with its RTO
            restores = catalog_rows(
                deployment, f"SELECT status, details FROM runs WHERE job = '{JOB}' AND kind = 'restore'"
            )
            assert [row[0] for row in restores] == ["succeeded"]
            assert json.loads(restores[0][1])["rto_seconds"] > 0
        finally:
            subprocess.run(["rm", "-rf", str(target_root)], check=False)
        # AND `replica verify` recovers the base backup with every archived WAL file in a scratch server, reads every
        # table and finds the canary written before the backup, then removes the scratch data directory
        verify = deployment.replica("verify", JOB)
        assert_ok(verify)
        assert "[ok  ] integrity" in verify.stdout and "[ok  ] canary" in verify.stdout, verify.stdout
        # AND it recovered to a random moment after the backup (a canary it wrote first bounds the window), found
        # nothing committed after it, and listed the destination's WAL chain for gaps
        assert "[ok  ] point-in-time" in verify.stdout and "recovered to 20" in verify.stdout, verify.stdout
        assert "[ok  ] wal-chain:primary" in verify.stdout, verify.stdout
        assert not any((deployment.state_dir / "scratch").glob("pgdata-*"))
