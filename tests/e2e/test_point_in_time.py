"""Point-in-time restore of a physical PostgreSQL job: a cluster of the test's own archives its WAL with `replica
wal-push` under a write load (a marker row per second and a light pgbench), one base backup is taken with `replica
backup`, and `replica restore --at T` brings back exactly the markers committed before T; with a segment T needs
deleted from the primary, `wal-verify` names the gap and the copy that holds it, and the copy restores T. A second,
small cluster archives through an outage of the copy: its archiver fails and retries until the copy is back, and
nothing is lost or doubled."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from replica.wal.archive import WAL_FOLDER
from replica.wal.segments import (
    SEGMENT_NAME,
    find_gaps,
    format_lsn,
    parse_lsn,
    parse_segment_name,
    segment_of_lsn,
)
from tests.e2e.conftest import Deployment, assert_ok, catalog_rows, deployed
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
OUTAGE_JOB = "walout"
SEGMENT_BYTES = 1024 * 1024  # the test clusters' --wal-segsize
DATABASE = "shop"
MARKER_INTERVAL_SECONDS = 1.0
# How long `wal-status` is called during the load (each call about a second) for a lag that is not a lower bound.
LAG_MEASURING_SECONDS = 30.0
# "Within a few seconds": archive_timeout is 1 s and a push takes about one; the bound leaves room for a loaded
# 2-core CI machine. benchmarks/wal_shipping.py measures the real distribution.
LAG_BOUND_SECONDS = 20.0
ARCHIVER_WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def deployment(s3_server: S3Server, catalog_kind: str) -> Iterator[Deployment]:
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
        try:
            with deployed(root, s3_server, catalog_kind) as deployment:
                deployment.write_policy()
                yield deployment
        finally:
            subprocess.run(["rm", "-rf", str(root)], check=False)


@dataclass(frozen=True)
class Marker:
    """One committed marker row: its id, its commit time, and the server's WAL insert position read just before its
    INSERT (its commit record lies after it, so replaying to past the commit needs the segment holding it)."""

    id: int
    committed_at: datetime
    lsn_before: int


class MarkerWriter:
    """Inserts one marker row per interval in its own thread; each committed marker is kept."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.committed: list[Marker] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        with self.cluster.connect(DATABASE) as connection:
            while not self._stop.is_set():
                position = connection.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
                assert position is not None
                row = connection.execute("INSERT INTO markers DEFAULT VALUES RETURNING id").fetchone()
                assert row is not None
                marker = row[0]
                committed = connection.execute(
                    "SELECT pg_xact_commit_timestamp(xmin) FROM markers WHERE id = %s", (marker,)
                ).fetchone()
                assert committed is not None and committed[0] is not None
                self.committed.append(Marker(marker, committed[0], parse_lsn(position[0])))
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


@dataclass
class ArchivedUnderLoad:
    """A cluster that archived its WAL to two destinations under a write load, one base backup taken under it, the
    markers committed, and `taken`: how many were committed when the backup returned."""

    cluster: PgCluster
    destinations: list[dict[str, Any]]
    markers: list[Marker]
    taken: int
    # `replica wal-status` measured during the load: (destination, lag seconds, whether only a lower bound).
    lags: list[tuple[str, float, bool]]

    @property
    def before(self) -> Marker:
        """Return the last marker committed before T (the second one committed after the base backup)."""
        return self.markers[self.taken + 1]

    @property
    def point(self) -> datetime:
        """Return T: halfway between `before` and the next marker's commit."""
        after = self.markers[self.taken + 2]
        return self.before.committed_at + (after.committed_at - self.before.committed_at) / 2


