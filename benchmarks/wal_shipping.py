"""Benchmark (issue 11): WAL shipping under pgbench load: segments pushed per second, replication lag, push cost.

    flock /tmp/replica-bench.lock .venv/bin/python benchmarks/wal_shipping.py [--runs 5] [--seconds 30] [--scale 10]
    .venv/bin/python benchmarks/wal_shipping.py --segment-mb 1        # the test clusters' segment size
    .venv/bin/python benchmarks/wal_shipping.py --smoke               # (or --tiny) tiny data, proves it still works

A PostgreSQL cluster of its own (initdb as the postgres OS user under /tmp, a free loopback port, 16 MiB segments
unless --segment-mb, archive_timeout 1 s as a deployment promising an RPO in seconds sets it) archives with
`replica wal-push --job walbench %p` to two destinations on SeaweedFS. `pgbench -c 2 -j 2 -T SECONDS` (unthrottled:
the WAL rate a 2-core machine can produce) runs while the benchmark samples once a second: the lag of each
destination (`measure_wal_lag`, what `wal-status` and the daemon record), the archiver's own lag (the same
definition applied to pg_stat_archiver's last archived segment), archived_count, failed_count and the backlog.

The same load then runs with the raw equivalents as archive_command, on the same cluster, one after the other:
- `raw_put.py %p`: a Python process that PUTs the uncompressed file with boto3 to both buckets (`aws s3 cp`-like),
  what replica's sealing (archive key, zstd, AES-GCM, HEAD for idempotence) adds to a plain upload;
- `cp %p DIR/%f`: the floor (no network, no Python).
Per-push latency: one `replica wal-push` process of a real segment (under a fresh name each time, in a job of its
own) against one `raw_put.py` and one `cp`, alternating; and a breakdown of one push in process (interpreter
start-up, imports, key derivation, sealing, PUTs) to tell what bounds the rate.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
from harness import Bench, Sample, bench, compare, format_table, standard_arguments

import replica
from replica.actions.context import Context
from replica.actions.wal import physical_job, wal_archive
from replica.actions.wal_lag import measure_wal_lag
from replica.settings import load_settings
from replica.storage.seaweedfs import SeaweedServer
from replica.stores.postgresql_server import server_bin_dir
from replica.wal.lag import LONG_PAGE_HEADER_BYTES, NewestSegment, PositionSample, WalPosition, measure_lag
from replica.wal.sealing import seal
from replica.wal.segments import SEGMENT_NAME, Segment, parse_lsn, parse_segment_name, segment_of_lsn

JOB = "walbench"
LATENCY_JOB = "walbench-latency"
DATABASE = "bench"
PRIMARY_BUCKET = "bench-wal-primary"
OFFSITE_BUCKET = "bench-wal-offsite"
SERVER_USER = "postgres"
SAMPLE_INTERVAL_SECONDS = 1.0
DRAIN_TIMEOUT_SECONDS = 600
# Written into the bench for the raw side: what `aws s3 cp FILE s3://BUCKET/raw/NAME` does per bucket, in one process.
RAW_PUT_SCRIPT = """import os, sys
import boto3
path, endpoint, buckets = sys.argv[1], sys.argv[2], sys.argv[3:]
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
with open(path, "rb") as file:
    body = file.read()
for bucket in buckets:
    client.put_object(Bucket=bucket, Key="raw/" + os.path.basename(path), Body=body)
