"""The stall detector in execute.py, with real processes: no progress for N seconds stops a process (or a pipeline)
like its deadline does; a process that moves bytes, however slowly, runs on."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time

import pytest

from replica import execute
from replica.errors import ProcessFailed, failure_state
from replica.execute import Command, run, run_pipeline

# Reads 4 KiB from /dev/zero every 0.2 s for about 1.2 s and prints nothing: I/O is its only sign of life.
# Prints a status line every 0.2 s for ever, reading and writing nothing else (a shell loop would not do: the I/O of
# the children it reaps, `sleep` loading its libraries, counts as its own).
STATUS_LINES = 'import time\nwhile True:\n    print(\'{"message_type":"status"}\', flush=True); time.sleep(0.2)'
READS_SLOWLY = (
    "import time\nwith open('/dev/zero', 'rb') as f:\n    for _ in range(6):\n        f.read(4096); time.sleep(0.2)"
)


def test_a_silent_process_is_stopped_after_its_stall_limit_and_says_so() -> None:
    # GIVEN a process that waits without reading or writing anything, with a half-second stall limit and a long deadline
    command = Command(argv=("sleep", "30"), timeout_seconds=30, stall_seconds=0.5)

    # WHEN it runs
    completed = run(command)

    # THEN it is stopped after about half a second, as timed out, and the error says it made no progress
    assert completed.timed_out and completed.stalled_seconds == 0.5 and completed.exit_code is None
    assert 0.5 <= completed.duration_seconds < 2
    with pytest.raises(ProcessFailed, match=r"sleep made no progress for 0.5 s and was stopped") as info:
        completed.raise_for_failure()
    assert failure_state(info.value) == "timeout"


def test_processes_that_keep_moving_bytes_run_past_the_stall_limit() -> None:
    # GIVEN a process printing a line every 0.25 s, and one that only reads (its output would not count), each
    # running more than twice as long as its half-second stall limit
    printing = Command(
        argv=(sys.executable, "-c", READS_SLOWLY.replace("f.read(4096)", "print('tick', flush=True)")),
        stall_seconds=0.5,
    )
    reading = Command(argv=(sys.executable, "-c", READS_SLOWLY), stall_seconds=0.5, output_is_progress=False)

    # WHEN both run (side by side, to save time), THEN neither is stopped
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(run, (printing, reading)))
    for completed in outcomes:
        assert completed.succeeded, completed
        assert completed.duration_seconds > 1.1


def test_status_lines_are_no_progress_for_a_command_whose_output_does_not_count() -> None:
    # GIVEN a process that only prints a status line now and then, as restic --json does while stuck on a silent
    # endpoint, run with its output not counting as progress
    command = Command(
        argv=(sys.executable, "-c", STATUS_LINES),
        timeout_seconds=30,
        stall_seconds=0.5,
        output_is_progress=False,
    )

    # WHEN it runs, THEN it is stopped for making no progress
    completed = run(command)
    assert completed.stalled_seconds == 0.5 and completed.duration_seconds < 2
    assert "status" in completed.stdout


def test_a_pipeline_whose_consumer_stops_reading_is_stopped_whole() -> None:
    # GIVEN a producer with endless data and a consumer that never reads its input: the producer fills the pipe and
    # blocks, after which nothing moves
    producer = Command(argv=("cat", "/dev/zero"), stall_seconds=0.5)
    consumer = Command(argv=("sleep", "30"), stall_seconds=0.5)

    # WHEN the pipeline runs
    outcome = run_pipeline(producer, consumer, timeout_seconds=30)

    # THEN both are stopped as stalled after about half a second, long before the deadline
    for completed in (outcome.producer, outcome.consumer):
        assert completed.timed_out and completed.stalled_seconds == 0.5, completed
    assert outcome.consumer.duration_seconds < 2


def test_a_pipeline_trickling_data_and_a_consumer_without_a_limit_run_to_the_end() -> None:
    # GIVEN a producer trickling 4 KiB every 0.2 s into a reading consumer, and a pipeline whose consumer (like
    # pg_restore waiting on its server) has no stall limit and goes on silently after its producer ended
    trickling = Command(
        argv=(sys.executable, "-c", READS_SLOWLY.replace("f.read(4096)", "print('x' * 4096, flush=True)")),
        stall_seconds=0.5,
    )
    reading = Command(argv=("cat",), stall_seconds=0.5, output_is_progress=False)
    finished_early = Command(argv=("true",), stall_seconds=0.3)
    silent_without_limit = Command(argv=("sh", "-c", "cat >/dev/null; sleep 1"), stall_seconds=None)

    # WHEN both pipelines run (side by side, to save time)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        slow_future = pool.submit(run_pipeline, trickling, reading, timeout_seconds=30)
        waiting_future = pool.submit(run_pipeline, finished_early, silent_without_limit, timeout_seconds=30)
        slow, waiting = slow_future.result(), waiting_future.result()

    # THEN none of their processes is stopped
    for completed in (slow.producer, slow.consumer, waiting.producer, waiting.consumer):
        assert completed.succeeded, completed
    assert len(slow.consumer.stdout) >= 6 * 4096
    assert waiting.consumer.duration_seconds > 0.9


def test_a_producer_blocked_on_a_consumer_without_a_limit_is_not_stopped() -> None:
    # GIVEN a producer with more than a pipe holds (restic dump), feeding a consumer without a stall limit that
    # waits before it reads (pg_restore while its server builds an index): the producer blocks on the full pipe
    producer = Command(argv=("head", "-c", "300000", "/dev/zero"), stall_seconds=0.3)
    consumer = Command(argv=("sh", "-c", "sleep 1.5; cat >/dev/null"), stall_seconds=None)

    # WHEN the pipeline runs
    outcome = run_pipeline(producer, consumer, timeout_seconds=30)

    # THEN neither is stopped: the producer waits for a process that may wait, and only the deadline applies
    assert outcome.producer.succeeded and outcome.consumer.succeeded, outcome
    assert outcome.consumer.duration_seconds > 1.4


def test_a_silent_producer_feeding_a_consumer_without_a_limit_is_stopped_by_its_own_limit() -> None:
    # GIVEN a producer that goes silent without filling the pipe (restic dump on an endpoint that stopped answering)
    # feeding a consumer without a stall limit (pg_restore), which then waits on its input
    producer = Command(argv=("sh", "-c", "head -c 1000 /dev/zero; exec sleep 30"), stall_seconds=0.5)
    consumer = Command(argv=("cat",), stall_seconds=None, output_is_progress=False)

    # WHEN the pipeline runs
    outcome = run_pipeline(producer, consumer, timeout_seconds=30)

    # THEN the producer's limit stops both within seconds: the consumer waits for the producer, not the other way
    assert outcome.producer.timed_out and outcome.producer.stalled_seconds == 0.5, outcome.producer
    assert outcome.consumer.duration_seconds < 5


def test_a_producer_woken_by_its_consumer_is_not_judged_on_the_time_it_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a real producer blocked on a full pipe for longer than its limit, beside a consumer without a limit
    producer = subprocess.Popen(["head", "-c", "300000", "/dev/zero"], stdout=subprocess.PIPE)
    consumer = subprocess.Popen(["sleep", "30"])
    try:
        started = time.monotonic()
        watches = (
            execute._ProgressWatch(producer.pid, Command(argv=("head",), stall_seconds=0.3), [], started),
            execute._ProgressWatch(consumer.pid, Command(argv=("sleep",), stall_seconds=None), [], started),
        )
        deadline = started + 5
        while not execute._writing_into_a_pipe(producer.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        assert execute._pipeline_stalled(watches, (True, True), time.monotonic()) is None

        # WHEN the consumer starts reading and the pipeline is judged at the instant the producer wakes, before the
        # kernel has counted its next write (the race CI once lost)
        monkeypatch.setattr(execute, "_writing_into_a_pipe", lambda pid: False)
        verdict = execute._pipeline_stalled(watches, (True, True), time.monotonic() + 0.05)

        # THEN it is not stalled: the wait was the consumer's, and the producer's clock started again with it
        assert verdict is None
    finally:
        for process in (producer, consumer):
            process.kill()
            process.wait()
        assert producer.stdout is not None
        producer.stdout.close()
