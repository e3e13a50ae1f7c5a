"""The data-loss report built from hand-made facts, and its Markdown rendering."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from replica.report.dataloss import (
    SECTION_HEADINGS,
    FailedCheck,
    RecoveryPoint,
    ReportFacts,
    build_report,
    render_markdown,
)
from replica.report.html import render_html

CREATED = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
TAKEN = CREATED - timedelta(hours=2)
ROW_COUNT = FailedCheck("fingerprint", True, "row count of public.orders: expected 120000, restored 119874")
REPOSITORY = FailedCheck("repository", True, "restic check: pack 3f2a contains 2 errors")
COPY_IN_OFFSITE = RecoveryPoint("offsite", "b7c8d9e0", TAKEN, verified=False)


@pytest.fixture
def facts() -> ReportFacts:
    return ReportFacts(
        job="billing",
        store="postgresql billing on 127.0.0.1:5432",
        destination="primary",
        snapshot_id="a1b2c3d4",
        snapshot_taken_at=TAKEN,
        verify_run_id=42,
        failed_checks=[ROW_COUNT, REPOSITORY],
        newest_verified={
            "primary": RecoveryPoint("primary", "11112222", CREATED - timedelta(days=1), True, 300.0),
            "offsite": RecoveryPoint("offsite", "33334444", CREATED - timedelta(hours=6), True, 420.0),
        },
        same_snapshot_elsewhere=[COPY_IN_OFFSITE],
        older_verified_same_destination=RecoveryPoint("primary", "11112222", CREATED - timedelta(days=1), True),
        owners=["dba@acme.example"],
        clients=["ACME Retail", "Globex"],
        bytes_at_risk=30_001_366,
        expected_recovery_seconds=754.0,
        rto_objective_seconds=900.0,
        rpo_objective_seconds=3600.0,
        created_at=CREATED,
    )


def test_other_destinations_copy_of_the_same_snapshot_is_the_first_resolution(facts: ReportFacts) -> None:
    first = build_report(facts)["resolutions"][0]

    assert first["action"] == "restore-from-other-destination"
    assert (first["destination"], first["snapshot_id"]) == ("offsite", "b7c8d9e0")
    assert first["commands"] == [
        "replica verify billing --destination offsite --snapshot b7c8d9e0",
        "replica restore billing --destination offsite --snapshot b7c8d9e0 --to TARGET",
    ]


def test_verified_copy_elsewhere_needs_no_verify_step(facts: ReportFacts) -> None:
    verified_copy = replace(COPY_IN_OFFSITE, verified=True)

    first = build_report(replace(facts, same_snapshot_elsewhere=[verified_copy]))["resolutions"][0]

    assert first["commands"] == ["replica restore billing --destination offsite --snapshot b7c8d9e0 --to TARGET"]


def test_older_verified_points_follow_newest_first_and_backing_up_comes_last(facts: ReportFacts) -> None:
    resolutions = build_report(facts)["resolutions"]

    assert [(r["action"], r.get("destination")) for r in resolutions] == [
        ("restore-from-other-destination", "offsite"),
        ("restore-older-verified-snapshot", "offsite"),
        ("restore-older-verified-snapshot", "primary"),
        ("back-up-now", None),
    ]


def test_window_of_data_at_risk_starts_at_the_newest_verified_point(facts: ReportFacts) -> None:
    risk = build_report(facts)["data_at_risk"]

    assert risk["window_start"] == (CREATED - timedelta(hours=6)).isoformat()
    assert risk["window_end"] == CREATED.isoformat()
    assert risk["window_seconds"] == 6 * 3600
    assert risk["bytes_at_risk"] == 30_001_366
    assert "6h00m of data" in risk["summary"]


def test_owners_and_clients_are_listed(facts: ReportFacts) -> None:
    report = build_report(facts)
    markdown = render_markdown(report)

    assert report["affected"] == {"owners": ["dba@acme.example"], "clients": ["ACME Retail", "Globex"]}
    assert "- Owners: dba@acme.example" in markdown
    assert "- Clients affected: ACME Retail, Globex" in markdown


def test_without_any_verified_point_all_data_is_at_risk(facts: ReportFacts) -> None:
    report = build_report(replace(facts, newest_verified={}, same_snapshot_elsewhere=[]))
    markdown = render_markdown(report)

    assert report["data_at_risk"]["window_start"] is None
    assert report["data_at_risk"]["window_seconds"] is None
    assert "all of its data is at risk" in report["data_at_risk"]["summary"]
    assert "- Window: everything to" in markdown
    assert "- none: no destination holds a verified recovery point" in markdown
    assert [r["action"] for r in report["resolutions"]] == ["back-up-now"]


def test_expected_recovery_time_is_rendered_against_the_objective(facts: ReportFacts) -> None:
    markdown = render_markdown(build_report(facts))

    assert "12m34s (worst of the last five measured restore-to-verified times); objective 15m00s." in markdown


def test_markdown_contains_every_failed_checks_detail(facts: ReportFacts) -> None:
    markdown = render_markdown(build_report(facts))

    assert f"| fingerprint | yes | {ROW_COUNT.detail} |" in markdown
    assert f"| repository | yes | {REPOSITORY.detail} |" in markdown
    assert markdown.startswith("# Data-loss report: job 'billing', destination 'primary', snapshot a1b2c3d4\n")
    assert "   - `replica restore billing --destination offsite --snapshot b7c8d9e0 --to TARGET`" in markdown


def test_markdown_has_a_header_of_what_failed_then_the_four_parts(facts: ReportFacts) -> None:
    markdown = render_markdown({**build_report(facts), "report_id": 7})

    assert re.findall(r"(?m)^## (.+)$", markdown) == ["What failed", *SECTION_HEADINGS]
    assert "- Report: 7\n- Job: billing\n- Store: postgresql billing on 127.0.0.1:5432\n" in markdown
    assert "- Window: 2026-11-26T08:00:00+00:00 to 2026-11-26T14:00:00+00:00 (6h00m)" in markdown
    assert "- Size of the failed recovery point: 30001366 bytes (28.6 MiB)" in markdown


def test_a_pipe_in_a_checks_detail_stays_inside_its_cell(facts: ReportFacts) -> None:
    check = FailedCheck("canary", True, "expected a|b\ngot c")

    markdown = render_markdown(build_report(replace(facts, failed_checks=[check])))

    assert "| canary | yes | expected a\\|b got c |" in markdown


def test_objects_confirmed_at_rest_are_listed_in_json_markdown_and_html(facts: ReportFacts) -> None:
    pack = "37da3b7731a6c7a9fff5d7c9d2f84058cef1fe81e771296cd53099f815866ec2"
    damaged = {
        "key": f"restic/billing/data/37/{pack}",
        "state": "damaged",
        "expected_sha256": pack,
        "found_sha256": "51c101f6bb3efbac8267ed9949f571a49617fd5138f0977684f0cb278af17f9b",
    }
    missing = {
        "key": "restic/billing/index/0e773cc428",
        "state": "missing",
        "expected_sha256": None,
        "found_sha256": None,
    }

    report = build_report(replace(facts, damaged_objects=[damaged, missing]))
    markdown = render_markdown(report)

    assert report["damaged_objects"] == [damaged, missing]
    assert f"- `restic/billing/data/37/{pack}`: damaged (SHA-256 51c101f6bb3e…)" in markdown
    assert "- `restic/billing/index/0e773cc428`: missing" in markdown
    assert f"<code>restic/billing/data/37/{pack}</code>: damaged" in render_html(report)
    # a report whose failure was not confirmed at rest (a fingerprint mismatch) lists none
    assert "confirmed at rest" not in render_markdown(build_report(facts))
