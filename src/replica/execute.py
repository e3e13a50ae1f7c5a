"""The one place where replica starts processes.

Every call gets an explicit environment (a small base plus what the caller passes; nothing else leaks in from
replica's own environment), a deadline, and stderr captured so that a failure carries its last lines. Secrets
travel only in environment variables, which are logged by name, never by value.

Single commands run through `sh`. Pipelines (a dump streamed into `restic backup --stdin`, `restic dump` streamed
into `pg_restore`) connect the two processes with an OS pipe via `subprocess.Popen`: the data never passes through
Python, which the field notes measured at ~1.4 GB/s against ~48 MB/s through `sh`'s captured output.

Besides its wall-clock deadline every process has a stall detector (`Command.stall_seconds`): a process whose I/O
counters (`/proc/PID/io` rchar and wchar: files, sockets and pipes alike) and captured output have not moved for
that long is stopped like one past its deadline. restic 0.14 waiting on an endpoint that accepts connections and
never answers reads and writes nothing at all (measured: 20 s without a byte), while a healthy restic moves data
every fraction of a second (`check --read-data` and `restore` over a 3 MB/s link: at most 0.2 s without 64 bytes
of I/O). The counters are read by the wait loops that already poll, at most once a second per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sh

from replica.errors import Cancelled, Interrupted, ProcessFailed

logger = logging.getLogger(__name__)

STDERR_TAIL_LINES = 25
INTERRUPT_GRACE_SECONDS = 10.0
WAIT_FIRST_POLL_SECONDS = 0.005
WAIT_LAST_POLL_SECONDS = 0.1
PIPELINE_POLL_SECONDS = 0.05
DEFAULT_STALL_SECONDS = 300.0
# How often a process's I/O counters are read, and how many bytes of I/O in that time count as progress: a Go
# program (restic) that waits on the network still reads and writes a byte now and then (its poller's wake-ups,
# measured at 1 byte every ~2 s), which must not count.
STALL_SAMPLE_SECONDS = 1.0
STALL_NOISE_BYTES = 64
BASE_ENVIRONMENT_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "XDG_CACHE_HOME")


# The daemon's stop switch. Once set, no new process starts and a process that ends unsuccessfully is reported
# as Interrupted (the run ends `interrupted`, not `failed`: the store is not to blame). The registry of live
# children lets the daemon interrupt them from its main thread while worker threads wait on them.
_stopping = threading.Event()
_live_pids: set[int] = set()
_live_lock = threading.Lock()


def stop_processes(grace_seconds: float) -> int:
    """Refuse new processes, SIGINT every running child, SIGKILL those still alive after `grace_seconds`.

    Returns how many children had to be killed. restic releases its repository lock on SIGINT, not on SIGKILL,
    so the grace should cover a lock release (well under a second).
    """
    _stopping.set()
    _signal_live(signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and _live_count():
        time.sleep(0.05)
    return _signal_live(signal.SIGKILL)


def allow_processes() -> None:
    """Undo `stop_processes` (for a process that goes on after a drain, and for tests)."""
    _stopping.clear()


def _live_count() -> int:
    with _live_lock:
        return len(_live_pids)


def _signal_live(signal_number: int) -> int:
    with _live_lock:
        pids = list(_live_pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal_number)
    return len(pids)


def _register(pid: int) -> None:
    with _live_lock:
        _live_pids.add(pid)


def _unregister(pid: int) -> None:
    with _live_lock:
        _live_pids.discard(pid)


def _refuse_when_stopping(command: Command) -> None:
    if _stopping.is_set():
        raise Interrupted(f"{command.program} not started: replica is stopping")


class Cancellation:
    """A switch another thread flips to stop a command early (a check running beside it failed).

    The command's processes get SIGINT, then SIGKILL after the grace period, and the call raises Cancelled; a
    command asked to start after the switch was flipped is never started.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        """Flip the switch, saying why (the Cancelled error carries the reason)."""
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Return True once `cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self, program: str) -> None:
        """Raise Cancelled naming `program` once the switch is flipped."""
        if self.cancelled:
            raise Cancelled(program, self.reason)


@dataclass(frozen=True)
class Command:
    """One process to run: argv, the extra environment it needs, its deadline and working directory.

    `stall_seconds`: stop the process once it made no progress for that long (None: only the deadline applies).
    `output_is_progress`: whether bytes on its captured stdout/stderr count as progress; restic's `--json` prints a
    status line every second whatever it is doing (measured: ~150 bytes a second while stuck on a silent endpoint),
    so for restic only real I/O counts.
    """

    argv: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 300.0
    cwd: Path | None = None
    stall_seconds: float | None = DEFAULT_STALL_SECONDS
    output_is_progress: bool = True

    @property
    def program(self) -> str:
        """Return the program's base name, for messages."""
        return Path(self.argv[0]).name


@dataclass(frozen=True)
class Completed:
    """The outcome of one process: exit code (None when stopped early), output and duration.

    `timed_out` is set when replica stopped the process, at its deadline or, with `stalled_seconds` set too,
    because it made no progress for that long.
    """

    command: Command
    exit_code: int | None
    stdout: str
    stderr_tail: str
    duration_seconds: float
    timed_out: bool = False
    stalled_seconds: float | None = None

    @property
    def succeeded(self) -> bool:
        """Return True when the process exited 0 within its deadline."""
        return self.exit_code == 0 and not self.timed_out

    @property
    def stop_reason(self) -> str:
        """Return why replica stopped the process, as a phrase for messages ("" when it was not stopped)."""
        if self.stalled_seconds is not None:
            return f"made no progress for {self.stalled_seconds:g} s"
        return "did not finish in time" if self.timed_out else ""

    def raise_for_failure(self) -> None:
        """Raise ProcessFailed unless the process succeeded."""
        if not self.succeeded:
            raise ProcessFailed(
                self.command.program, self.exit_code, self.stderr_tail, self.timed_out, self.stalled_seconds
            )


@dataclass(frozen=True)
class PipelineCompleted:
    """The outcome of `producer | consumer`."""

    producer: Completed
    consumer: Completed


def describe(command: Command) -> str:
    """Return the command as a loggable line: environment by name only (`RESTIC_PASSWORD=***`), then argv."""
    names = " ".join(f"{name}=***" for name in sorted(command.environment))
    return f"{names} {' '.join(command.argv)}".strip()


def build_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """Return the explicit environment of a child: a few base variables of ours plus `extra`."""
    environment = {name: os.environ[name] for name in BASE_ENVIRONMENT_NAMES if name in os.environ}
    environment.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    environment.setdefault("LANG", "C.UTF-8")
    environment.update(extra)
    return environment


def run(command: Command, *, stdout_path: Path | None = None, cancellation: Cancellation | None = None) -> Completed:
    """Run one command to completion or to its deadline and return what happened; never raises on exit codes.

    On the deadline the process gets SIGINT (restic then releases its lock), then SIGKILL after a grace period.
    `stdout_path` sends standard output to a file instead of memory (for bulk data).
    Raises ProcessFailed when the program cannot be found, Cancelled when `cancellation` stopped it.
    """
    logger.debug("running: %s", describe(command))
    _refuse_when_stopping(command)
    if cancellation is not None:
        cancellation.raise_if_cancelled(command.program)
    try:
        program = sh.Command(command.argv[0])
    except sh.CommandNotFound:
        raise ProcessFailed(command.program, None, f"{command.argv[0]}: command not found") from None
    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr_file, _OpenOutput(stdout_path) as stdout_file:
        keywords: dict[str, Any] = {
            "_bg": True,
            "_bg_exc": False,
            "_out": stdout_file,
            "_err": stderr_file,
            "_env": build_environment(command.environment),
            "_ok_code": list(range(256)),
            # A process group of its own: a Ctrl-C or a SIGTERM sent to replica's process group (a terminal, a
            # supervisor) must not reach restic directly. replica stops its children itself: SIGINT, so restic
            # releases its lock, and only once the grace period is over, so the run is recorded as interrupted.
            # Not a session of its own: Linux shares the CPU between sessions first (autogroups), so a child in a
            # session of its own takes a whole share beside the database server it reads from; a restore of 1 GB
            # into PostgreSQL through `restic dump | pg_restore` then took ~0.5 s (5%) longer than the same pipeline
            # in a shell, whose commands share its session. Children must never prompt (every store passes its
            # password non-interactively): in a background group of a terminal, one writing to it would be stopped.
            "_new_group": True,
        }
        if command.cwd is not None:
            keywords["_cwd"] = str(command.cwd)
        running = program(*command.argv[1:], **keywords)
        _register(running.pid)
        captured = [stderr_file] if stdout_path else [stdout_file, stderr_file]
        watch = _ProgressWatch(running.pid, command, captured, started)
        try:
            exit_code, timed_out, stalled = _wait_with_deadline(running, command, cancellation, watch)
        except BaseException:
            # Interrupted or terminated ourselves: never leave the child running (restic releases its lock on
            # SIGINT, not on SIGTERM).
            _interrupt(running)
            raise
        finally:
            _unregister(running.pid)
        stdout = "" if stdout_path else _read_all(stdout_file)
        completed = Completed(
            command,
            exit_code,
            stdout,
            _tail(stderr_file),
            time.monotonic() - started,
            timed_out,
            command.stall_seconds if stalled else None,
        )
    logger.debug("%s exited %s after %.2fs", command.program, exit_code, completed.duration_seconds)
    if _stopping.is_set() and not completed.succeeded:
        raise Interrupted(f"{command.program} stopped while replica was stopping")
    return completed


def _wait_with_deadline(
    running: Any, command: Command, cancellation: Cancellation | None, watch: _ProgressWatch
) -> tuple[int | None, bool, bool]:
    """Return (exit code, timed out, stalled) once the process ended or was stopped at its deadline or stall."""
    # sh's own wait(timeout=...) polls every 100 ms and counts its sleeps rather than the clock: ~50 ms lost per
    # process on average (a small job starts several restic processes of ~0.5 s each). Poll from 5 ms, backing
    # off to 100 ms, against a monotonic deadline.
    deadline = time.monotonic() + command.timeout_seconds
    pause = WAIT_FIRST_POLL_SECONDS
    while running.is_alive():
        if cancellation is not None and cancellation.cancelled and running.is_alive():
            # Only a process still running is stopped: one that ended meanwhile keeps its own outcome (the caller
            # interrupts the process).
            raise Cancelled(command.program, cancellation.reason)
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            _interrupt(running)
            return None, True, False
        if watch.stalled(now) and running.is_alive():
            logger.warning("%s made no progress for %gs; stopping it", command.program, command.stall_seconds)
            _interrupt(running)
            return None, True, True
        time.sleep(min(pause, remaining))
        pause = min(pause * 1.5, WAIT_LAST_POLL_SECONDS)
    try:
        running.wait()
        return running.exit_code, False, False
    except sh.SignalException:
        return running.process.exit_code, False, False


class _ProgressWatch:
    """Tells whether a process still makes progress: its I/O counters or its captured output moved.

    Progress is judged over windows of up to STALL_SAMPLE_SECONDS: more than STALL_NOISE_BYTES of I/O besides the bytes
    written to its captured output, or (when `output_is_progress`) any new captured output. The kernel counts the
    I/O of the children a process has reaped as its own (a shell's commands), not that of children still running.
    """

    def __init__(self, pid: int, command: Command, captured: Sequence[IO[bytes]], started: float) -> None:
        self.pid = pid
        self.stall_seconds = command.stall_seconds
        # Two readings at least per stall period, so that a stall is seen within half a period of its limit.
        self.sample_seconds = min(STALL_SAMPLE_SECONDS, (command.stall_seconds or STALL_SAMPLE_SECONDS) / 2)
        self._output_is_progress = command.output_is_progress
        self._captured = captured
        self.last_progress_at = started
        self._sampled_at = started
        # The baseline (one read of /proc, ~20 us beside a fork and exec): judged windows then start at once, so a
        # stall is seen between its limit and half a limit later. The start-up's I/O (the loader reading libraries)
        # counts as progress in the first window.
        self._io_bytes = _io_bytes(pid)
        self._output_bytes = 0

    def sample(self, now: float) -> None:
        """Read the counters when a window has passed since the last reading; note progress when they moved."""
        if now - self._sampled_at < self.sample_seconds:
            return
        io_bytes = _io_bytes(self.pid)
        output_bytes = sum(_file_size(file) for file in self._captured)
        output_grew = output_bytes - self._output_bytes
        other_io = 0
        if io_bytes is not None and self._io_bytes is not None:
            other_io = io_bytes - self._io_bytes - output_grew
        if other_io > STALL_NOISE_BYTES or (self._output_is_progress and output_grew > 0):
            self.last_progress_at = now
        self._io_bytes, self._output_bytes, self._sampled_at = io_bytes, output_bytes, now

    def excuse(self, now: float) -> None:
        """Count the time up to `now` as progress: the process waited on another one, not on nothing."""
        self.last_progress_at = now

    def stalled(self, now: float) -> bool:
        """Return True once the process made no progress for its `stall_seconds` (never when it has none)."""
        if self.stall_seconds is None:
            return False
        self.sample(now)
        return now - self.last_progress_at >= self.stall_seconds


def _io_bytes(pid: int) -> int | None:
    """Return rchar + wchar of a process (every byte it read or wrote, sockets and pipes included), or None when
    the kernel does not tell (the process is gone, or no task I/O accounting)."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as io_file:
            counters = dict(line.split(":", 1) for line in io_file if ":" in line)
        return int(counters["rchar"]) + int(counters["wchar"])
    except (OSError, KeyError, ValueError):
        return None


def _file_size(file: IO[bytes]) -> int:
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, ValueError):
        return 0


def _pipeline_stalled(watches: Sequence[_ProgressWatch], running: Sequence[bool], now: float) -> float | None:
    """Return the stall limit a pipeline went past, or None while it still makes progress.

    A pipeline stalls when none of its running processes made progress for the shortest limit among them: a
    producer blocked on a full pipe waits for its consumer, not for nothing. A process without a limit (a database
    restore tool, which may wait on its server for an hour while an index builds) holds the pipeline back
    legitimately only while the others are blocked writing into the pipe to it; a producer stuck on anything else
    (restic on a silent endpoint) is judged by its own limit, and the pipeline stopped with it.
    """
    live = [watch for watch, alive in zip(watches, running, strict=True) if alive]
    limited = [watch for watch in live if watch.stall_seconds is not None]
    if not limited:
        return None
    if len(limited) < len(live) and all(_writing_into_a_pipe(watch.pid) for watch in limited):
        # Time spent waiting on the consumer is not the producer's stall: its clock starts again when the consumer
        # reads, or a producer woken mid-write (its counters not yet moved) would be judged on the whole wait.
        for watch in limited:
            watch.excuse(now)
        return None
    for watch in limited:
        watch.sample(now)
    limit = min(watch.stall_seconds for watch in limited if watch.stall_seconds is not None)
    last_progress = max(watch.last_progress_at for watch in limited)
    return limit if now - last_progress >= limit else None


def _writing_into_a_pipe(pid: int) -> bool:
    """Return True when a thread of process `pid` is blocked writing into a pipe (its reader does not read)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/wchan") as wchan:
                # `pipe_write`, or `anon_pipe_write` on newer kernels
                if wchan.read().endswith("pipe_write"):
                    return True
        except OSError:
            continue
    return False


def _interrupt(running: Any) -> None:
    """SIGINT the child, then SIGKILL it after the grace period."""
    if not running.is_alive():
        return
    running.signal(signal.SIGINT)
    try:
        running.wait(timeout=INTERRUPT_GRACE_SECONDS)
    except sh.TimeoutException:
        running.kill()
        with contextlib.suppress(sh.SignalException):
            running.wait()
    except sh.SignalException:
        pass


def run_pipeline(
    producer: Command, consumer: Command, *, timeout_seconds: float, cancellation: Cancellation | None = None
) -> PipelineCompleted:
    """Run `producer | consumer` through an OS pipe and return both outcomes; never raises on exit codes.

    Both processes share one deadline; on expiry, or once neither made progress for its stall limit (see
    `_pipeline_stalled`), both get SIGINT, then SIGKILL. The producer's exit status is
    always reported: a consumer that succeeded does not make a failed producer a success (restic 0.14 saves a
    snapshot from a failed dump).
    Raises ProcessFailed when either program cannot be started, Cancelled when `cancellation` stopped them.
    """
    logger.debug("running: %s | %s", describe(producer), describe(consumer))
    _refuse_when_stopping(producer)
    if cancellation is not None:
        cancellation.raise_if_cancelled(f"{producer.program} | {consumer.program}")
    started = time.monotonic()
    with (
        tempfile.TemporaryFile() as producer_err,
        tempfile.TemporaryFile() as consumer_err,
        tempfile.TemporaryFile() as consumer_out,
    ):
        producer_process = _popen(producer, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=producer_err)
        # Registered at once: a stop (SIGTERM) that lands before the try below must still find it (the CLI stops
        # every registered child when interrupted), or a restic holding its lock would outlive replica.
        _register(producer_process.pid)
        try:
            consumer_process = _popen(consumer, stdin=producer_process.stdout, stdout=consumer_out, stderr=consumer_err)
        except BaseException:
            _stop([producer_process])
            _unregister(producer_process.pid)
            assert producer_process.stdout is not None
            producer_process.stdout.close()
            raise
        _register(consumer_process.pid)
        # Only the consumer may hold the read end, so the producer gets SIGPIPE if the consumer dies.
        assert producer_process.stdout is not None
        producer_process.stdout.close()
        deadline = started + timeout_seconds
        watches = (
            _ProgressWatch(producer_process.pid, producer, [producer_err], started),
            _ProgressWatch(consumer_process.pid, consumer, [consumer_out, consumer_err], started),
        )
        what = f"{producer.program} | {consumer.program}"
        # Only a process still running at the deadline or the stall is stopped early: a restic that already exited
        # 0 while the dump hangs must not be blamed for it.
        stopped_early: set[int] = set()
        stalled_seconds: float | None = None
        try:
            stop = _wait_pipeline((producer_process, consumer_process), watches, deadline, cancellation, what)
            if stop is not None:
                stalled_seconds = stop.stalled_seconds
                if stalled_seconds is not None:
                    logger.warning("%s made no progress for %gs; stopping it", what, stalled_seconds)
                stopped_early = {p.pid for p in (consumer_process, producer_process) if p.poll() is None}
                _stop([consumer_process, producer_process])
        except BaseException:
            _stop([consumer_process, producer_process])
            raise
        finally:
            for process in (producer_process, consumer_process):
                _unregister(process.pid)
        duration = time.monotonic() - started
        producer_stopped = producer_process.pid in stopped_early
        consumer_stopped = consumer_process.pid in stopped_early
        producer_result = Completed(
            producer,
            None if producer_stopped else producer_process.returncode,
            "",
            _tail(producer_err),
            duration,
            producer_stopped,
            stalled_seconds if producer_stopped else None,
        )
        consumer_result = Completed(
            consumer,
            None if consumer_stopped else consumer_process.returncode,
            _read_all(consumer_out),
            _tail(consumer_err),
            duration,
            consumer_stopped,
            stalled_seconds if consumer_stopped else None,
        )
    logger.debug(
        "%s exited %s, %s exited %s after %.2fs",
        producer.program,
        producer_result.exit_code,
        consumer.program,
        consumer_result.exit_code,
        duration,
    )
    if _stopping.is_set() and not (producer_result.succeeded and consumer_result.succeeded):
        raise Interrupted(f"{producer.program} | {consumer.program} stopped while replica was stopping")
    return PipelineCompleted(producer_result, consumer_result)


@dataclass(frozen=True)
class _EarlyStop:
    """Why a pipeline is to be stopped: its deadline (`stalled_seconds` None) or a stall of that many seconds."""

    stalled_seconds: float | None


def _wait_pipeline(
    processes: Sequence[subprocess.Popen[bytes]],
    watches: Sequence[_ProgressWatch],
    deadline: float,
    cancellation: Cancellation | None,
    what: str,
) -> _EarlyStop | None:
    """Return None once every process ended, or why they must be stopped (deadline, stall).

    Raises Cancelled once `cancellation` is flipped while a process still runs (one that ended on its own keeps
    its outcome).
    """
    sample_steps = [watch.sample_seconds for watch in watches if watch.stall_seconds is not None]
    while True:
        alive = [process.poll() is None for process in processes]
        if not any(alive):
            return None
        if cancellation is not None:
            cancellation.raise_if_cancelled(what)
        now = time.monotonic()
        if now >= deadline:
            return _EarlyStop(None)
        stalled_seconds = _pipeline_stalled(watches, alive, now)
        if stalled_seconds is not None:
            return _EarlyStop(stalled_seconds)
        # Popen.wait polls finely (from 0.5 ms): an exit is seen at once; the step bounds how late a cancellation,
        # the deadline or a stall is seen.
        step = min(PIPELINE_POLL_SECONDS if cancellation is not None else STALL_SAMPLE_SECONDS / 2, *sample_steps)
        first_alive = processes[alive.index(True)]
        with contextlib.suppress(subprocess.TimeoutExpired):
            first_alive.wait(timeout=max(min(step, deadline - now), 0.001))


def _popen(command: Command, *, stdin: Any, stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(command.argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=build_environment(command.environment),
            cwd=command.cwd,
            process_group=0,  # see run(): its own process group, in replica's session
        )
    except FileNotFoundError:
        raise ProcessFailed(command.program, None, f"{command.argv[0]}: command not found") from None


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    grace_end = time.monotonic() + INTERRUPT_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(grace_end - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _OpenOutput:
    """A context giving a file for stdout: the named path, or an anonymous temporary file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        self._file = self._path.open("wb") if self._path else tempfile.TemporaryFile()
        return self._file

    def __exit__(self, *exc_info: object) -> None:
        assert self._file is not None
        self._file.close()


def _read_all(file: IO[bytes]) -> str:
    file.flush()
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")


def _tail(file: IO[bytes]) -> str:
    lines = _read_all(file).splitlines()
    return "\n".join(lines[-STDERR_TAIL_LINES:])


@dataclass
class BackgroundProcess:
    """A long-running child (a local S3 server) that the caller must stop."""

    command: Command
    process: subprocess.Popen[bytes]

    def running(self) -> bool:
        """Return True while the process is alive."""
        return self.process.poll() is None

    def stop(self, grace_seconds: float = 15.0) -> int | None:
        """Stop with SIGTERM, then SIGKILL after the grace period; return the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_background(command: Command, log_path: Path) -> BackgroundProcess:
    """Start `command` in the background with stdout and stderr appended to `log_path`.

    Raises ProcessFailed when the program cannot be started.
    """
    logger.debug("starting in background: %s", describe(command))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = _popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return BackgroundProcess(command, process)


def as_user(argv: Sequence[str], user: str | None) -> tuple[str, ...]:
    """Return `argv` run as the operating-system user `user` (`runuser -u USER --`) when replica runs as root and
    `user` is another user; else `argv` unchanged (a replica that runs as that user already, or as a user that
    could not switch anyway: the program then says what it cannot do).

    runuser keeps the environment replica gives the child (only HOME, SHELL, USER and LOGNAME become the user's).
    """
    if user is None or os.geteuid() != 0:
        return tuple(argv)
    import pwd

    if pwd.getpwuid(os.geteuid()).pw_name == user:
        return tuple(argv)
    return ("runuser", "-u", user, "--", *argv)
