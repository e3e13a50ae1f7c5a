"""The RPO/RTO watchdog over a real catalog, SQLite and PostgreSQL: history is written with the Catalog API (no
restic, no S3), then `watch_objectives` must open each breach once, with one alert and one risk report, and record
its clearing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError

from replica.actions.context import Context
from replica.actions.watchdog import CLEARED, OPENED, watch_objectives
from replica.catalog.models import Breach
from replica.catalog.records import Catalog, utc_now
from replica.catalog.wal_lags import LagRecord
from replica.report.dataloss import render_markdown
from replica.settings import Settings

RESTIC_PASSWORD = "restic-password-must-not-leak-4711"
S3_KEY_ID = "AKIAWATCHDOGTESTKEY1"
S3_SECRET = "s3-secret-must-not-leak-0815"
POLICY = """\
name: tight
rpo: 1h
rto: 15m
"""


def job_file(name: str, data: Path) -> str:
    return f"""\
name: {name}
description: Customer uploads
store:
  kind: directory
  path: {data}
destinations:
  - name: primary
    bucket: acme-backups-eu-central
    prefix: restic/{name}
  - name: offsite
    bucket: acme-backups-offsite
    prefix: restic/{name}
    endpoint_url: https://s3.eu-west-3.example-provider.net
policy: tight
owners: [web@acme.example]
clients: [All shop customers]
"""


@pytest.fixture
def context(tmp_path: Path, catalog_url: str) -> Iterator[Context]:
    """A context over two jobs and a broken job file, its catalog of each kind (`catalog_url`)."""
    jobs, policies = tmp_path / "jobs", tmp_path / "policies"
    jobs.mkdir()
    policies.mkdir()
    (policies / "tight.yaml").write_text(POLICY, encoding="utf-8")
    for name in ("uploads", "fresh"):
        (jobs / f"{name}.yaml").write_text(job_file(name, tmp_path / "data"), encoding="utf-8")
    (jobs / "broken.yaml").write_text("name: broken\nstore: {kind: floppy}\n", encoding="utf-8")
    settings = Settings(
        state_dir=tmp_path / "state",
        jobs_dir=jobs,
        policies_dir=policies,
        restic_password=SecretStr(RESTIC_PASSWORD),
        s3_access_key_id=SecretStr(S3_KEY_ID),
        s3_secret_access_key=SecretStr(S3_SECRET),
        catalog_url=catalog_url,
    )
    context = Context(settings)
    yield context
    if "catalog" in vars(context):  # opened (a cached property): its connections go before the database does
        context.catalog.sessions.kw["bind"].dispose()


def verified_point(
    catalog: Catalog, job: str, destination: str, snapshot_id: str, taken_at: datetime, rto_seconds: float = 120.0
) -> None:
    """Record a successful backup of `taken_at` in `destination` and a passed verification of it."""
    backup = catalog.start_run(job, "backup", phase="dump", destination=destination)
    catalog.finish_run(backup, succeeded=True, snapshot_id=snapshot_id)
    catalog.add_snapshot(
        job=job,
        destination=destination,
        snapshot_id=snapshot_id,
        original_id=snapshot_id,
        backup_run_id=backup,
        taken_at=taken_at,
        bytes_processed=1000,
        bytes_added=100,
        stored_name="uploads",
        fingerprint={},
    )
    verify = catalog.start_run(job, "verify", phase="restore", destination=destination, snapshot_id=snapshot_id)
    catalog.finish_run(verify, succeeded=True, rto_seconds=rto_seconds)


def failed_backup(catalog: Catalog, job: str, error: str) -> None:
    run = catalog.start_run(job, "backup", phase="dump", destination="primary")
    catalog.finish_run(run, succeeded=False, error=error)


def alerts(caplog: pytest.LogCaptureFixture, level: int, prefix: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "replica.watchdog" and r.levelno == level and r.getMessage().startswith(prefix)
    ]


def test_rpo_breach_opens_once_with_one_report_and_is_cleared_by_a_fresh_verified_point(
    context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="replica.watchdog")
    catalog = context.catalog
    verified_point(catalog, "uploads", "primary", "aaaa1111", utc_now() - timedelta(hours=2))
    verified_point(catalog, "uploads", "offsite", "bbbb2222", utc_now() - timedelta(hours=3))
    failed_backup(catalog, "uploads", "restic: Fatal: unable to open repository: connection refused")
    reports_folder = context.settings.reports_path / "uploads"

    first = watch_objectives(context)

    assert [(e.job, e.objective, e.kind) for e in first] == [("uploads", "rpo", OPENED)]
    event = first[0]
    assert event.detail.startswith("job 'uploads': RPO 2h00m exceeds objective 1h00m")
    assert len(alerts(caplog, logging.ERROR, "ALERT: job 'uploads': RPO")) == 1
    assert sorted(p.suffix for p in reports_folder.iterdir()) == [".html", ".json", ".md"]
    rows = catalog.reports("uploads")
    assert [row.id for row in rows] == [event.report_id]
    [breach] = catalog.breaches.open_breaches("uploads")
    assert (breach.id, breach.report_id, breach.objective_seconds) == (event.breach_id, event.report_id, 3600)
    [watchdog_run] = catalog.runs(job="uploads", kind="watchdog")
    assert (watchdog_run.status, rows[0].run_id) == ("succeeded", watchdog_run.id)

    markdown = render_markdown(rows[0].body)  # what `replica reports show ID` prints
    assert markdown.startswith("# Data-loss risk report: job 'uploads', RPO objective breached\n")
    assert "- Store: directory " in markdown
    assert "- Owners: web@acme.example" in markdown
    assert "- Clients affected: All shop customers" in markdown
    assert "- primary: snapshot aaaa1111 taken" in markdown
    assert "- offsite: snapshot bbbb2222 taken" in markdown
    assert "connection refused" in markdown
    assert "`replica backup uploads`" in markdown
    assert "`replica restore uploads --snapshot aaaa1111 --destination primary --to TARGET`" in markdown
    assert "2m00s (worst of the last five measured restore-to-verified times)" in markdown
    assert rows[0].body["data_at_risk"]["window_seconds"] == pytest.approx(2 * 3600, abs=60)

    second = watch_objectives(context)

    assert second == []
    assert len(catalog.reports("uploads")) == 1
    assert len(list(reports_folder.iterdir())) == 3
    assert len(alerts(caplog, logging.ERROR, "ALERT:")) == 1

    verified_point(catalog, "uploads", "primary", "cccc3333", utc_now() - timedelta(minutes=5))
    third = watch_objectives(context)

    assert [(e.objective, e.kind, e.breach_id) for e in third] == [("rpo", CLEARED, event.breach_id)]
    assert len(alerts(caplog, logging.WARNING, "RESOLVED: job 'uploads': RPO")) == 1
    [cleared] = catalog.breaches.breaches("uploads")
    assert cleared.cleared_at is not None
    assert cleared.cleared_detail is not None
    assert "within objective" in cleared.cleared_detail
    assert catalog.breaches.open_breaches("uploads") == []

    assert watch_objectives(context) == []
    assert len(catalog.breaches.breaches("uploads")) == 1


def test_rto_breach_from_a_slow_verification_opens_and_clears(context: Context) -> None:
    catalog = context.catalog
    verified_point(catalog, "uploads", "primary", "aaaa1111", utc_now(), rto_seconds=1800.0)
    verified_point(catalog, "uploads", "offsite", "bbbb2222", utc_now(), rto_seconds=1800.0)

    opened = watch_objectives(context)

    assert [(e.objective, e.kind) for e in opened] == [("rto", OPENED)]
    assert opened[0].detail.startswith("job 'uploads': RTO 30m00s exceeds objective 15m00s")
    report = catalog.report(opened[0].report_id or 0)
    assert report is not None
    assert report.body["breach"]["measured_seconds"] == 1800.0
    assert "RTO objective breached" in render_markdown(report.body)
    assert watch_objectives(context) == []

    verified_point(catalog, "uploads", "primary", "cccc3333", utc_now(), rto_seconds=300.0)

    assert [(e.objective, e.kind) for e in watch_objectives(context)] == [("rto", CLEARED)]


def test_a_wal_lag_beyond_the_rpo_opens_its_own_breach_with_a_report_and_clears_when_measured_within(
    context: Context,
) -> None:
    catalog = context.catalog
    verified_point(catalog, "uploads", "primary", "aaaa1111", utc_now())
    verified_point(catalog, "uploads", "offsite", "bbbb2222", utc_now())
    measured_at = utc_now()
    lagging = [
        LagRecord("uploads", "primary", measured_at, 0.0, "000000010000000000000007", measured_at, "0/7000028"),
        LagRecord("uploads", "offsite", measured_at, 5400.0, "000000010000000000000003", measured_at, "0/7000028"),
    ]
    catalog.wal_lags.record(lagging)

    opened = watch_objectives(context, now=measured_at)

    assert [(e.objective, e.kind) for e in opened] == [("wal_lag", OPENED)]
    assert opened[0].detail == "job 'uploads': WAL lag 1h30m exceeds RPO 1h00m: worst destination 'offsite'"
    report = catalog.report(opened[0].report_id or 0)
    assert report is not None
    markdown = render_markdown(report.body)
    assert "WAL lag (RPO) objective breached" in markdown
    assert "`replica wal-status uploads`" in markdown
    assert watch_objectives(context, now=measured_at) == []

    catalog.wal_lags.record([replace(lagging[1], lag_seconds=3.0)])

    assert [(e.objective, e.kind) for e in watch_objectives(context, now=measured_at)] == [("wal_lag", CLEARED)]


def test_never_verified_job_breaches_an_rpo_after_its_first_run_and_a_job_without_runs_never(
    context: Context,
) -> None:
    failed_backup(context.catalog, "uploads", "store unreachable")

    assert watch_objectives(context) == []
    later = watch_objectives(context, now=utc_now() + timedelta(hours=2))

    assert [(e.job, e.objective, e.kind) for e in later] == [("uploads", "rpo", OPENED)]
    assert "no verified recovery point since the first run" in later[0].detail
    assert context.catalog.breaches.open_breaches("fresh") == []


def test_report_files_hold_no_secret_from_the_settings(context: Context) -> None:
    failed_backup(context.catalog, "uploads", "restic: wrong password")

    watch_objectives(context, now=utc_now() + timedelta(hours=2))

    files = list(context.settings.reports_path.rglob("*"))
    assert files
    for path in files:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for secret in (RESTIC_PASSWORD, S3_KEY_ID, S3_SECRET):
                assert secret not in text, f"{secret!r} leaked into {path}"


def test_only_one_of_two_racing_openings_and_clearings_wins(context: Context) -> None:
    breaches = context.catalog.breaches
    opening = {"job": "uploads", "objective": "rpo", "measured_seconds": 7200.0, "objective_seconds": 3600.0}

    first = breaches.open_breach(**opening, detail="first")
    second = breaches.open_breach(**opening, detail="second")
    other_objective = breaches.open_breach(**{**opening, "objective": "rto"}, detail="rto")

    assert first is not None
    assert second is None
    assert other_objective is not None
    assert breaches.clear(first, "back within") is True
    assert breaches.clear(first, "again") is False
    assert [b.detail for b in breaches.breaches("uploads")] == ["rto", "first"]
    reopened = breaches.open_breach(**opening, detail="after the clear")
    assert reopened not in (None, first)


def test_the_catalog_itself_refuses_a_second_open_breach_of_one_objective(context: Context) -> None:
    # The guard for databases where two INSERT ... WHERE NOT EXISTS can both pass (PostgreSQL, READ COMMITTED).
    now = utc_now()

    def open_row(cleared: bool) -> None:
        with context.catalog.sessions.begin() as session:
            session.add(
                Breach(
                    job="shop",
                    objective="rpo",
                    opened_at=now,
                    cleared_at=now if cleared else None,
                    objective_seconds=3600,
                    detail="d",
                )
            )

    open_row(cleared=True)
    open_row(cleared=False)  # a cleared breach does not count
    with pytest.raises(IntegrityError):
        open_row(cleared=False)


def test_a_breach_and_its_clearing_are_logged_and_notified_once_each(context: Context) -> None:
    """GIVEN a job with a webhook notifier whose newest verified point is 2 h old (objective 1 h)
    WHEN the watchdog runs, then a fresh point is verified and it runs again
    THEN the webhook hears of the breach (with the risk report) and of its clearing, once each, and the
    verification log holds both and both deliveries, in an intact chain."""
    from tests.support.receivers import WebhookReceiver

    with WebhookReceiver() as webhook:
        job_path = context.settings.jobs_dir / "uploads.yaml"
        notify = f"notify:\n  - {{name: hook, kind: webhook, url: '{webhook.url}', timeout: 5}}\n"
        job_path.write_text(job_path.read_text() + notify, encoding="utf-8")
        catalog = context.catalog
        now = utc_now()
        verified_point(catalog, "uploads", "primary", "aaaa1111", now - timedelta(hours=2))

        watch_objectives(context, now)
        watch_objectives(context, now)  # still open: quiet
        verified_point(catalog, "uploads", "primary", "bbbb2222", now)
        watch_objectives(context, now + timedelta(seconds=1))

        posted = [request.json() for request in webhook.requests]
        assert [(p["event"], p["severity"]) for p in posted] == [("breach", "critical"), ("recovery", "info")]
        assert posted[0]["document"]["kind"] == "risk" and "RPO" in posted[0]["title"]
        breach_events = catalog.events.events(job="uploads", kinds=["breach"])
        assert [event.outcome for event in breach_events] == ["opened", "cleared"]
        deliveries = catalog.events.events(job="uploads", kinds=["notification"])
        assert [(event.outcome, event.figures.count('"event":"breach"')) for event in deliveries] == [
            ("sent", 1),
            ("sent", 0),
        ]
        assert catalog.events.check().intact
