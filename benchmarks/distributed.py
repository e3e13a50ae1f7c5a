"""Benchmark (issue 9): throughput of distributed execution, backups completed per minute with 1 and with 3 workers.

    .venv/bin/python benchmarks/distributed.py [--seconds 120] [--warmup 20] [--runs 1] [--workers 1,3]
        [--concurrency 2] [--jobs 20] [--interval 5] [--smoke]

JOBS small directory jobs (a few 4 KiB files each) share two repositories on SeaweedFS (one `replica init` serves
them all) and back up every INTERVAL seconds: far more work than the workers can do, so the figure is their
capacity, not the schedule. For each worker count (alternating when --runs > 1), on a fresh PostgreSQL catalog and
a fresh RabbitMQ virtual host, one `replica daemon --executor celery` sends every due slot and W
`replica worker --concurrency C` processes run them. After WARMUP seconds (start-up, the first round when every
job is due at once) a window of SECONDS is measured:

- runs/min: top-level backup runs that succeeded, with their copy to the second destination (a child run), whose
  work ended inside the window, from the catalog; the median duration of that work (backup start to copy end), and
  the median delay from their slot's time to their start (the backlog);
- CPU: of the workers (Python), of restic (the workers' children), of the daemon, SeaweedFS, this catalog's
  PostgreSQL backends and the whole RabbitMQ broker, read from /proc once a second, beside the machine's busy time
  (/proc/stat): what the rest of the machine took is the difference;
- slots: what became of the slots that fell due in the window (`work_slots.state`: done, covered or superseded
  by a later run, still running, or never reached before the window closed), and the broker's ready tasks.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and RabbitMQ on 127.0.0.1:5672 (guest, `rabbitmqctl`).
The figures compare wall-clock capacity: run it on a quiet machine, or say what else ran.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from harness import Bench, BenchFailed, bench, standard_arguments, write_random_file
from kombu.connection import Connection
from kombu.exceptions import ChannelError

POSTGRESQL_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
RABBITMQ_ADDRESS = "127.0.0.1:5672"
QUEUE = "replica"  # REPLICA_DEFAULT_QUEUE's default: the jobs name no queue of their own
PRIMARY_BUCKET = "bench-distributed-primary"
OFFSITE_BUCKET = "bench-distributed-offsite"
FILES_PER_JOB = 3
FILE_BYTES = 4096
SAMPLE_SECONDS = 1.0
STOP_SECONDS = 90.0
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# The CPU classes, in the order of the table.
WORKER_PYTHON, RESTIC, DAEMON, SEAWEEDFS, POSTGRESQL, RABBITMQ = (
    "workers (Python)",
    "restic",
    "daemon",
    "SeaweedFS",
    "PostgreSQL (this catalog)",
    "RabbitMQ (whole broker)",
)
CPU_CLASSES = (WORKER_PYTHON, RESTIC, DAEMON, SEAWEEDFS, POSTGRESQL, RABBITMQ)
SLOT_STATES = ("done", "covered", "superseded", "running")


@dataclass(frozen=True)
class Backends:
    """The catalog database and broker virtual host of one measured run, and the environment that names them."""

    database: str
    vhost: str
    environment: dict[str, str]


@dataclass(frozen=True)
class Watched:
    """The processes whose CPU a measured run accounts for (everything else on the machine is 'others')."""

    workers: frozenset[int]
    daemon: int
    seaweedfs: int
    database: str


@dataclass
class CpuUse:
    """CPU seconds by class over a window, and the whole machine's busy seconds over the same window."""

    seconds: dict[str, float] = field(default_factory=dict)
    machine_busy_seconds: float = 0.0
    window_seconds: float = 0.0

    @property
    def ours_seconds(self) -> float:
        """Return the CPU seconds of every watched process together."""
        return sum(self.seconds.values())


@dataclass
class Measurement:
    """What one measured window of one worker count gave."""

    workers: int
    concurrency: int
    window_seconds: float
    durations_seconds: list[float]
    delays_seconds: list[float]
    runs_per_worker: Counter[str]
    failed_runs: int
    slots: Counter[str]
    slots_due: int
    queue_ready: list[int]
    cpu: CpuUse

    @property
    def runs_per_minute(self) -> float:
        """Return the backups that succeeded in the window, per minute."""
        return len(self.durations_seconds) * 60 / self.window_seconds


# Backends ------------------------------------------------------------------------------------------------------