"""


def as_postgres(*argv: str) -> list[str]:
    """Return argv run as the postgres OS user (the server refuses root; its archiver runs as postgres)."""
    return ["runuser", "-u", SERVER_USER, "--", *argv]


@contextlib.contextmanager
def traversable_by_postgres(paths: list[Path]) -> Iterator[None]:
    """Give o+x (traverse, never read or list) to the folders above `paths` that postgres cannot traverse, so its
    archiver reaches the interpreter, the venv and the sources; put every mode back afterwards."""
    changed: dict[Path, int] = {}
    try:
        for path in paths:
            for folder in [*reversed(path.parents), path]:
                if folder in changed or not folder.is_dir():
                    continue
                if subprocess.run(as_postgres("test", "-x", str(folder)), check=False).returncode != 0:
                    changed[folder] = folder.stat().st_mode & 0o7777
                    folder.chmod(changed[folder] | 0o001)
        yield
    finally:
        for folder, mode in changed.items():
            with contextlib.suppress(OSError):
                folder.chmod(mode)


def share_with_postgres(instance: Bench) -> None:
    """Open the bench to the postgres group as a deployment does (tests/e2e/test_point_in_time.py): the root
    traversable, the job files readable, the password file and the state folder shared with the group."""
    group = grp.getgrnam(SERVER_USER).gr_gid
    instance.root.chmod(0o711)
    for folder in ("jobs", "policies"):
        (instance.root / folder).chmod(0o755)
    for shared, mode in ((instance.root / "state", 0o2770), (instance.password_file, 0o640)):
        os.chown(shared, -1, group)
        shared.chmod(mode)


@dataclass
class Cluster:
    """The benchmark's own PostgreSQL cluster, under a folder of /tmp owned by postgres."""

    root: Path
    port: int
    bin_dir: Path = field(default_factory=lambda: server_bin_dir(None, None))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def run(self, *argv: str, environment: dict[str, str] | None = None, timeout: float = 600) -> None:
        """Run a server program as postgres. Raises RuntimeError with its stderr when it fails."""
        completed = subprocess.run(
            as_postgres(*argv), env=environment, capture_output=True, text=True, timeout=timeout, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} exited {completed.returncode}: {completed.stderr.strip()}")

    def create(self, segment_mb: int, archive_command: str) -> None:
        """initdb (the default 16 MiB segments unless `segment_mb` says otherwise) and configure archiving."""
        segment = [] if segment_mb == 16 else [f"--wal-segsize={segment_mb}"]
        initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", SERVER_USER, "--no-sync"]
        self.run(*initdb, *segment)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": archive_command,
            "archive_timeout": "1",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n" for name, value in settings.items())

    def start(self, environment: dict[str, str]) -> None:
        """Start the server; its archiver inherits `environment`."""
        log = str(self.root / "server.log")
        self.run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", log, "-w", "start", environment=environment
        )

    def stop(self) -> None:
        """Stop the server (fast) when it runs."""
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def query(self, statement: str, database: str = "postgres") -> tuple[Any, ...]:
        """Return the first row of `statement` (empty for a statement without rows)."""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SERVER_USER, dbname=database, autocommit=True
        ) as connection:
            cursor = connection.execute(statement)
            row = cursor.fetchone() if cursor.description else ()
        assert row is not None
        return tuple(row)

    def pgbench(self, *arguments: str) -> list[str]:
        """Return the argv of pgbench on the benchmark's database, run as postgres."""
        connection = ["-h", "127.0.0.1", "-p", str(self.port), "-U", SERVER_USER]
        return as_postgres(str(self.bin_dir / "pgbench"), *connection, *arguments, DATABASE)


@dataclass(frozen=True)
class Observation:
    """One sample: seconds since the load started, lags (archiver's and each destination's), counters."""

    at: float
    taken_at: datetime
    archiver_lag: float | None
    loss_window: float | None
    insert_lsn: int
    destination_lags: tuple[float | None, ...]
    archived: int
    failed: int
    backlog: int


@dataclass
class LoadResult:
    """What one load phase measured: the samples, the WAL written, pgbench's rate, the drain time."""

    label: str
    seconds: float
    segments_written: int
    segments_pushed: int
    failed: int
    wal_bytes: int
    record_bytes: int
    transactions_per_second: float
    drain_seconds: float
    seaweedfs_cpu_seconds: float
    observations: list[Observation]


ARCHIVER_QUERY = """SELECT pg_current_wal_insert_lsn()::text, clock_timestamp(), coalesce(last_archived_wal, ''),
    last_archived_time, archived_count, failed_count, (SELECT timeline_id FROM pg_control_checkpoint())
    FROM pg_stat_archiver"""


# The insert position (segments switched by archive_timeout count whole) and the bytes of WAL records written.
POSITION_QUERY = "SELECT pg_current_wal_insert_lsn()::text, (SELECT wal_bytes FROM pg_stat_wal)"


