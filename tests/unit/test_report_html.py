"""Reports as standalone HTML pages and Markdown: the four parts, escaping, evidence references, old bodies."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
import pytest

from replica.report.dataloss import (
    SECTION_HEADINGS,
    FailedCheck,
    RecoveryPoint,
    ReportFacts,
    build_report,
    render_markdown,
)
from replica.report.html import TEMPLATES_PATH, format_percent, render_html
from replica.report.risk import FailedRun, RiskFacts, build_risk_report

CREATED = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script>"
EVENTS = [
    {"seq": 12, "kind": "verify", "hash": "ab12" + "0" * 60},
    {"seq": 13, "kind": "report", "hash": "cd34" + "f" * 60},
]


def data_loss_body(**changes: Any) -> dict[str, Any]:
    facts = ReportFacts(
        job="billing",
        store="postgresql billing on 127.0.0.1:5432",
        destination="primary",
        snapshot_id="a1b2c3d4",
        snapshot_taken_at=CREATED - timedelta(hours=2),
        verify_run_id=42,
        failed_checks=[
            FailedCheck("fingerprint", True, "row count of public.orders: expected 120000, restored 119874")
        ],
        newest_verified={"offsite": RecoveryPoint("offsite", "33334444", CREATED - timedelta(hours=6), True, 420.0)},
        same_snapshot_elsewhere=[],
        older_verified_same_destination=None,
        owners=["dba@acme.example"],
        clients=["ACME Retail", "Globex"],
        bytes_at_risk=30_001_366,
        expected_recovery_seconds=754.0,
        rto_objective_seconds=900.0,
        rpo_objective_seconds=3600.0,
        created_at=CREATED,
    )
    # Through JSON, as the catalog stores and returns bodies.
    return {**json.loads(json.dumps(build_report(facts))), **changes}


def risk_body(**changes: Any) -> dict[str, Any]:
    facts = RiskFacts(
        job="uploads",
        store="directory /srv/uploads",
        policy="gold",
        objective="rpo",
        breach_id=3,
        breach_detail="job 'uploads': RPO 2h00m exceeds objective 1h00m",
        measured_seconds=7200.0,
        objective_seconds=3600.0,
        watchdog_run_id=9,
        destinations=["primary", "offsite"],
        newest_verified={"primary": RecoveryPoint("primary", "aaaa1111", CREATED - timedelta(hours=2), True, 120.0)},
        recent_failures=[FailedRun(8, "backup", "primary", "failed", CREATED, "connection refused | retry")],
        owners=["web@acme.example"],
        clients=["All shop customers"],
        expected_recovery_seconds=120.0,
        rto_objective_seconds=900.0,
        created_at=CREATED,
    )
    return {**json.loads(json.dumps(build_risk_report(facts))), **changes}


def headings_in_order(text: str, pattern: str) -> list[str]:
    return [heading for heading in re.findall(pattern, text) if heading in SECTION_HEADINGS]


@pytest.mark.parametrize("make_body", [data_loss_body, risk_body], ids=["data-loss", "risk"])
def test_html_has_the_four_parts_in_order(make_body: Any) -> None:
    html = render_html(make_body())

    assert headings_in_order(html, r"<h2>([^<]+)</h2>") == list(SECTION_HEADINGS)
    assert SECTION_HEADINGS == (
        "Assessment of impact",
        "Data lost or at risk",
        "Possible resolutions",
        "Expected recovery time",
    )


@pytest.mark.parametrize("make_body", [data_loss_body, risk_body], ids=["data-loss", "risk"])
def test_markdown_has_the_four_parts_in_order(make_body: Any) -> None:
    markdown = render_markdown(make_body())

    assert headings_in_order(markdown, r"(?m)^## (.+)$") == list(SECTION_HEADINGS)


@pytest.mark.parametrize("make_body", [data_loss_body, risk_body], ids=["data-loss", "risk"])
def test_html_is_standalone_without_scripts_or_external_resources(make_body: Any) -> None:
    html = render_html(make_body())

    assert html.startswith("<!DOCTYPE html>")
    assert "<style>" in html
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html
    assert not any("<script" in template.read_text().lower() for template in TEMPLATES_PATH.glob("*.j2"))


def test_free_text_in_a_data_loss_report_is_escaped() -> None:
    body = data_loss_body(job=HOSTILE, store=f"directory {HOSTILE}")
    body["failed_checks"][0]["detail"] = f"row count {HOSTILE}"
    body["resolutions"][0]["commands"] = [f"replica restore {HOSTILE}"]

    html = render_html(body)

    assert "<script" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert f"row count {HOSTILE}" not in html


def test_free_text_in_a_risk_report_is_escaped() -> None:
    body = risk_body()
    body["recent_failures"][0]["error"] = HOSTILE
    body["breach"]["detail"] = HOSTILE

    html = render_html(body)

    assert "<script" not in html
    assert html.count("&lt;script&gt;") == 2


def test_data_loss_html_shows_what_failed_impact_and_recovery() -> None:
    html = render_html(data_loss_body())

    assert (
        "<title>Data-loss report: job &#39;billing&#39;, destination &#39;primary&#39;, snapshot a1b2c3d4</title>"
        in html
    )
    assert "row count of public.orders: expected 120000, restored 119874" in html
    assert "ACME Retail, Globex" in html and "dba@acme.example" in html
    assert "(6h00m)" in html  # the window of data at risk
    assert "30001366 bytes (28.6 MiB)" in html
    assert "<code>replica restore billing --destination offsite --snapshot 33334444 --to TARGET</code>" in html
    assert "12m34s (worst of the last five measured restore-to-verified times)" in html
    assert "objective 15m00s." in html


def test_risk_html_shows_the_breach_failures_and_every_destination() -> None:
    html = render_html(risk_body())

    assert "RPO of policy 'gold': measured 2h00m, objective 1h00m" in html
    assert "connection refused | retry" in html
    assert '<td>offsite</td><td colspan="4">none: no verified recovery point</td>' in html
    assert "Size of the failed recovery point" not in html  # a risk report measures no size


@pytest.mark.parametrize("make_body", [data_loss_body, risk_body], ids=["data-loss", "risk"])
def test_evidence_references_and_report_id_are_shown_when_present(make_body: Any) -> None:
    body = make_body(report_id=7, events=EVENTS)

    html = render_html(body)
    markdown = render_markdown(body)

    assert "Report 7." in html
    assert "Evidence: verification-log events" in html
    assert '#12 (verify, hash <span class="hash" title="' + EVENTS[0]["hash"] + '">ab1200000000…</span>)' in html
    assert "#13 (report, hash" in html
    assert "- Report: 7" in markdown
    assert "- Verification-log event #12 (verify, hash ab1200000000…)" in markdown


@pytest.mark.parametrize("make_body", [data_loss_body, risk_body], ids=["data-loss", "risk"])
def test_bodies_saved_before_evidence_existed_still_render(make_body: Any) -> None:
    body = make_body()
    assert "events" not in body and "report_id" not in body

    html = render_html(body)
    markdown = render_markdown(body)

    assert "Evidence" not in html and "Report " not in html
    assert "## Evidence" not in markdown and "- Report:" not in markdown


def test_data_loss_body_from_before_canary_points_still_renders() -> None:
    body = data_loss_body()
    for point in body["newest_verified_recovery_points"].values():
        del point["canary_at"]  # bodies written before the canary measured recovery points

    assert "33334444" in render_html(body)
    assert "33334444" in render_markdown(body)


def test_data_loss_report_without_verified_points_or_failed_checks_renders() -> None:
    body = data_loss_body(newest_verified_recovery_points={}, failed_checks=[])

    html = render_html(body)

    assert "None: no destination holds a verified recovery point." in html
    assert "No failed check was recorded with this report." in html


def test_a_body_that_is_not_a_report_is_refused() -> None:
    body = data_loss_body()
    del body["expected_recovery"]

    with pytest.raises(jinja2.UndefinedError):
        render_html(body)


@pytest.mark.parametrize(
    ("fraction", "text"), [(None, "-"), (1.0, "100.0%"), (0.8, "80.0%"), (0.999, "99.9%"), (0.99996, "99.9%")]
)
def test_percentages_never_round_up_to_a_clean_record(fraction: float | None, text: str) -> None:
    assert format_percent(fraction) == text