def rabbitmqctl(*arguments: str) -> str:
    """Run `rabbitmqctl ARGUMENTS` quietly; return its output. Raises CalledProcessError when it fails."""
    completed = subprocess.run(
        ["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, text=True, timeout=120
    )
    return completed.stdout


@contextlib.contextmanager
def fresh_backends() -> Iterator[Backends]:
    """Yield a new PostgreSQL database and RabbitMQ virtual host (guest may use it); drop both on exit."""
    suffix = secrets.token_hex(4)
    database, vhost = f"replica_bench_distributed_{suffix}", f"replica-bench-{suffix}"
    with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        rabbitmqctl("add_vhost", vhost)
        try:
            rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            yield Backends(
                database,
                vhost,
                {
                    "REPLICA_CATALOG_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
                    "REPLICA_BROKER_URL": f"amqp://guest:guest@{RABBITMQ_ADDRESS}/{vhost}",
                },
            )
        finally:
            rabbitmqctl("delete_vhost", vhost)
    finally:
        with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def write_jobs(instance: Bench, jobs: int, interval_seconds: int, prefix: str) -> list[str]:
    """Write `jobs` directory jobs backing up every `interval_seconds` into the two repositories under `prefix`
    (their sources are written once per bench); return their names."""
    names = []
    for number in range(jobs):
        name = f"job-{number:02d}"
        source = instance.root / "sources" / name
        for index in range(FILES_PER_JOB):
            if not (source / f"file-{index}.bin").exists():
                write_random_file(source / f"file-{index}.bin", FILE_BYTES)
        instance.write_job(
            name,
            {"kind": "directory", "path": str(source)},
            [("primary", PRIMARY_BUCKET), ("offsite", OFFSITE_BUCKET)],
            prefix=prefix,
            schedule={"backup": f"every {interval_seconds}s", "verify": "off", "prune": "off"},
        )
        names.append(name)
    return names


# Processes -----------------------------------------------------------------------------------------------------


def start_replica(instance: Bench, log: Path, *arguments: str) -> subprocess.Popen[bytes]:
    """Start `replica ARGUMENTS` on the bench's environment with its output in `log`; return the process."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "replica", *arguments],
            env=instance.replica_environment(),
            stdout=output,
            stderr=output,
            cwd=instance.root,
        )


def stop_processes(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Ask every process to stop (SIGTERM: running work finishes), then kill those still there after STOP_SECONDS."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# CPU ---------------------------------------------------------------------------------------------------------


def read_process_ticks(pid: int) -> tuple[str, int, int] | None:
    """Return a process's name, its own CPU ticks and the ticks of its children it waited for, or None when it is
    gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is the state: utime is the 12th after it
    return name, int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def serves_database(pid: int, database: str) -> bool:
    """Return True when `pid` is a PostgreSQL backend of `database`, from its process title ('postgres: [CLUSTER:]
    USER DATABASE HOST STATE'; the cluster's name is there when cluster_name is set, as Debian does)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split()
    except OSError:
        return False
    return title[:1] == ["postgres:"] and database in title


def classify(pid: int, watched: Watched) -> list[tuple[str, int]]:
    """Return the CPU classes `pid` counts in, with its ticks in each (none for processes not watched).

    A worker's restic processes are its children: the kernel adds their ticks to the worker's when it reaps them,
    so they are counted exactly however short they live (the sampling would miss most of a 1 s process).
    """
    ticks = read_process_ticks(pid)
    if ticks is None:
        return []
    name, own, children = ticks
    if pid in watched.workers:
        return [(WORKER_PYTHON, own), (RESTIC, children)]
    if pid == watched.daemon:
        return [(DAEMON, own + children)]
    if pid == watched.seaweedfs:
        return [(SEAWEEDFS, own + children)]
    if name == "beam.smp":
        return [(RABBITMQ, own + children)]
    if name == "postgres" and serves_database(pid, watched.database):
        return [(POSTGRESQL, own)]
    return []


def machine_busy_ticks() -> int:
    """Return the ticks every CPU of the machine spent busy since boot (user, nice, system, irq, softirq, steal)."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq + steal


class QueueProbe:
    """Reads the counts of the workers' queue on the broker (a passive declare: it never creates the queue)."""

    def __init__(self, broker_url: str) -> None:
        # kombu has no annotations: its connection and channels are Any here.
        self._connection: Any = Connection(broker_url)  # type: ignore[no-untyped-call]
        self._channel: Any = None

    def __enter__(self) -> QueueProbe:
        self._channel = self._connection.channel()
        return self

    def __exit__(self, *details: object) -> None:
        self._connection.release()

    def counts(self) -> tuple[int, int] | None:
        """Return the queue's ready tasks (waiting for a free worker thread) and its consumers (one per worker), or
        None while no worker has declared the queue yet."""
        try:
            declared = self._channel.queue_declare(queue=QUEUE, passive=True)
        except ChannelError:  # the broker closes the channel of a failed declare: open another for the next one
            self._channel = self._connection.channel()
            return None
        return declared.message_count, declared.consumer_count


def wait_for_consumers(broker_url: str, workers: int) -> float:
    """Wait until `workers` workers consume the queue; return the seconds that took.

    Raises BenchFailed when they are not all there after STOP_SECONDS.
    """
    started = time.monotonic()
    with QueueProbe(broker_url) as queue:
        while time.monotonic() - started < STOP_SECONDS:
            counts = queue.counts()
            if counts is not None and counts[1] >= workers:
                return time.monotonic() - started
            time.sleep(0.2)
    raise BenchFailed(f"{workers} worker(s) did not all consume the queue within {STOP_SECONDS:.0f} s")


class CpuSampler:
    """Samples the CPU ticks of the watched processes once a second, and the broker's ready tasks with them.

    A process first seen after the window opened counts from zero (a PostgreSQL backend opened meanwhile); one that
    ended counts to its last sample (a backend closed within the second loses its last second).
    """

    def __init__(self, watched: Watched, broker_url: str) -> None:
        self._watched = watched
        self._broker_url = broker_url
        self._baseline: dict[tuple[int, str], int] = {}
        self._latest: dict[tuple[int, str], int] = {}
        self.queue_ready: list[int] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._machine_start = 0
        self._started = 0.0

    def start(self) -> None:
        """Open the window: take the baseline and sample in the background."""
        self._sample(first=True)
        self._machine_start = machine_busy_ticks()
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> CpuUse:
        """Close the window; return the CPU each class used in it."""
        self._stopping.set()
        self._thread.join()
        self._sample(first=False)
        use = CpuUse(
            machine_busy_seconds=(machine_busy_ticks() - self._machine_start) / CLOCK_TICKS_PER_SECOND,
            window_seconds=time.monotonic() - self._started,
        )
        for name in CPU_CLASSES:
            ticks = sum(self._latest[key] - self._baseline[key] for key in self._latest if key[1] == name)
            use.seconds[name] = ticks / CLOCK_TICKS_PER_SECOND
        return use

    def _loop(self) -> None:
        with QueueProbe(self._broker_url) as queue:
            while not self._stopping.wait(SAMPLE_SECONDS):
                self._sample(first=False)
                counts = queue.counts()
                if counts is not None:
                    self.queue_ready.append(counts[0])

    def _sample(self, *, first: bool) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            for name, ticks in classify(pid, self._watched):
                self._baseline.setdefault((pid, name), ticks if first else 0)
                self._latest[(pid, name)] = ticks


# One measured run ----------------------------------------------------------------------------------------------


def measure(instance: Bench, workers: int, arguments: argparse.Namespace, index: int) -> Measurement:
    """Run the daemon and `workers` workers on fresh backends, measure the window after the warm-up; return it.

    Raises BenchFailed (with the tail of the processes' logs) when a process died during the window.
    """
    logs = instance.root / f"logs-{index}"
    logs.mkdir()
    with fresh_backends() as backends:
        instance.extra_environment = {**backends.environment, "REPLICA_STATE_DIR": str(logs / "state")}
        jobs = write_jobs(instance, arguments.jobs, arguments.interval, prefix=f"run-{index}")
        instance.replica("init", jobs[0])  # the repositories every job shares
        names = [f"w{number}" for number in range(workers)]
        processes = [
            start_replica(instance, logs / f"{name}.log", "worker", "--name", name, *concurrency(arguments))
            for name in names
        ]
        try:
            # The warm-up counts from the daemon's start, every worker ready: a slow start is no part of it.
            wait_for_consumers(backends.environment["REPLICA_BROKER_URL"], workers)
            daemon = start_replica(instance, logs / "daemon.log", "daemon", "--executor", "celery")
            processes.append(daemon)
            time.sleep(arguments.warmup)
            watched = Watched(
                workers=frozenset(process.pid for process in processes[:-1]),
                daemon=daemon.pid,
                seaweedfs=seaweedfs_pid(instance),
                database=backends.database,
            )
            sampler = CpuSampler(watched, backends.environment["REPLICA_BROKER_URL"])
            opened = datetime.now(UTC)
            sampler.start()
            time.sleep(arguments.seconds)
            cpu = sampler.stop()
            closed = datetime.now(UTC)
            died = [process.args for process in processes if process.poll() is not None]
            if died:
                raise BenchFailed(f"died during the window: {died}\n{log_tails(logs)}")
        finally:
            stop_processes(processes)
            instance.extra_environment = {}
        return read_catalog(backends, workers, arguments, (opened, closed), cpu, sampler.queue_ready)


def concurrency(arguments: argparse.Namespace) -> tuple[str, str]:
    """Return the worker's `--concurrency` option."""
    return ("--concurrency", str(arguments.concurrency))


def seaweedfs_pid(instance: Bench) -> int:
    """Return the pid of the bench's SeaweedFS (0 on a bench without one)."""
    process = getattr(instance.server, "process", None)
    return process.process.pid if process is not None else 0


def log_tails(logs: Path) -> str:
    """Return the last lines of every process log of a measured run."""
    return "\n".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        for log in sorted(logs.glob("*.log"))
    )


