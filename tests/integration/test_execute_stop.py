"""The daemon's stop switch in execute.py: running children are interrupted, new ones refused, runs say why."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from replica import execute
from replica.errors import Interrupted
from replica.execute import Command, run, run_pipeline


@pytest.fixture(autouse=True)
def _processes_allowed_again() -> Iterator[None]:
    yield
    execute.allow_processes()


def test_stop_interrupts_a_running_child_with_sigint_and_the_caller_sees_interrupted(tmp_path: Path) -> None:
    marker = tmp_path / "got-sigint"
    script = f"trap 'echo interrupted > {marker}; exit 130' INT; while :; do sleep 0.05; done"
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run(Command(argv=("sh", "-c", script), timeout_seconds=60))
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    killed = execute.stop_processes(grace_seconds=5)
    worker.join(10)

    assert killed == 0, "the child honoured SIGINT within the grace period"
    assert time.monotonic() - started < 5
    assert marker.read_text() == "interrupted\n"
    assert len(errors) == 1 and isinstance(errors[0], Interrupted)


def test_stop_kills_a_child_that_ignores_sigint_after_the_grace_period(tmp_path: Path) -> None:
    script = "trap '' INT; while :; do sleep 0.05; done"
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run(Command(argv=("sh", "-c", script)))
        except Interrupted as error:
            errors.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    time.sleep(0.5)

    killed = execute.stop_processes(grace_seconds=0.5)
    worker.join(10)

    assert killed == 1
    assert not worker.is_alive()
    assert isinstance(errors[0], Interrupted)


def test_no_process_starts_once_stopping(tmp_path: Path) -> None:
    assert execute.stop_processes(grace_seconds=0) == 0, "no child was running"
    marker = tmp_path / "ran"

    with pytest.raises(Interrupted, match="touch not started"):
        run(Command(argv=("touch", str(marker))))
    with pytest.raises(Interrupted):
        run_pipeline(Command(argv=("echo", "x")), Command(argv=("cat",)), timeout_seconds=5)
    assert not marker.exists()


def test_a_child_that_succeeds_while_stopping_is_not_an_interruption() -> None:
    outcome: list[str] = []
    worker = threading.Thread(
        target=lambda: outcome.append(run(Command(argv=("sh", "-c", "trap 'exit 0' INT; sleep 5 & wait"))).stdout)
    )
    worker.start()
    time.sleep(0.3)
    execute.stop_processes(grace_seconds=5)
    worker.join(10)
    assert outcome == [""], "a process that exits 0 on SIGINT completed its work: no Interrupted"
