"""actions/probing.py: the destination's probe beside a real command, with a probe that fails, passes or hangs."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from replica.actions.probing import probing_beside
from replica.errors import BucketMissing, Interrupted, StoreError
from replica.execute import Command, run


class ProbedContext:
    """Stands in for Context: its probe sleeps `delay` seconds, then raises `error` (if any)."""

    def __init__(self, error: BaseException | None = None, delay: float = 0.0) -> None:
        self.error, self.delay = error, delay

    def probe(self, destination: Any) -> None:
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error


class PhaseLog:
    """Stands in for RunRecorder: remembers the phases a run went through."""

    def __init__(self) -> None:
        self.phases: list[str] = []

    def phase(self, name: str, **details: Any) -> None:
        self.phases.append(name)


PRIMARY: Any = SimpleNamespace(name="primary")


def test_a_probe_failing_while_the_command_runs_stops_it_and_is_the_error(tmp_path: Path) -> None:
    marker = tmp_path / "never-created"
    context: Any = ProbedContext(BucketMissing("bucket 'x' does not exist"), delay=0.3)
    phases: Any = PhaseLog()

    started = time.monotonic()
    script = f"trap 'exit 7' INT; sleep 0.1; while [ ! -e {marker} ]; do sleep 0.05; done"
    with pytest.raises(BucketMissing, match="does not exist"), probing_beside(context, PRIMARY, phases) as probe:
        phases.phase("backup")
        run(Command(argv=("sh", "-c", script), timeout_seconds=60), cancellation=probe.cancellation)

    # Stopped by SIGINT once the probe failed, long before the 60 s deadline or a SIGKILL after the grace period.
    assert time.monotonic() - started < 5
    assert phases.phases == ["backup", "probe"]


def test_a_probe_failing_after_the_body_succeeded_is_raised_whatever_its_type() -> None:
    context: Any = ProbedContext(ValueError("invalid endpoint"), delay=0.2)
    phases: Any = PhaseLog()

    with pytest.raises(ValueError, match="invalid endpoint"), probing_beside(context, PRIMARY, phases):
        phases.phase("backup")

    assert phases.phases == ["backup", "probe"]


def test_the_body_s_own_error_stands_when_the_probe_passes() -> None:
    context: Any = ProbedContext(delay=0.2)
    phases: Any = PhaseLog()

    with pytest.raises(StoreError, match="pg_dump exited 1"), probing_beside(context, PRIMARY, phases):
        phases.phase("backup")
        raise StoreError("pg_dump exited 1")

    assert phases.phases == ["backup"]


def test_a_stop_on_purpose_does_not_wait_for_a_hanging_probe() -> None:
    context: Any = ProbedContext(BucketMissing("never"), delay=30)

    started = time.monotonic()
    phases: Any = PhaseLog()
    with pytest.raises(Interrupted), probing_beside(context, PRIMARY, phases):
        raise Interrupted("replica is stopping")

    assert time.monotonic() - started < 2


def test_a_passing_probe_lets_the_body_s_work_stand(tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    context: Any = ProbedContext(delay=0.1)

    phases: Any = PhaseLog()
    with probing_beside(context, PRIMARY, phases) as probe:
        completed = run(Command(argv=("touch", str(marker))), cancellation=probe.cancellation)

    assert completed.succeeded and marker.exists()
    assert not probe.cancellation.cancelled
