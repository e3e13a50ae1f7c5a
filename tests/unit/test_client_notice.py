"""Client notices of a recovery, rendered from facts: a draft with the four parts, loss windows from the canary (else
the snapshot) to the incident, the steps in the plan's order, measured times after a recovery and the forecast
before it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from replica.report.dataloss import RecoveryPoint
from replica.report.notice import (
    NOTICE_HEADINGS,
    NoticeFacts,
    NoticeStore,
    build_notice,
    client_slug,
    render_notice_markdown,
)

INCIDENT = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
DATABASE = NoticeStore(
    job="shop-db",
    kind="postgresql",
    description="Orders",
    order=1,
    point=RecoveryPoint(
        "offsite", "a1b2c3d4", INCIDENT - timedelta(hours=2), True, 40.0, canary_at=INCIDENT - timedelta(hours=3)
    ),
    verified_at=INCIDENT - timedelta(hours=1),
    forecast_seconds=40.0,
)
UPLOADS = NoticeStore(
    job="uploads",
    kind="directory",
    description="",
    order=2,
    point=RecoveryPoint("primary", "e5f6a7b8", INCIDENT - timedelta(minutes=30), False),
    verified_at=None,
    forecast_seconds=20.0,
)
PLANNED = NoticeFacts(
    client="ACME Retail",
    plan="shop",
    service="the ACME shop",
    stores=[DATABASE, UPLOADS],
    plan_stores=3,
    incident_at=INCIDENT,
    created_at=INCIDENT + timedelta(minutes=10),
    completed=False,
    total_seconds=None,
    forecast_total_seconds=75.0,
    rto_objective_seconds=3600.0,
)


def test_a_planned_notice_is_a_draft_with_the_four_parts_and_the_forecast() -> None:
    # GIVEN the facts of a recovery not yet done (a dry run)
    # WHEN the notice is built and rendered
    body = build_notice(PLANNED)
    text = render_notice_markdown(body)
    # THEN it is a draft with the four headings, in order
    assert "DRAFT" in text.splitlines()[2]
    positions = [text.index(f"## {heading}") for heading in NOTICE_HEADINGS]
    assert positions == sorted(positions)
    # AND the loss window of each store runs from its recovery point (the canary when known) to the incident
    windows = {w["job"]: w for w in body["assessment"]["stores"]}
    assert windows["shop-db"]["recovery_point_source"] == "canary"
    assert windows["shop-db"]["window_seconds"] == 3 * 3600
    assert windows["uploads"]["recovery_point_source"] == "snapshot"
    assert windows["uploads"]["window_seconds"] == 1800
    assert "at most 3h00m of changes" in text
    # AND the measures list the steps in the plan's order, with what proved each point
    assert "- Step 1 of 3: the postgresql store 'shop-db' (Orders) to be restored from backup copy 'offsite'" in text
    assert "proved restorable by a test restore finished 2026-11-26T13:00:00+00:00" in text
    assert "- Step 2 of 3: the directory store 'uploads' to be restored" in text
    assert "not yet proved by a test restore" in text
    # AND the impact and recovery time are the forecast from measured restores against the objective
    assert "about 11m15s" in text  # 10 minutes since the incident + 75 s forecast
    assert "Expected: 1m15s (forecast" in text and "objective 1h00m" in text
    assert "- shop-db: expected 40s" in text


def test_a_completed_notice_gives_the_measured_times_and_the_checks_passed() -> None:
    # GIVEN the facts of a finished recovery
    restored = replace(DATABASE, restored_seconds=35.0, checks=("restore", "integrity", "fingerprint"))
    facts = replace(PLANNED, stores=[restored], completed=True, total_seconds=90.0)
    # WHEN it is rendered
    text = render_notice_markdown(build_notice(facts))
    # THEN it states what was done, measured, and the forecast beside it
    assert "we have restored the ACME shop" in text
    assert "checks passed: restore, integrity, fingerprint" in text
    assert "Recovered in 1m30s (measured" in text and "The forecast from earlier measured restores was 1m15s" in text
    assert "- shop-db: restored in 35s" in text
    assert "until the recovery finished: 10m00m" not in text and "recovery finished: 10m00s" in text


def test_a_recovery_point_after_the_incident_loses_nothing() -> None:
    # GIVEN an incident time before the store's recovery point
    facts = replace(PLANNED, stores=[UPLOADS], incident_at=INCIDENT - timedelta(hours=1))
    # WHEN the notice is built
    # THEN the window is empty, never negative
    assert build_notice(facts)["assessment"]["worst_window_seconds"] == 0.0


def test_an_unmeasured_store_leaves_the_recovery_time_unknown() -> None:
    facts = replace(PLANNED, stores=[replace(UPLOADS, forecast_seconds=None)], forecast_total_seconds=None)
    text = render_notice_markdown(build_notice(facts))
    assert "Not yet known (unknown: a store of the service has never had its restore time measured)" in text
    assert "- uploads: no restore time measured yet" in text


@pytest.mark.parametrize(
    ("client", "slug"), [("ACME Retail", "acme-retail"), ("Globex GmbH & Co. KG", "globex-gmbh-co-kg"), ("ü", "client")]
)
def test_client_slugs_are_plain_file_names(client: str, slug: str) -> None:
    assert client_slug(client) == slug