@pytest.fixture(scope="module")
def archived(deployment: Deployment) -> Iterator[ArchivedUnderLoad]:
    """GIVEN a cluster of its own archiving every WAL file with `replica wal-push` to two destinations, under a write
    load (a marker row per second and a light pgbench), with one base backup taken under that load."""
    environment = deployment.environment()
    destinations = deployment.two_destinations("pitr")
    archiving = replica_command("wal-push", "--job", JOB, "%p")
    with pg_cluster(archiving, environment, {"max_connections": "150"}) as cluster:
        cluster.query(f"CREATE DATABASE {DATABASE}")
        cluster.query(
            "CREATE TABLE markers (id serial PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            DATABASE,
        )
        # AND archiving also set by ALTER SYSTEM (so in postgresql.auto.conf, which the base backup holds)
        cluster.query("ALTER SYSTEM SET archive_mode = 'on'")
        cluster.query("ALTER SYSTEM SET archive_command = '" + archiving.replace("'", "''") + "'")
        cluster.query("SELECT pg_reload_conf()")
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
        load = subprocess.Popen(
            as_postgres(pgbench, "-T", "8", "-R", "20", "-c", "1", "-n", *init, DATABASE),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with MarkerWriter(cluster) as writer:
                writer.wait_for(2)
                assert_ok(deployment.replica("backup", JOB))
                taken = len(writer.committed)
                # AND the replication lag measured (as the daemon does on each tick) while the load goes on
                lags = _measure_lags(deployment)
                writer.wait_for(taken + 3)
            cluster.wait_archived()
        finally:
            load.wait(timeout=30)
        yield ArchivedUnderLoad(cluster, destinations, writer.committed, taken, lags)


def _measure_lags(deployment: Deployment) -> list[tuple[str, float, bool]]:
    """Return `wal-status`'s lags, measured until every destination has one that is not only a lower bound (the
    first measurements have no earlier source position at or before the archive's end to count from), or for
    LAG_MEASURING_SECONDS."""
    lags: list[tuple[str, float, bool]] = []
    deadline = time.monotonic() + LAG_MEASURING_SECONDS
    while time.monotonic() < deadline:
        for destination in deployment.replica_json("wal-status", JOB)["destinations"]:
            lags.append((destination["destination"], destination["lag_seconds"], destination["lag_is_lower_bound"]))
        if {name for name, _, lower_bound in lags if not lower_bound} == {"primary", "offsite"}:
            break
    return lags


@contextlib.contextmanager
def started_restore(data_dir: Path, environment: dict[str, str]) -> Iterator[PgCluster]:
    """Yield a restored data directory's server started on a free port; stopped at the end."""
    restored = PgCluster(data_dir.parent, port=free_port())
    restored.data_dir = data_dir
    restored.configure()
    restored.start(environment)
    try:
        yield restored
    finally:
        restored.stop()


def _markers(server: PgCluster) -> list[int]:
    return [row[0] for row in server.query("SELECT id FROM markers ORDER BY id", DATABASE)]


def test_point_in_time_restore_brings_back_exactly_the_rows_committed_before_t(
    deployment: Deployment, archived: ArchivedUnderLoad
) -> None:
    # GIVEN the replication lag measured during the load stayed within a few seconds on both destinations
    bounded = {name for name, _, lower_bound in archived.lags if not lower_bound}
    assert bounded == {"primary", "offsite"}, archived.lags
    assert max(seconds for _, seconds, _ in archived.lags) <= LAG_BOUND_SECONDS, archived.lags
    # WHEN restoring to a T halfway between two markers committed after the base backup
    point = archived.point
    target_root = postgres_folder("replica-pitr-restored-")
    try:
        data_dir = target_root / "data"
        restore = deployment.replica("restore", JOB, "--at", point.isoformat(), "--to", str(data_dir))
        assert_ok(restore)
        # THEN the restored cluster holds exactly the markers committed before T
        with started_restore(data_dir, deployment.environment()) as restored:
            assert _markers(restored) == list(range(1, archived.before.id + 1))
            assert restored.query("SELECT count(*) FROM pgbench_accounts", DATABASE) == [(100000,)]
            # AND the handed-over cluster does not archive into the source's archive (set there by ALTER SYSTEM)
            archiving_now = "SELECT current_setting('archive_mode'), current_setting('archive_command')"
            assert restored.query(archiving_now) == [("off", "(disabled)")]
        # AND the base backup's WAL range and cluster identity were recorded with the snapshot
        rows = catalog_rows(deployment, f"SELECT destination, fingerprint FROM snapshots WHERE job = '{JOB}'")
        assert sorted(row[0] for row in rows) == ["offsite", "primary"]
        recorded = json.loads(rows[0][1])
        assert recorded["mode"] == "physical" and recorded["timeline"] == 1
        assert parse_lsn(recorded["start_lsn"]) < parse_lsn(recorded["end_lsn"])
        assert recorded["wal_segment_size"] == SEGMENT_BYTES and recorded["system_identifier"]
        # AND a second restore into the now non-empty directory is refused without --force
        again = deployment.replica("restore", JOB, "--at", point.isoformat(), "--to", str(data_dir))
        assert again.returncode != 0 and "--force" in again.stderr + again.stdout
        dry = deployment.replica("restore", JOB, "--at", point.isoformat(), "--to", str(data_dir), "--dry-run")
        assert "REFUSED" in dry.stdout
        # AND a time before the base backup ended has no base backup to start from
        early = archived.markers[0].committed_at.isoformat()
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


def test_a_segment_t_needs_deleted_from_the_primary_is_a_named_gap_and_the_copy_restores_t(
    deployment: Deployment, archived: ArchivedUnderLoad
) -> None:
    # GIVEN the segment that held the server's position just before the last marker committed before T: the
    # restore to T replays it, and it comes at or after the end of the base backup
    primary = archived.destinations[0]
    query = f"SELECT fingerprint FROM snapshots WHERE job = '{JOB}' AND destination = 'primary'"
    ((fingerprint,),) = catalog_rows(deployment, query)
    recorded = json.loads(fingerprint)
    timeline = recorded["timeline"]
    needed = segment_of_lsn(archived.before.lsn_before, timeline, SEGMENT_BYTES)
    assert needed >= segment_of_lsn(parse_lsn(recorded["end_lsn"]), timeline, SEGMENT_BYTES)
    name = needed.name(SEGMENT_BYTES)
    client = deployment.s3.client()
    key = f"{primary['prefix']}/{WAL_FOLDER}{JOB}/{name}"
    client.head_object(Bucket=primary["bucket"], Key=key)
    # WHEN it is deleted from the primary destination
    client.delete_object(Bucket=primary["bucket"], Key=key)
    # THEN wal-verify fails and reports the gap on 'primary' with that segment's LSN range, held whole by 'offsite'
    result = deployment.replica("wal-verify", JOB, "--json")
    assert result.returncode == 1, result.stderr
    chains = {chain["destination"]: chain for chain in json.loads(result.stdout)["destinations"]}
    assert chains["offsite"]["gaps"] == []
    (gap,) = chains["primary"]["gaps"]
    assert (gap["start_lsn"], gap["end_lsn"]) == (
        format_lsn(needed.start_lsn(SEGMENT_BYTES)),
        format_lsn(needed.end_lsn(SEGMENT_BYTES)),
    )
    assert [copy["destination"] for copy in gap["held_by"]] == ["offsite"] and gap["held_by"][0]["whole"]
    # AND a restore to T from the copy brings back exactly the same markers
    target_root = postgres_folder("replica-pitr-offsite-")
    try:
        point = archived.point.isoformat()
        from_copy = target_root / "from-offsite"
        assert_ok(deployment.replica("restore", JOB, "--at", point, "--to", str(from_copy), "--destination", "offsite"))
        with started_restore(from_copy, deployment.environment()) as restored:
            assert _markers(restored) == list(range(1, archived.before.id + 1))
    finally:
        subprocess.run(["rm", "-rf", str(target_root)], check=False)


def _switch_segment(cluster: PgCluster) -> str:
    """Write a row and switch to a new WAL segment; return the name of the segment just closed."""
    cluster.query("INSERT INTO ticks DEFAULT VALUES")
    return str(cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0])


