"""execute.run and execute.run_pipeline with tiny real processes: exit codes, deadlines, signals, environment, pipes."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from replica import execute
from replica.errors import Cancelled, ProcessFailed
from replica.execute import Cancellation, Command, run, run_pipeline

GRACE_SECONDS = 0.5


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    """Shorten the SIGINT → SIGKILL grace period so that deadline tests take about a second."""
    monkeypatch.setattr(execute, "INTERRUPT_GRACE_SECONDS", GRACE_SECONDS)
    return GRACE_SECONDS


def process_is_gone(pid: int) -> bool:
    """Return True when no process `pid` exists any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# run ---------------------------------------------------------------------------------------------------------------


def test_run_returns_exit_code_and_stdout() -> None:
    completed = run(Command(argv=("sh", "-c", "echo hello; echo world; exit 3")))

    assert completed.exit_code == 3
    assert completed.stdout == "hello\nworld\n"
    assert not completed.timed_out
    assert not completed.succeeded
    with pytest.raises(ProcessFailed, match="sh exited with code 3"):
        completed.raise_for_failure()


def test_run_success_is_succeeded() -> None:
    completed = run(Command(argv=("true",)))

    assert completed.exit_code == 0
    assert completed.succeeded
    completed.raise_for_failure()


def test_run_keeps_only_the_last_25_lines_of_stderr() -> None:
    script = "i=1; while [ $i -le 40 ]; do echo err$i >&2; i=$((i+1)); done; exit 1"

    completed = run(Command(argv=("sh", "-c", script)))

    lines = completed.stderr_tail.splitlines()
    assert lines == [f"err{number}" for number in range(16, 41)]
    with pytest.raises(ProcessFailed, match=r"exited with code 1: err40$") as info:
        completed.raise_for_failure()
    assert info.value.stderr_tail == completed.stderr_tail


def test_run_stops_a_command_past_its_deadline_with_sigint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A long grace period: a command that honours SIGINT must end long before SIGKILL would be sent.
    monkeypatch.setattr(execute, "INTERRUPT_GRACE_SECONDS", 20.0)
    marker = tmp_path / "got-sigint"
    script = f"trap 'echo interrupted > {marker}; exit 7' INT; while :; do sleep 0.05; done"

    started = time.monotonic()
    completed = run(Command(argv=("sh", "-c", script), timeout_seconds=0.5))
    elapsed = time.monotonic() - started

    assert completed.timed_out
    assert completed.exit_code is None
    assert not completed.succeeded
    assert marker.read_text() == "interrupted\n"
    assert elapsed < 5, "the command ended on SIGINT, without waiting for the SIGKILL grace period"
    with pytest.raises(ProcessFailed, match="did not finish in time") as info:
        completed.raise_for_failure()
    assert info.value.timed_out


def test_run_kills_a_command_that_ignores_sigint(tmp_path: Path, short_grace: float) -> None:
    marker = tmp_path / "got-sigint"
    pid_file = tmp_path / "pid"
    script = f"echo $$ > {pid_file}; trap 'echo ignored > {marker}' INT; while :; do sleep 0.05; done"

    started = time.monotonic()
    completed = run(Command(argv=("sh", "-c", script), timeout_seconds=0.5))
    elapsed = time.monotonic() - started

    assert completed.timed_out
    assert completed.exit_code is None
    assert marker.read_text() == "ignored\n", "SIGINT must come first"
    assert elapsed >= 0.5 + short_grace - 0.05, "SIGKILL must wait for the grace period"
    assert elapsed < 0.5 + short_grace + 3
    assert process_is_gone(int(pid_file.read_text()))


def test_run_raises_process_failed_for_a_missing_program() -> None:
    with pytest.raises(ProcessFailed, match="command not found") as info:
        run(Command(argv=("replica-no-such-program-4f1c",)))

    assert info.value.program == "replica-no-such-program-4f1c"
    assert info.value.exit_code is None