# A backup's work ends with its last copy (a child run that starts after the backup run finished): each top-level
# backup whose whole work ended in the window, with that end and whether the backup and every copy succeeded.
# A skipped run (a slot superseded while its job was busy) is no work done.
FINISHED_BACKUPS = """
    SELECT backup.started_at, GREATEST(backup.finished_at, max(copy.finished_at)) AS ended, backup.slot, backup.actor,
           backup.status = 'succeeded' AND coalesce(bool_and(copy.status = 'succeeded'), true) AS succeeded
    FROM runs AS backup LEFT JOIN runs AS copy ON copy.parent_run_id = backup.id
    WHERE backup.parent_run_id IS NULL AND backup.kind = 'backup' AND backup.status NOT IN ('running', 'skipped')
    GROUP BY backup.id
    HAVING count(copy.id) = count(copy.finished_at)
       AND GREATEST(backup.finished_at, max(copy.finished_at)) >= %s
       AND GREATEST(backup.finished_at, max(copy.finished_at)) < %s
"""


def read_catalog(
    backends: Backends,
    workers: int,
    arguments: argparse.Namespace,
    window: tuple[datetime, datetime],
    cpu: CpuUse,
    queue_ready: list[int],
) -> Measurement:
    """Return the measurement of a window: the backups whose work (copy included) ended in it, and the slots that
    fell due in it."""
    opened, closed = window
    connection_string = f"host=127.0.0.1 user=postgres dbname={backends.database}"
    with psycopg.connect(connection_string) as connection:
        finished = connection.execute(FINISHED_BACKUPS, (opened, closed)).fetchall()
        slots = connection.execute(
            "SELECT state, count(*) FROM work_slots WHERE kind = 'backup' AND slot >= %s AND slot < %s GROUP BY state",
            (opened, closed),
        ).fetchall()
    succeeded = [run for run in finished if run[4]]
    # The daemon sends one slot per job per interval: those of the window are its fire times inside it.
    fire_times = int((closed - opened) / timedelta(seconds=arguments.interval))
    return Measurement(
        workers=workers,
        concurrency=arguments.concurrency,
        window_seconds=(closed - opened).total_seconds(),
        durations_seconds=[(ended - started_at).total_seconds() for started_at, ended, *_ in succeeded],
        delays_seconds=[(run[0] - run[2]).total_seconds() for run in succeeded if run[2] is not None],
        runs_per_worker=Counter(run[3] for run in succeeded),
        failed_runs=len(finished) - len(succeeded),
        slots=Counter({state: count for state, count in slots}),
        slots_due=fire_times * arguments.jobs,
        queue_ready=queue_ready,
        cpu=cpu,
    )


