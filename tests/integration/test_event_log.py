"""The verification log on a real SQLite catalog: events of every outcome, one chain under concurrent appenders,
the database refusing edits, and tampering found and named."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from replica.actions.configuration import record_configuration_changes
from replica.actions.context import Context
from replica.audit.chain import event_hash
from replica.audit.keys import Signer
from replica.catalog.database import open_catalog
from replica.catalog.events import EventDraft
from replica.catalog.records import Catalog, CheckOutcome
from replica.settings import load_settings


def _catalog(path: Path, signer: Signer | None = None) -> Catalog:
    return Catalog(open_catalog(f"sqlite:///{path}"), signer)


def _tamper(path: Path, *statements: str) -> None:
    """Do what someone with write access to the database file could: drop the guards, then change rows."""
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TRIGGER events_no_update")
        connection.execute("DROP TRIGGER events_no_delete")
        for statement in statements:
            connection.execute(statement)


def test_every_run_outcome_is_an_event_with_its_figures_and_checks(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "c.sqlite3")
    backup = catalog.start_run("billing", "backup", phase="dump", destination="primary")
    catalog.finish_run(backup, succeeded=True, snapshot_id="abc123", bytes_processed=4096, bytes_added=1024)
    verify = catalog.start_run("billing", "verify", phase="check", destination="primary", snapshot_id="abc123")
    catalog.add_checks(verify, [CheckOutcome("fingerprint", False, True, "row count of orders: expected 3, got 2")])
    catalog.finish_run(verify, succeeded=False, error="critical checks failed: fingerprint")
    catalog.record_skipped("billing", "prune", "job 'billing' is busy")

    events = catalog.events.events()

    assert [(e.seq, e.kind, e.outcome, e.run_id) for e in events] == [
        (1, "backup", "succeeded", backup),
        (2, "verify", "failed", verify),
        (3, "prune", "skipped", verify + 1),
    ]
    backup_figures = json.loads(events[0].figures)
    assert backup_figures["bytes_processed"] == 4096 and events[0].snapshot == "abc123"
    verify_figures = json.loads(events[1].figures)
    assert verify_figures["checks"] == [
        {"name": "fingerprint", "passed": False, "critical": True, "detail": "row count of orders: expected 3, got 2"}
    ]
    assert events[1].detail == "critical checks failed: fingerprint"
    assert catalog.events.check().intact


def test_concurrent_appenders_make_one_unbroken_chain(tmp_path: Path) -> None:
    """GIVEN four threads with their own catalogs on one file WHEN each appends 40 events THEN 160 events, one chain."""
    path = tmp_path / "c.sqlite3"
    _catalog(path)

    def append_many(worker: int) -> None:
        catalog = _catalog(path)
        for number in range(40):
            catalog.events.append(EventDraft("test", "ok", f"worker{worker}", figures={"n": number}))

    threads = [threading.Thread(target=append_many, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    summary = _catalog(path).events.check()
    assert summary.intact, summary.problem
    assert (summary.events, summary.head_seq) == (160, 160)


def test_the_database_refuses_to_update_or_delete_an_event(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    _catalog(path).events.append(EventDraft("test", "ok", "me"))
    with sqlite3.connect(path) as connection:
        for statement in ("UPDATE events SET outcome = 'forged'", "DELETE FROM events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)


@pytest.mark.parametrize(
    ("statements", "named_seq", "reason"),
    [
        (["UPDATE events SET outcome = 'succeeded' WHERE seq = 3"], 3, "does not match its hash"),
        (["DELETE FROM events WHERE seq = 3"], 3, "is missing (deleted?)"),
        # Insert in the middle: shift the tail up by one, then put a forged row at #3.
        (
            [
                "UPDATE events SET seq = seq + 100 WHERE seq >= 3",
                "UPDATE events SET seq = seq - 99 WHERE seq >= 100",
                "INSERT INTO events SELECT 3, recorded_at, kind, job, destination, snapshot, run_id, actor, "
                "'succeeded', figures, detail, 'x' || previous_hash, 'y' || hash, key_id, signature "
                "FROM events WHERE seq = 2",
            ],
            3,
            "does not link to the event before it",
        ),
    ],
    ids=["edited", "deleted", "inserted"],
)
def test_tampering_is_found_and_the_event_named(
    tmp_path: Path, statements: list[str], named_seq: int, reason: str
) -> None:
    path = tmp_path / "c.sqlite3"
    catalog = _catalog(path)
    for number in range(5):
        catalog.events.append(EventDraft("verify", "failed", "me", job="billing", figures={"n": number}))

    _tamper(path, *statements)

    summary = catalog.events.check()
    assert summary.problem is not None
    assert summary.problem.seq == named_seq
    assert reason in summary.problem.reason


def test_a_forged_event_appended_to_a_signed_log_is_named(tmp_path: Path) -> None:
    """GIVEN a signed log WHEN someone without the key appends an event with a correctly computed hash
    THEN the check names it (unsigned after signed events)."""
    path = tmp_path / "c.sqlite3"
    signer = Signer(Ed25519PrivateKey.generate())
    catalog = _catalog(path, signer)
    for number in range(3):
        catalog.events.append(EventDraft("verify", "succeeded", "daemon@h", job="billing", figures={"n": number}))
    head = catalog.events.head()
    assert head is not None and head.signature
    forged = (4, head.recorded_at, "verify", "billing", None, None, None, "daemon@h", "succeeded", "{}", "", head.hash)
    forged_hash = event_hash((*forged, "", None, None), head.signature)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (*forged, forged_hash, None, None)
        )

    summary = catalog.events.check(check_signature=signer.verifier)

    assert summary.problem is not None and summary.problem.seq == 4
    assert "not signed" in summary.problem.reason
    assert _catalog(path).events.check(check_signature=signer.verifier).head_seq == 3


def test_configuration_changes_are_recorded_once_each(tmp_path: Path) -> None:
    jobs, policies = tmp_path / "jobs", tmp_path / "policies"
    jobs.mkdir()
    policies.mkdir()
    (policies / "standard.yaml").write_text("name: standard\n")
    (jobs / "billing.yaml").write_text("name: billing\n")
    settings = load_settings(state_dir=tmp_path / "state", jobs_dir=jobs, policies_dir=policies)
    context = Context(settings)

    assert record_configuration_changes(context) == 2
    assert record_configuration_changes(context) == 0
    (jobs / "billing.yaml").write_text("name: billing\ndescription: changed\n")
    (policies / "standard.yaml").unlink()
    assert record_configuration_changes(context) == 2

    events = context.catalog.events.events(kinds=["config"])
    assert [(e.job, e.outcome) for e in events] == [
        ("billing", "added"),
        (None, "added"),
        ("billing", "changed"),
        (None, "removed"),
    ]
    changed = json.loads(events[2].figures)
    assert changed["previous_sha256"] == json.loads(events[0].figures)["sha256"] != changed["sha256"]


@pytest.mark.parametrize(
    ("statement", "named_seq", "reason"),
    [
        (None, None, None),
        ("UPDATE events SET detail = 'forged' WHERE seq = 15", 15, "content does not match its hash"),
        ("DELETE FROM events WHERE seq = 10", 10, "is missing (deleted?)"),  # the last event of a range
        ("DELETE FROM events WHERE seq = 11", 11, "is missing (deleted?)"),  # the first event of a range
        ("UPDATE events SET signature = '00' || substr(signature, 3) WHERE seq = 20", 20, "signature does not verify"),
    ],
    ids=["intact", "edited", "deleted-range-end", "deleted-range-start", "signature-edited"],
)
def test_the_parallel_check_finds_what_the_serial_check_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, statement: str | None, named_seq: int | None, reason: str | None
) -> None:
    """GIVEN a signed log of 30 events checked in three worker processes (events 1-10, 11-20, 21-30)
    THEN an intact log verifies and each tampering is named exactly as the one-process check names it."""
    path = tmp_path / "c.sqlite3"
    signer = Signer(Ed25519PrivateKey.generate())
    catalog = _catalog(path, signer)
    for number in range(30):
        catalog.events.append(EventDraft("backup", "succeeded", "daemon@h", job="billing", figures={"n": number}))
    if statement:
        _tamper(path, statement)
    serial = catalog.events.check(check_signature=signer.verifier)
    monkeypatch.setattr("replica.catalog.events.worker_count", lambda events: 3)

    parallel = catalog.events.check(check_signature=signer.verifier)

    if statement is None:
        assert parallel.intact and (parallel.events, parallel.head_seq, parallel.head_hash) == (
            30,
            30,
            serial.head_hash,
        )
        assert parallel.first_signed_seq == 1 and parallel.key_ids == {signer.key_id}
    else:
        assert parallel.problem is not None and serial.problem is not None
        assert (parallel.problem.seq, serial.problem.seq) == (named_seq, named_seq)
        assert reason in parallel.problem.reason and parallel.problem.reason == serial.problem.reason


def test_the_log_on_a_postgresql_catalog_chains_streams_and_refuses_edits() -> None:
    """GIVEN a fresh PostgreSQL catalog WHEN runs finish and events are appended THEN the chain verifies through
    the server-side cursor, and the database refuses an UPDATE of an event."""
    import psycopg
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from tests.integration.conftest import unique_name

    name = unique_name("replica_events")
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    sessions = None
    try:
        sessions = open_catalog(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        catalog = Catalog(sessions)
        run = catalog.start_run("billing", "verify", phase="restore", destination="primary", snapshot_id="abc")
        catalog.finish_run(run, succeeded=True, rto_seconds=1.5)
        for number in range(3):
            catalog.events.append(EventDraft("test", "ok", "me", figures={"n": number, "ü": "✓"}))

        summary = catalog.events.check()

        assert summary.intact and summary.events == 4
        with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as session:
            session.execute(text("UPDATE events SET outcome = 'forged'"))
    finally:
        if sessions is not None:
            sessions.kw["bind"].dispose()
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