def observe(
    cluster: Cluster,
    segment_bytes: int,
    started: float,
    baseline: tuple[int, int],
    history: list[Observation],
    context: Context | None,
) -> Observation:
    """Sample the archiver (its lag by replica's definition: replica.wal.lag), the true loss window and, given a
    context, every destination's lag as `wal-status` measures it.

    The loss window is how long ago the source first wrote past the end of the newest archived segment, read from
    the earlier samples' insert positions (1 s resolution, a lower bound): what a restore would lose now. replica's
    lag counts the same way from the positions it records, so it must never read below the loss window (with a
    backlog the newest segment was stored just now but written long ago)."""
    insert, now, archived_name, archived_at, archived, failed, timeline = cluster.query(ARCHIVER_QUERY)
    # The counters since the phase began (pg_stat_archiver keeps counting across phases: a reset would also forget
    # the last archived segment, which the backlog and the lag need).
    archived, failed = archived - baseline[0], failed - baseline[1]
    position = WalPosition(parse_lsn(insert), int(timeline), segment_bytes)
    newest = None
    backlog = position.segment.number
    if SEGMENT_NAME.fullmatch(archived_name):
        segment = parse_segment_name(archived_name, segment_bytes)
        newest = NewestSegment(archived_name, segment, archived_at)
        backlog = position.segment.number - segment.number - 1
    samples = [PositionSample(sample.taken_at, sample.insert_lsn) for sample in history]
    samples.append(PositionSample(now, position.insert_lsn))
    archiver = measure_lag("archiver", position, newest, samples, now).seconds
    at = time.monotonic() - started
    window = None
    if newest is not None:
        durable_end = newest.segment.end_lsn(segment_bytes) + LONG_PAGE_HEADER_BYTES
        passed = [sample.at for sample in history if sample.insert_lsn > durable_end]
        window = at - passed[0] if passed else 0.0
    destinations: tuple[float | None, ...] = ()
    if context is not None:
        job = physical_job(context, JOB)
        destinations = tuple(lag.seconds for lag in measure_wal_lag(context, job))
    return Observation(at, now, archiver, window, position.insert_lsn, destinations, archived, failed, max(backlog, 0))


def seaweedfs_cpu_seconds(instance: Bench) -> float:
    """Return the CPU time (user + system) SeaweedFS has used so far."""
    if not isinstance(instance.server, SeaweedServer):
        return 0.0
    fields = Path(f"/proc/{instance.server.process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(
    instance: Bench,
    cluster: Cluster,
    phase: tuple[str, str],
    seconds: int,
    segment_bytes: int,
    context: Context | None,
) -> LoadResult:
    """Set `command` as archive_command, run pgbench for `seconds` while sampling once a second, then wait until
    the archiver has pushed every segment completed; return what was measured. `phase` is (label, command)."""
    label, command = phase
    escaped = command.replace("'", "''")
    cluster.query(f"ALTER SYSTEM SET archive_command = '{escaped}'")
    cluster.query("SELECT pg_reload_conf()")
    wait_archived(cluster, segment_bytes)
    counters = cluster.query("SELECT archived_count, failed_count FROM pg_stat_archiver")
    baseline = (int(counters[0]), int(counters[1]))
    start_lsn, records_before = cluster.query(POSITION_QUERY)
    start_lsn = parse_lsn(start_lsn)
    cpu_before = seaweedfs_cpu_seconds(instance)
    observations: list[Observation] = []
    started = next_sample = time.monotonic()
    load = subprocess.Popen(
        cluster.pgbench("-n", "-c", "2", "-j", "2", "-T", str(seconds)), stdout=subprocess.PIPE, text=True
    )
    loaded: float | None = None
    end_lsn, record_bytes = start_lsn, 0
    # Sampled through the load and the drain after it: the lag peaks when the load stops with a backlog.
    while loaded is None or not caught_up(cluster, segment_bytes):
        if time.monotonic() >= next_sample:
            observations.append(observe(cluster, segment_bytes, started, baseline, observations, context))
            next_sample += SAMPLE_INTERVAL_SECONDS
        if loaded is None and load.poll() is not None:
            loaded = time.monotonic() - started
            end_lsn, records_after = cluster.query(POSITION_QUERY)
            end_lsn, record_bytes = parse_lsn(end_lsn), int(records_after) - int(records_before)
        if time.monotonic() - started > seconds + DRAIN_TIMEOUT_SECONDS:
            raise RuntimeError(f"the archiver did not catch up (see {cluster.root}/server.log)")
        time.sleep(0.1)
    drained = time.monotonic() - started - loaded
    observations.append(
        observe(cluster, segment_bytes, started, baseline, observations, context)
    )  # every destination has WAL
    output = load.stdout.read() if load.stdout else ""
    tps = next((float(line.split("=")[1].split()[0]) for line in output.splitlines() if "tps =" in line), 0.0)
    final = cluster.query("SELECT archived_count, failed_count FROM pg_stat_archiver")
    return LoadResult(
        label=label,
        seconds=loaded,
        segments_written=segment_of_lsn(end_lsn, 1, segment_bytes).number
        - segment_of_lsn(start_lsn, 1, segment_bytes).number,
        segments_pushed=int(final[0]) - baseline[0],
        failed=int(final[1]) - baseline[1],
        wal_bytes=end_lsn - start_lsn,
        record_bytes=record_bytes,
        transactions_per_second=tps,
        drain_seconds=drained,
        seaweedfs_cpu_seconds=seaweedfs_cpu_seconds(instance) - cpu_before,
        observations=observations,
    )