def _archiver(cluster: PgCluster) -> tuple[int, str]:
    """Return the archiver's failed count and the name of the last WAL file it archived ('' for none)."""
    failed, last = cluster.query("SELECT failed_count, coalesce(last_archived_wal, '') FROM pg_stat_archiver")[0]
    return int(failed), str(last)


def _wait_until(condition: Callable[[], bool], what: str, cluster: PgCluster) -> None:
    """Poll `condition` until it holds; fail with the server's log after ARCHIVER_WAIT_SECONDS."""
    deadline = time.monotonic() + ARCHIVER_WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {ARCHIVER_WAIT_SECONDS} s:\n{cluster.log()}"
        time.sleep(0.2)


def _archived_names(deployment: Deployment, destination: dict[str, Any], job: str) -> list[str]:
    """Return every WAL file name listed under a job's WAL archive at a destination (its key file left out)."""
    prefix = f"{destination['prefix']}/{WAL_FOLDER}{job}/"
    listed = deployment.s3.client().list_objects_v2(Bucket=destination["bucket"], Prefix=prefix)
    names = [item["Key"][len(prefix) :] for item in listed.get("Contents", [])]
    return [name for name in names if name != "key.json"]


def test_the_archiver_retries_through_an_outage_of_the_copy_and_loses_or_doubles_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    # GIVEN a small cluster archiving with `replica wal-push`, its job's offsite endpoint down (nothing listens)
    destinations = deployment.two_destinations("outage")
    primary, offsite = destinations
    with pg_cluster(replica_command("wal-push", "--job", OUTAGE_JOB, "%p"), deployment.environment()) as cluster:
        store = {"kind": "postgresql", "mode": "physical", "host": "127.0.0.1", "port": cluster.port}
        down = {**offsite, "endpoint_url": f"http://127.0.0.1:{free_port()}"}
        deployment.write_job(OUTAGE_JOB, {**store, "user": SERVER_USER, "database": "postgres"}, [primary, down])
        cluster.query("CREATE TABLE ticks (id serial PRIMARY KEY)")
        # WHEN the server closes segments during the outage
        switched = [_switch_segment(cluster)]
        _wait_until(lambda: _archiver(cluster)[0] >= 1, "a first failed archive", cluster)
        failed_before, _ = _archiver(cluster)
        switched += [_switch_segment(cluster), _switch_segment(cluster)]
        # THEN its archiver keeps failing and retrying, and archives nothing past the first segment it failed on
        _wait_until(lambda: _archiver(cluster)[0] > failed_before, "more failed archives", cluster)
        assert _archiver(cluster)[1] < switched[0]
        # AND the server's log shows replica's one-line error naming the unreachable destination
        errors = [line for line in cluster.log_path.read_text().splitlines() if line.startswith("replica: error:")]
        assert errors, cluster.log()
        assert f"{switched[0]} not archived on destination 'offsite'" in errors[0] and "unreachable" in errors[0]
        # WHEN the endpoint is back (the job file is read again on each push) and the server closes one more segment
        deployment.write_job(OUTAGE_JOB, {**store, "user": SERVER_USER, "database": "postgres"}, destinations)
        switched.append(_switch_segment(cluster))
        # THEN the archiver catches up by itself
        _wait_until(lambda: _archiver(cluster)[1] >= switched[-1], f"archiving up to {switched[-1]}", cluster)
    # AND both destinations hold every segment from the first to the last exactly once
    first, last = (parse_segment_name(name, SEGMENT_BYTES).number for name in (switched[0], switched[-1]))
    for destination in destinations:
        names = _archived_names(deployment, destination, OUTAGE_JOB)
        assert len(names) == len(set(names)), names
        segments = [parse_segment_name(name, SEGMENT_BYTES) for name in names if SEGMENT_NAME.fullmatch(name)]
        assert find_gaps(segments, first, last, SEGMENT_BYTES) == [], (destination["name"], names)
    # AND a segment pushed during the outage fetches back from the copy byte for byte as from the primary
    fetched = {}
    for destination in destinations:
        path = tmp_path / destination["name"]
        fetch = deployment.replica(
            "wal-fetch", "--job", OUTAGE_JOB, "--destination", destination["name"], switched[0], str(path)
        )
        assert_ok(fetch)
        fetched[destination["name"]] = path.read_bytes()
    assert len(fetched["primary"]) == SEGMENT_BYTES and fetched["offsite"] == fetched["primary"]