def test_run_passes_only_the_explicit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_IT_PARENT_ONLY", "leaked")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leaked-too")
    script = 'echo "${REPLICA_IT_PARENT_ONLY-absent} ${AWS_SECRET_ACCESS_KEY-absent} ${REPLICA_IT_PASSED-absent}"'

    completed = run(Command(argv=("sh", "-c", script), environment={"REPLICA_IT_PASSED": "given"}))

    assert completed.stdout == "absent absent given\n"


def test_run_keeps_path_so_programs_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    completed = run(Command(argv=("sh", "-c", "command -v sha256sum")))

    assert completed.succeeded
    assert completed.stdout.strip().endswith("/sha256sum")


def test_run_uses_the_working_directory(tmp_path: Path) -> None:
    completed = run(Command(argv=("pwd",), cwd=tmp_path))

    assert Path(completed.stdout.strip()).resolve() == tmp_path.resolve()


def test_run_writes_bulk_stdout_to_a_file(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3_000_000))
    output = tmp_path / "output.bin"

    completed = run(Command(argv=("cat", str(source))), stdout_path=output)

    assert completed.succeeded
    assert completed.stdout == ""
    assert output.read_bytes() == source.read_bytes()


# run_pipeline ------------------------------------------------------------------------------------------------------


def test_pipeline_moves_data_from_producer_to_consumer(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(6_000_000))
    expected = hashlib.sha256(source.read_bytes()[:5_000_000]).hexdigest()

    result = run_pipeline(
        Command(argv=("head", "-c", "5000000", str(source))), Command(argv=("sha256sum",)), timeout_seconds=30
    )

    assert result.producer.succeeded
    assert result.consumer.succeeded
    assert result.consumer.stdout.split()[0] == expected


def test_pipeline_reports_a_failed_producer_even_when_the_consumer_succeeds() -> None:
    result = run_pipeline(
        Command(argv=("sh", "-c", "echo partial; echo dump broke >&2; exit 3")),
        Command(argv=("cat",)),
        timeout_seconds=30,
    )

    assert result.consumer.succeeded
    assert result.consumer.stdout == "partial\n"
    assert result.producer.exit_code == 3
    assert not result.producer.succeeded
    assert result.producer.stderr_tail == "dump broke"
    with pytest.raises(ProcessFailed, match="sh exited with code 3: dump broke"):
        result.producer.raise_for_failure()


def test_pipeline_stops_the_producer_when_the_consumer_dies_early() -> None:
    started = time.monotonic()
    result = run_pipeline(Command(argv=("yes",)), Command(argv=("head", "-c", "10")), timeout_seconds=20)
    elapsed = time.monotonic() - started

    assert elapsed < 10, "the producer kept running after its consumer exited"
    assert not result.producer.timed_out
    assert result.consumer.exit_code == 0
    assert result.consumer.stdout == "y\ny\ny\ny\ny\n"
    assert result.producer.exit_code not in (0, None), "a producer cut off by its consumer did not succeed"


def test_pipeline_deadline_stops_both_processes(tmp_path: Path, short_grace: float) -> None:
    producer_pid = tmp_path / "producer.pid"
    consumer_pid = tmp_path / "consumer.pid"
    producer = Command(argv=("sh", "-c", f"echo $$ > {producer_pid}; while :; do sleep 0.05; done"))
    consumer = Command(argv=("sh", "-c", f"echo $$ > {consumer_pid}; exec cat > /dev/null"))

    started = time.monotonic()
    result = run_pipeline(producer, consumer, timeout_seconds=0.5)
    elapsed = time.monotonic() - started

    assert result.producer.timed_out and result.consumer.timed_out
    assert result.producer.exit_code is None and result.consumer.exit_code is None
    assert elapsed < 0.5 + short_grace + 3
    assert process_is_gone(int(producer_pid.read_text()))
    assert process_is_gone(int(consumer_pid.read_text()))