def caught_up(cluster: Cluster, segment_bytes: int) -> bool:
    """Return whether the archiver has pushed every completed segment (the one before the current one)."""
    insert, archived = cluster.query(
        "SELECT pg_current_wal_insert_lsn()::text, coalesce(last_archived_wal, '') FROM pg_stat_archiver"
    )
    current = segment_of_lsn(parse_lsn(insert), 1, segment_bytes).number
    return bool(SEGMENT_NAME.fullmatch(archived)) and parse_segment_name(archived, segment_bytes).number >= current - 1


def wait_archived(cluster: Cluster, segment_bytes: int) -> None:
    """Wait until the archiver has pushed every completed segment. Raises RuntimeError after DRAIN_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while not caught_up(cluster, segment_bytes):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the archiver did not catch up in {DRAIN_TIMEOUT_SECONDS} s (see {cluster.root})")
        time.sleep(0.1)


class FreshSegments:
    """Copies of one real segment under fresh names (a push of a name already archived only HEADs it)."""

    def __init__(self, source: Path, folder: Path, segment_bytes: int) -> None:
        self.source, self.folder, self.segment_bytes = source, folder, segment_bytes
        self.folder.mkdir(exist_ok=True)
        self.count = 0

    def next(self) -> Path:
        """Return a new copy named as the next segment of timeline 1."""
        self.count += 1
        path = self.folder / Segment(1, self.count).name(self.segment_bytes)
        shutil.copyfile(self.source, path)
        return path


def latest_segment(cluster: Cluster, segment_bytes: int) -> Path:
    """Return a copy of the newest segment the archiver pushed (real WAL, written by the load)."""
    name = cluster.query("SELECT last_archived_wal FROM pg_stat_archiver")[0]
    copy = Path(tempfile.mkdtemp(prefix="replica-wal-segment-")) / "segment"
    shutil.copyfile(cluster.data_dir / "pg_wal" / name, copy)
    assert copy.stat().st_size == segment_bytes
    return copy


def push_breakdown(context: Context, segment: Path, runs: int) -> list[tuple[str, float]]:
    """Return the median milliseconds of each step of one push, measured in this process: interpreter start,
    replica's imports to its command line, key derivation, sealing, a push (all per destination but the first two)."""
    steps: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def timed(step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        steps.setdefault(step, []).append((time.perf_counter() - started) * 1000)

    content = segment.read_bytes()
    job = physical_job(context, LATENCY_JOB)
    sealed = b""
    for run in range(runs):
        with timed("interpreter start (`python -c pass`)"):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        with timed("interpreter + replica's imports to its command line (`python -m replica --version`)"):
            subprocess.run([sys.executable, "-m", "replica", "--version"], capture_output=True, check=True)
        archive = wal_archive(context, job, job.destinations[0])
        with timed("archive key (key file read and unwrapped, or the cached key)"):
            key = archive.key(create=True)
        assert key is not None
        with timed("seal: zstd level 1 + AES-GCM"):
            sealed = seal(key, Segment(1, 1).name(len(content)), content)
        with timed("push to one destination (HMAC tag, HEAD, seal, PUT)"):
            archive.push(Segment(2, 1000 + run).name(len(content)), content)
    rows = [(step, statistics.median(values)) for step, values in steps.items()]
    rows.append((f"sealed size, % of the segment ({len(sealed) / 2**20:.2f} MiB)", 100 * len(sealed) / len(content)))
    return rows


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def lag_cells(values: list[float | None]) -> str:
    """Return `median / p95 / max` of the measured lags (s)."""
    measured = [value for value in values if value is not None]
    if not measured:
        return "–"
    return f"{statistics.median(measured):.1f} / {percentile(measured, 0.95):.1f} / {max(measured):.1f}"


def load_table(results: list[LoadResult], segment_bytes: int, destinations: list[str]) -> str:
    """Return the load phases as a Markdown table."""
    lines = [
        f"### WAL shipping under pgbench -c 2 ({segment_bytes >> 20} MiB segments, archive_timeout 1 s)",
        "",
        "| archive_command | pgbench tps | WAL records MB/s | WAL position MB/s | segments/s written "
        "| segments/s pushed (load + drain) "
        "| max backlog | drain s | archiver lag s median / p95 / max | loss window s median / p95 / max | "
        + " | ".join(f"lag '{name}' s median / p95 / max" for name in destinations)
        + " | failed | SeaweedFS CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(destinations) + "---:|---:|",
    ]
    for result in results:
        during = result.observations
        per_destination = [
            lag_cells([sample.destination_lags[index] for sample in during if sample.destination_lags])
            for index in range(len(destinations))
        ]
        lines.append(
            "| "
            + " | ".join(
                [
                    result.label,
                    f"{result.transactions_per_second:.0f}",
                    f"{result.record_bytes / result.seconds / 1e6:.2f}",
                    f"{result.wal_bytes / result.seconds / 1e6:.2f}",
                    f"{result.segments_written / result.seconds:.2f}",
                    f"{result.segments_pushed / (result.seconds + result.drain_seconds):.2f}",
                    str(max((sample.backlog for sample in during), default=0)),
                    f"{result.drain_seconds:.1f}",
                    lag_cells([sample.archiver_lag for sample in during]),
                    lag_cells([sample.loss_window for sample in during]),
                    *per_destination,
                    str(result.failed),
                    f"{result.seaweedfs_cpu_seconds:.1f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = standard_arguments(__doc__.splitlines()[0])
    parser.add_argument("--tiny", dest="smoke", action="store_true", help="the same as --smoke")
    parser.add_argument("--seconds", type=int, default=30, help="pgbench duration of each load phase")
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale (10: ~160 MB)")
    parser.add_argument("--segment-mb", type=int, default=16, choices=(1, 2, 4, 8, 16, 32, 64), help="WAL segment")
    parser.add_argument("--no-floor", action="store_true", help="skip the `cp` load phase")
    arguments = parser.parse_args()
    runs, seconds, scale, segment_mb = arguments.runs, arguments.seconds, arguments.scale, arguments.segment_mb
    if arguments.smoke:
        runs, seconds, scale, segment_mb = 1, 1, 1, 1
    segment_bytes = segment_mb << 20
    load_before = os.getloadavg()
    began = time.monotonic()
    results: list[LoadResult] = []
    with bench("replica-walbench-", Path("/tmp")) as instance:
        share_with_postgres(instance)
        destinations = [("primary", PRIMARY_BUCKET), ("offsite", OFFSITE_BUCKET)]
        store = {"kind": "postgresql", "mode": "physical", "host": "127.0.0.1", "user": SERVER_USER}
        environment = {**instance.replica_environment(), "HOME": str(instance.root)}
        raw_script = instance.root / "raw_put.py"
        raw_script.write_text(RAW_PUT_SCRIPT)
        raw_script.chmod(0o644)
        floor = instance.root / "floor"
        floor.mkdir(mode=0o777)
        floor.chmod(0o777)
        credentials = {
            "AWS_ACCESS_KEY_ID": instance.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": instance.credentials.secret_access_key,
        }
        raw_argv = [sys.executable, str(raw_script), "%p", instance.server.endpoint_url, PRIMARY_BUCKET, OFFSITE_BUCKET]
        commands = {
            "replica": ("`replica wal-push --job J %p`", replica_command(JOB)),
            "raw": ("`raw_put.py %p` (boto3 put_object x2)", shlex.join(raw_argv).replace("'%p'", "%p")),
            "floor": ("`cp %p DIR/%f`", f"cp %p {floor}/%f"),
        }
        root = Path(tempfile.mkdtemp(prefix="replica-walbench-pg-", dir="/tmp"))
        os.chown(root, pwd.getpwnam(SERVER_USER).pw_uid, -1)
        paths = [Path(sys.executable).resolve().parent, Path(sys.prefix), Path(replica.__file__).resolve().parent]
        with traversable_by_postgres(paths):
            cluster = Cluster(root, free_port())
            try:
                # pgbench -i's WAL goes to the floor: each phase starts with the archiver idle, not 20 pushes behind.
                cluster.create(segment_mb, commands["floor"][1])
                for name in (JOB, LATENCY_JOB):
                    instance.write_job(name, {**store, "port": cluster.port, "database": DATABASE}, destinations)
                cluster.start({**environment, **credentials})
                print(f"  {time.monotonic() - began:.1f} s: cluster started", file=sys.stderr)
                create_buckets(instance, [bucket for _, bucket in destinations])
                cluster.query(f"CREATE DATABASE {DATABASE}")
                subprocess.run(cluster.pgbench("-i", "-q", "-s", str(scale)), check=True, capture_output=True)
                print(f"  {time.monotonic() - began:.1f} s: pgbench -i -s {scale} done", file=sys.stderr)
                os.environ.update(instance.replica_environment())
                context = Context(load_settings(), progress=lambda message: None)
                phases = (
                    ["replica"] if arguments.smoke else ["replica", "raw"] + ([] if arguments.no_floor else ["floor"])
                )
                for phase in phases:
                    print(
                        f"  {time.monotonic() - began:.1f} s: load with {phase} archiving for {seconds} s",
                        file=sys.stderr,
                    )
                    sampled = context if phase == "replica" else None
                    results.append(run_load(instance, cluster, commands[phase], seconds, segment_bytes, sampled))
                segment = latest_segment(cluster, segment_bytes)
            finally:
                cluster.stop()
                shutil.rmtree(root, ignore_errors=True)
        fresh = FreshSegments(segment, instance.root / "latency", segment_bytes)
        raw_environment = {**instance.restic_environment(PRIMARY_BUCKET, JOB), **credentials}
        raw_latency = shlex.join([sys.executable, str(raw_script)])
        endpoint = instance.server.endpoint_url

        def raw_push() -> Sample:
            return instance.shell(
                f"{raw_latency} {fresh.next()} {endpoint} {PRIMARY_BUCKET} {OFFSITE_BUCKET}", raw_environment
            )

        latency = [
            compare(
                f"one push of a {segment_mb} MiB segment to 2 destinations vs raw_put.py (boto3, uncompressed)",
                lambda: instance.replica("wal-push", "--job", LATENCY_JOB, str(fresh.next())),
                raw_push,
                runs=runs,
                note="replica wal-push process (start-up, archive key, zstd, AES-GCM, HEAD + PUT x2)",
            )
        ]
        if not arguments.smoke:
            latency.append(
                compare(
                    f"one push of a {segment_mb} MiB segment vs `cp` (the floor)",
                    lambda: instance.replica("wal-push", "--job", LATENCY_JOB, str(fresh.next())),
                    lambda: instance.shell(f"cp {fresh.next()} {floor}/", os.environ.copy()),
                    runs=runs,
                    note="what a push costs over copying the file on the same disk",
                )
            )
        print(f"  {time.monotonic() - began:.1f} s: per-push latency measured", file=sys.stderr)
        breakdown = [] if arguments.smoke else push_breakdown(context, segment, runs)
        shutil.rmtree(segment.parent, ignore_errors=True)
    load_after = os.getloadavg()
    print(load_table(results, segment_bytes, [name for name, _ in destinations]))
    print()
    print(format_table("Per-push latency (medians of alternating runs)", latency))
    if breakdown:
        print("\n### One push, step by step (in process, medians)\n\n| step | ms |\n|---|---:|")
        print("\n".join(f"| {step} | {value:.1f} |" for step, value in breakdown))
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} CPUs")
    return 0


def replica_command(job: str) -> str:
    """Return the archive_command running this checkout's replica with this interpreter."""
    return shlex.join([sys.executable, "-m", "replica", "wal-push", "--job", job]) + " %p"


def create_buckets(instance: Bench, buckets: list[str]) -> None:
    """Create the destinations' buckets (WAL needs no restic repository: `replica init` would cost ~3 s each)."""
    client = boto3.client(
        "s3",
        endpoint_url=instance.server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=instance.credentials.access_key_id,
        aws_secret_access_key=instance.credentials.secret_access_key,
    )
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)


def free_port() -> int:
    """Return a loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
