"""The daemon's scheduling decisions in-process, with fake work in place of backup/verify/prune (no restic)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from replica.actions.context import Context
from replica.actions.scheduled import FAILED, SUCCEEDED, WorkOutcome
from replica.catalog import actor
from replica.daemon import scheduler
from replica.daemon.scheduler import Daemon, DaemonOptions
from replica.settings import Settings


@pytest.fixture(autouse=True)
def _actor_restored_and_short_delays(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Due kinds of a job start a second apart here instead of five: the order is what is tested.
    monkeypatch.setattr(scheduler, "FOLLOWER_DELAY", timedelta(seconds=1))
    yield
    actor.act_as(None)  # the daemon names itself the actor of every run of the process


def write_job(root: Path, name: str, schedule: dict[str, str]) -> None:
    (root / "jobs").mkdir(exist_ok=True)
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "p.yaml").write_text(yaml.safe_dump({"name": "p", "rpo": "2d", "rto": "15m"}))
    document = {
        "name": name,
        "store": {"kind": "directory", "path": str(root)},
        "destinations": [{"name": "a", "bucket": "bucket-a"}, {"name": "b", "bucket": "bucket-b"}],
        "policy": "p",
        "schedule": schedule,
    }
    (root / "jobs" / f"{name}.yaml").write_text(yaml.safe_dump(document))


def run_daemon(root: Path, work: object, seconds: float) -> Daemon:
    settings = Settings(state_dir=root / "state", jobs_dir=root / "jobs", policies_dir=root / "policies")
    daemon = Daemon(Context(settings), DaemonOptions(workers=2, watchdog_interval_seconds=3600), work=work)  # type: ignore[arg-type]
    thread = threading.Thread(target=daemon.run)
    thread.start()
    time.sleep(seconds)
    daemon.stop()
    thread.join(30)
    assert not thread.is_alive()
    return daemon


def test_work_that_fails_before_it_is_recorded_does_not_loop(tmp_path: Path) -> None:
    # GIVEN a job whose backup and verify both fail without ever recording a run (so both stay due)
    write_job(tmp_path, "stuck", {"backup": "every 1d", "verify": "every 1d"})
    calls: list[str] = []

    def failing(context: Context, job: str, kind: str) -> WorkOutcome:
        calls.append(kind)
        return WorkOutcome(job, kind, FAILED, "no repository password", 0.0)

    # WHEN the daemon runs for a while
    run_daemon(tmp_path, failing, 3)
    # THEN the backup ran first, and each kind was brought forward by the other at most once: no loop
    assert calls[0] == "backup"
    assert calls.count("backup") <= 2 and calls.count("verify") <= 2, calls


def test_due_kinds_of_a_job_start_in_order_and_never_together(tmp_path: Path) -> None:
    # GIVEN a job whose backup, verify and prune are all due (never ran)
    write_job(tmp_path, "ordered", {"backup": "every 1d", "verify": "every 1d", "prune": "every 1d"})
    running: list[str] = []
    overlaps: list[tuple[str, str]] = []
    order: list[str] = []

    def slow(context: Context, job: str, kind: str) -> WorkOutcome:
        if running:
            overlaps.append((running[0], kind))
        running.append(kind)
        order.append(kind)
        run_id = context.catalog.start_run(job, kind, phase="work")  # as every real action does
        time.sleep(0.5)
        context.catalog.finish_run(run_id, succeeded=True)
        running.remove(kind)
        return WorkOutcome(job, kind, SUCCEEDED, "done", 0.5)

    # WHEN the daemon starts
    run_daemon(tmp_path, slow, 3)
    # THEN the backup runs first and the others follow it one at a time, each once
    assert order == ["backup", "verify", "prune"]
    assert overlaps == []