# The tables ----------------------------------------------------------------------------------------------------


def median_of(values: Sequence[float]) -> str:
    """Return the median of `values` to a tenth, or '–' when there are none."""
    return f"{statistics.median(values):.1f}" if values else "–"


def throughput_table(results: dict[int, list[Measurement]]) -> str:
    """Return the runs/min table: medians over each worker count's windows, and the ratio to the fewest workers."""
    baseline = statistics.median(m.runs_per_minute for m in results[min(results)])
    lines = [
        "| workers | concurrency | runs/min (median) | each window | median run s | median slot→start s | "
        f"ratio to {min(results)} worker(s) | runs per worker | failed |",
        "|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for workers, measured in results.items():
        rate = statistics.median(m.runs_per_minute for m in measured)
        per_worker: Counter[str] = sum((m.runs_per_worker for m in measured), Counter())
        cells = [
            str(workers),
            str(measured[0].concurrency),
            f"{rate:.1f}",
            ", ".join(f"{m.runs_per_minute:.1f}" for m in measured),
            median_of([d for m in measured for d in m.durations_seconds]),
            median_of([d for m in measured for d in m.delays_seconds]),
            f"{rate / baseline:.2f}" if baseline else "–",
            ", ".join(f"{actor.removeprefix('worker:')}: {count}" for actor, count in sorted(per_worker.items())),
            str(sum(m.failed_runs for m in measured)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_table(results: dict[int, list[Measurement]]) -> str:
    """Return the CPU table: mean cores each class used over the windows, and CPU seconds per completed backup."""
    lines = [
        "| workers | " + " | ".join(CPU_CLASSES) + " | all of these | machine busy | others | CPU s per backup |",
        "|---:|" + "---:|" * (len(CPU_CLASSES) + 4),
    ]
    for workers, measured in results.items():
        window = sum(m.cpu.window_seconds for m in measured)
        ours = sum(m.cpu.ours_seconds for m in measured)
        busy = sum(m.cpu.machine_busy_seconds for m in measured)
        backups = sum(len(m.durations_seconds) for m in measured)
        cells = [str(workers)]
        cells += [f"{sum(m.cpu.seconds[name] for m in measured) / window:.2f}" for name in CPU_CLASSES]
        cells += [f"{ours / window:.2f}", f"{busy / window:.2f}", f"{(busy - ours) / window:.2f}"]
        cells.append(f"{ours / backups:.2f}" if backups else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def slots_table(results: dict[int, list[Measurement]]) -> str:
    """Return the backlog table: what became of the slots due in the windows, and the broker's ready tasks."""
    lines = [
        "| workers | slots due | " + " | ".join(SLOT_STATES) + " | never reached | ready tasks min / median / max |",
        "|---:|---:|" + "---:|" * (len(SLOT_STATES) + 1) + "---|",
    ]
    for workers, measured in results.items():
        slots: Counter[str] = sum((m.slots for m in measured), Counter())
        due = sum(m.slots_due for m in measured)
        ready = [count for m in measured for count in m.queue_ready]
        cells = [str(workers), str(due)] + [str(slots[state]) for state in SLOT_STATES]
        cells.append(str(max(due - sum(slots.values()), 0)))
        cells.append(f"{min(ready)} / {statistics.median(ready):.0f} / {max(ready)}" if ready else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_average() -> str:
    """Return the machine's 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def parse_arguments() -> argparse.Namespace:
    """Return the command line's options (--smoke: 3 jobs, short windows, one run of each worker count)."""
    parser = standard_arguments(__doc__.splitlines()[0])
    parser.set_defaults(runs=1)
    parser.add_argument("--seconds", type=float, default=120.0, help="measured window of each run")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before the window opens")
    parser.add_argument("--workers", default="1,3", help="worker counts to compare, comma-separated")
    parser.add_argument("--concurrency", type=int, default=2, help="runs at a time in each worker")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--interval", type=int, default=5, help="seconds between backups of each job")
    arguments = parser.parse_args()
    arguments.worker_counts = [int(count) for count in arguments.workers.split(",")]
    if arguments.smoke:
        arguments.jobs, arguments.interval, arguments.warmup, arguments.seconds, arguments.runs = 3, 2, 6, 6, 1
    return arguments


def main() -> int:
    arguments = parse_arguments()
    load_before = load_average()
    results: dict[int, list[Measurement]] = {count: [] for count in arguments.worker_counts}
    with bench(prefix="replica-bench-distributed-") as instance:
        for index in range(arguments.runs):
            # Alternate the order run by run, so that a slow moment of the machine hits every worker count alike.
            order = arguments.worker_counts if index % 2 == 0 else arguments.worker_counts[::-1]
            for workers in order:
                measured = measure(instance, workers, arguments, sum(len(measured) for measured in results.values()))
                results[workers].append(measured)
                print(
                    f"  {workers} worker(s), run {index + 1}/{arguments.runs}: {measured.runs_per_minute:.1f} runs/min",
                    file=sys.stderr,
                )
    print(
        f"### Distributed execution: {arguments.jobs} directory jobs, backup every {arguments.interval}s, "
        f"{arguments.seconds:.0f} s windows after {arguments.warmup:.0f} s of warm-up, {arguments.runs} run(s) each"
    )
    print()
    print(throughput_table(results))
    print()
    print("CPU, mean cores over the windows (the machine has", os.cpu_count(), "):")
    print()
    print(cpu_table(results))
    print()
    print("Slots of the window (the backlog):")
    print()
    print(slots_table(results))
    print()
    print(f"Load average before: {load_before}; after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
