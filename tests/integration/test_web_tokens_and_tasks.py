"""API tokens in a real catalog (SQLite and PostgreSQL) and the web server's task runner: tokens are stored only
as digests and checked by them; tasks run under their requester's actor and always end."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from replica.catalog.actor import acting_as, current_actor
from replica.catalog.database import open_catalog
from replica.catalog.records import Catalog
from replica.catalog.tokens import token_digest
from replica.errors import NotFound, StorageUnreachable, UsageError
from replica.web.tasks import TaskResult, TaskRunner


def test_a_token_is_stored_as_its_digest_checked_by_it_and_revoked_for_good(catalog_url: str) -> None:
    # GIVEN a catalog with an operator's token
    catalog = Catalog(open_catalog(catalog_url))
    token = catalog.tokens.create("oncall", "operator")

    # WHEN it is presented, altered, and looked for in the table
    holder = catalog.tokens.holder(token)
    with catalog.sessions() as session:
        stored = session.execute(text("SELECT name, role, token_sha256 FROM api_tokens")).all()

    # THEN it is known by its digest alone, and a changed character is no token
    assert holder is not None and (holder.name, holder.role, holder.actor) == ("oncall", "operator", "token:oncall")
    assert holder.may_operate
    assert stored == [("oncall", "operator", token_digest(token))]
    assert token not in repr(stored)
    assert catalog.tokens.holder(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert catalog.tokens.holder("") is None

    # WHEN it is revoked THEN it is refused, its name stays taken, and a second revoke says there is none
    catalog.tokens.revoke("oncall")
    assert catalog.tokens.holder(token) is None
    with pytest.raises(UsageError, match="exists already"):
        catalog.tokens.create("oncall", "auditor")
    with pytest.raises(NotFound, match="no live token"):
        catalog.tokens.revoke("oncall")

    # AND the log holds both events, naming the token and its role, never the token
    with catalog.sessions() as session:
        rows = session.execute(text("SELECT outcome, figures FROM events WHERE kind = 'token' ORDER BY seq")).all()
    assert [outcome for outcome, _ in rows] == ["created", "revoked"]
    assert all('"token":"oncall"' in figures.replace(" ", "") and token not in figures for _, figures in rows)


def _wait_finished(runner: TaskRunner, task_id: int) -> None:
    deadline = time.monotonic() + 10
    while not runner.get(task_id).finished:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "task did not finish"
        time.sleep(0.01)


def test_tasks_run_as_their_requester_report_progress_and_always_end() -> None:
    # GIVEN a runner with one worker, and work that records who it runs as
    runner = TaskRunner(workers=1)
    seen: list[str] = []
    release = threading.Event()

    def passing(progress):  # type: ignore[no-untyped-def]
        seen.append(current_actor())
        progress("[1/2] restoring from https://user:hunter2@s3.example/bucket")
        release.wait(5)
        return TaskResult(True, {"run_id": 7})

    def failing_check(progress):  # type: ignore[no-untyped-def]
        seen.append(current_actor())
        return TaskResult(False, {"run_id": 8}, failure="corrupt")

    def unreachable(progress):  # type: ignore[no-untyped-def]
        raise StorageUnreachable("s3 endpoint http://127.0.0.1:9 did not answer")

    def bug(progress):  # type: ignore[no-untyped-def]
        raise KeyError("surprise")

    # WHEN four tasks are started by two requesters, the first held running until released
    with acting_as("someone-else"):
        first = runner.start(runner.new_task("verify", "pg", "token:alice"), passing)
        rest = [
            runner.start(runner.new_task("verify", "pg", "token:bob"), work)
            for work in (failing_check, unreachable, bug)
        ]
    deadline = time.monotonic() + 5
    while first.state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    queued_state = rest[0].state
    release.set()
    for task in (first, *rest):
        _wait_finished(runner, task.id)

    # THEN each ran as its requester, one at a time, and ended with its state; progress lines are redacted
    assert seen == ["token:alice", "token:bob"]
    assert queued_state == "queued"
    assert (first.state, first.result) == ("succeeded", {"run_id": 7})
    assert first.progress[-1] == "[1/2] restoring from https://***@s3.example/bucket"
    assert [(task.state, task.failure) for task in rest] == [
        ("failed", "corrupt"),
        ("failed", "storage_unreachable"),
        ("failed", "failed"),
    ]
    assert rest[1].error is not None and "did not answer" in rest[1].error
    assert rest[2].error == "internal error: 'surprise'"
    assert [task.id for task in runner.recent(job="pg")] == [task.id for task in reversed([first, *rest])]
    assert runner.running_count() == 0
    runner.shutdown()


def test_a_task_still_queued_when_the_server_stops_ends_failed_not_queued() -> None:
    # GIVEN one worker held busy and a second task waiting behind it
    runner = TaskRunner(workers=1)
    release = threading.Event()

    def held(progress):  # type: ignore[no-untyped-def]
        release.wait(5)
        return TaskResult(True, {})

    busy = runner.start(runner.new_task("backup", "a", "token:x"), held)
    waiting = runner.start(runner.new_task("backup", "b", "token:x"), lambda progress: TaskResult(True, {}))

    # WHEN the runner shuts down while the first still runs
    stopper = threading.Thread(target=runner.shutdown)
    stopper.start()
    assert runner.stopping.wait(5)
    release.set()
    stopper.join(10)

    # THEN the running one finished and the waiting one is failed as interrupted, never left queued
    assert busy.state == "succeeded"
    assert (waiting.state, waiting.failure) == ("failed", "interrupted")
    assert waiting.error is not None and "stopped" in waiting.error