def test_pipeline_deadline_kills_processes_that_ignore_sigint(tmp_path: Path, short_grace: float) -> None:
    producer_pid = tmp_path / "producer.pid"
    script = f"echo $$ > {producer_pid}; trap '' INT; while :; do sleep 0.05; done"

    started = time.monotonic()
    result = run_pipeline(Command(argv=("sh", "-c", script)), Command(argv=("cat",)), timeout_seconds=0.5)
    elapsed = time.monotonic() - started

    assert result.producer.timed_out
    assert result.producer.exit_code is None
    assert elapsed >= 0.5 + short_grace - 0.05
    assert elapsed < 0.5 + short_grace + 3
    assert process_is_gone(int(producer_pid.read_text()))


def test_pipeline_passes_only_the_explicit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_IT_PARENT_ONLY", "leaked")
    script = 'cat > /dev/null; echo "${REPLICA_IT_PARENT_ONLY-absent} ${REPLICA_IT_PASSED-absent}"'

    result = run_pipeline(
        Command(argv=("echo", "data")),
        Command(argv=("sh", "-c", script), environment={"REPLICA_IT_PASSED": "given"}),
        timeout_seconds=30,
    )

    assert result.consumer.stdout == "absent given\n"


def test_pipeline_raises_process_failed_for_a_missing_consumer() -> None:
    started = time.monotonic()
    with pytest.raises(ProcessFailed, match="command not found"):
        run_pipeline(Command(argv=("yes",)), Command(argv=("replica-no-such-program-4f1c",)), timeout_seconds=30)

    assert time.monotonic() - started < 10, "the started producer must be stopped, not left running"


# cancellation -------------------------------------------------------------------------------------------------------


def cancel_once_started(cancellation: Cancellation, *started: Path) -> threading.Thread:
    """Flip `cancellation` from another thread once the commands wrote `started` (their pids, after any trap is
    set), as a failed probe beside them does."""

    def cancel() -> None:
        deadline = time.monotonic() + 30
        while not all(path.exists() for path in started) and time.monotonic() < deadline:
            time.sleep(0.01)
        cancellation.cancel("the probe failed")

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_run_is_stopped_with_sigint_when_cancelled_from_another_thread(tmp_path: Path) -> None:
    marker = tmp_path / "got-sigint"
    pid_file = tmp_path / "pid"
    script = f"trap 'echo interrupted > {marker}; exit 7' INT; echo $$ > {pid_file}; while :; do sleep 0.05; done"
    cancellation = Cancellation()
    cancel_once_started(cancellation, pid_file)

    started = time.monotonic()
    with pytest.raises(Cancelled, match=r"^sh stopped: the probe failed$"):
        run(Command(argv=("sh", "-c", script), timeout_seconds=60), cancellation=cancellation)

    assert time.monotonic() - started < 5
    assert marker.read_text() == "interrupted\n"
    assert process_is_gone(int(pid_file.read_text()))


def test_pipeline_is_stopped_when_cancelled_from_another_thread(tmp_path: Path) -> None:
    producer_pid, consumer_pid = tmp_path / "producer.pid", tmp_path / "consumer.pid"
    producer = Command(argv=("sh", "-c", f"echo $$ > {producer_pid}; while :; do sleep 0.05; done"))
    consumer = Command(argv=("sh", "-c", f"echo $$ > {consumer_pid}; exec cat > /dev/null"))
    cancellation = Cancellation()
    cancel_once_started(cancellation, producer_pid, consumer_pid)

    started = time.monotonic()
    with pytest.raises(Cancelled, match=r"^sh \| sh stopped: the probe failed$"):
        run_pipeline(producer, consumer, timeout_seconds=60, cancellation=cancellation)

    assert time.monotonic() - started < 5
    assert process_is_gone(int(producer_pid.read_text()))
    assert process_is_gone(int(consumer_pid.read_text()))


def test_a_command_cancelled_before_it_starts_never_starts(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    cancellation = Cancellation()
    cancellation.cancel("the probe failed")

    with pytest.raises(Cancelled):
        run(Command(argv=("touch", str(marker))), cancellation=cancellation)
    with pytest.raises(Cancelled):
        run_pipeline(
            Command(argv=("touch", str(marker))), Command(argv=("cat",)), timeout_seconds=5, cancellation=cancellation
        )

    assert not marker.exists()
