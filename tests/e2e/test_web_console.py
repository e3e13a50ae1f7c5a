"""The web console in a real browser: headless Chromium (Debian's, driven by Playwright) against the real
`replica serve` of a deployment with two directory jobs, one healthy and one whose repository was damaged so that its
verification failed with a data-loss report.

An auditor sees the failing job highlighted, opens its page and report and exports evidence; an operator verifies
and restores from the pages; an auditor's clicks on actions are refused (403) on the page and by the API alike.
Screenshots of the overview and of a job page are saved under pytest's tmp dir, their paths printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows, damage_largest_pack
from tests.e2e.sources import DirectorySource
from tests.e2e.web import WebServer, create_token, running_server

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
HEALTHY, FAILING = "ledger", "uploads"
AUDITOR, OPERATOR = "audit-firm", "oncall"
# A verification or restore of a small directory takes a few seconds; the task page reloads itself meanwhile.
TASK_SECONDS = 120


@dataclass
class Console:
    """The deployment, its running server, one browser, the tokens and the healthy job's source."""

    deployment: Deployment
    server: WebServer
    browser: Browser
    tokens: dict[str, str]
    healthy_source: DirectorySource
    screenshots: Path
    scratch: Path

    def signed_in(self, name: str) -> Page:
        """Return a page of a fresh browser context signed in with the named token (at the overview)."""
        page = self.browser.new_context(accept_downloads=True).new_page()
        page.goto(f"{self.server.url}/")
        expect(page).to_have_url(f"{self.server.url}/login?next=/")
        page.fill("input[name=token]", self.tokens[name])
        page.click("button[type=submit]")
        expect(page.locator("header .whoami span")).to_contain_text(name)
        return page


@pytest.fixture(scope="module")
def console(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """GIVEN two directory jobs backed up and verified through the CLI, then the failing job's repository damaged
    and verified again (failed, with a data-loss report); an auditor's and an operator's token; the server; a
    browser."""
    healthy_source = DirectorySource(tmp_path_factory.mktemp("ledger-source"))
    failing_source = DirectorySource(tmp_path_factory.mktemp("uploads-source"))
    failing_destinations = deployment.two_destinations(FAILING)
    deployment.write_job(HEALTHY, healthy_source.store_config(), deployment.two_destinations(HEALTHY))
    deployment.write_job(FAILING, failing_source.store_config(), failing_destinations)
    for job in (HEALTHY, FAILING):
        assert_ok(deployment.replica("init", job))
        assert_ok(deployment.replica("backup", job))
        assert_ok(deployment.replica("verify", job))
    damage_largest_pack(deployment, failing_destinations[0])
    assert deployment.replica("verify", FAILING).returncode == 1
    tokens = {
        AUDITOR: create_token(deployment, AUDITOR, "auditor"),
        OPERATOR: create_token(deployment, OPERATOR, "operator"),
    }
    screenshots = tmp_path_factory.mktemp("screenshots")
    scratch = tmp_path_factory.mktemp("scratch")
    restore_root = {"REPLICA_WEB_RESTORE_ROOT": str(scratch)}
    with running_server(deployment, **restore_root) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield Console(deployment, server, browser, tokens, healthy_source, screenshots, scratch)
        finally:
            browser.close()


def test_an_auditor_sees_the_failing_job_opens_its_report_and_exports_evidence(console: Console) -> None:
    # WHEN the auditor signs in
    page = console.signed_in(AUDITOR)

    # THEN the overview highlights the failing job in red, with its reason, and shows the healthy one as ok
    failing_row = page.locator(f"tr.job[data-job={FAILING}]")
    expect(failing_row).to_have_attribute("data-state", "failing")
    expect(failing_row).to_have_class("job state-failing")
    expect(failing_row).to_have_css("background-color", "rgb(255, 227, 227)")
    expect(failing_row.locator(".reasons")).to_contain_text("last verification failed")
    expect(page.locator(f"tr.job[data-job={HEALTHY}]")).to_have_attribute("data-state", "ok")
    overview_shot = console.screenshots / "overview.png"
    page.screenshot(path=str(overview_shot), full_page=True)

    # WHEN they open the failing job
    failing_row.locator(f"a[href='/jobs/{FAILING}']").click()

    # THEN its page shows the failed verification with each check's figures, and both charts with the objective
    expect(page.locator("#job-state")).to_have_attribute("data-state", "failing")
    newest = page.locator("article.verification").first
    expect(newest).to_have_attribute("data-status", "failed")
    failed_checks = newest.locator("tr.check.state-failing td:first-child").all_inner_texts()
    assert "repository" in failed_checks, failed_checks
    rto_chart = page.locator("#rto-chart svg.chart")
    expect(rto_chart.locator("line.objective")).to_have_attribute("data-seconds", "600")
    assert int(rto_chart.get_attribute("data-points") or 0) >= 1
    expect(page.locator("#rpo-chart svg.chart circle.point")).not_to_have_count(0)
    job_shot = console.screenshots / "job-uploads.png"
    page.screenshot(path=str(job_shot), full_page=True)
    print(f"\nscreenshots: {overview_shot} {job_shot}")

    # WHEN they open its data-loss report
    page.locator("ul.reports a").first.click()

    # THEN the report's saved HTML is shown, naming the job and the damaged destination
    report = page.frame_locator("iframe.report").locator("body")
    expect(report).to_contain_text(FAILING)
    expect(report).to_contain_text("primary")

    # WHEN they filter the audit log to verifications and export the evidence pack
    page.goto(f"{console.server.url}/audit?kind=verify")
    kinds = page.locator("table.events tr.event").evaluate_all("rows => rows.map(row => row.dataset.kind)")
    with page.expect_download() as download_info:
        page.click("#export")
    pack = json.loads(Path(download_info.value.path()).read_text())

    # THEN only verifications are listed (a failed one among them), and the pack holds the whole log, its chain
    # intact, generated by the auditor's token
    assert kinds and set(kinds) == {"verify"}
    expect(page.locator("tr.event[data-outcome=failed]")).not_to_have_count(0)
    assert pack["kind"] == "replica-evidence" and pack["chain"]["verified"] is True
    assert pack["generated_by"] == f"token:{AUDITOR}"
    assert {event["kind"] for event in pack["events"]} >= {"backup", "verify", "token"}
    assert download_info.value.suggested_filename.endswith(".json")

    # AND the API serves the charted history: one RTO per verification of the failing job, against its objective
    history = console.server.client(console.tokens[AUDITOR]).get(f"/api/jobs/{FAILING}/history").json()
    assert history["rto_objective_seconds"] == 600 and history["rpo_objective_seconds"] == 3600
    assert [point["passed"] for point in history["rto"]][:1] == [True]
    assert all(point["seconds"] > 0 for point in history["rto"] + history["rpo"])


def test_an_auditor_cannot_act_on_the_page_nor_through_the_api(console: Console) -> None:
    # GIVEN the auditor on the healthy job's page
    page = console.signed_in(AUDITOR)
    page.goto(f"{console.server.url}/jobs/{HEALTHY}")
    runs_before = catalog_rows(console.deployment, f"SELECT count(*) FROM runs WHERE job = '{HEALTHY}'")

    # WHEN they click Verify, and open the restore form
    with page.expect_response(f"{console.server.url}/jobs/{HEALTHY}/verify") as verify_response:
        page.click("button[value=verify]")
    verify_message = page.locator("p.error").inner_text()
    restore_response = page.goto(f"{console.server.url}/jobs/{HEALTHY}/restore")
    api_response = console.server.client(console.tokens[AUDITOR]).post(f"/api/jobs/{HEALTHY}/verify")

    # THEN the page says 403 with the reason, and the API answers 403 to the same action; nothing ran
    assert verify_response.value.status == 403
    assert f"token '{AUDITOR}' has role 'auditor'" in verify_message and "operator" in verify_message
    assert restore_response is not None and restore_response.status == 403
    expect(page.locator("p.error")).to_have_attribute("data-status", "403")
    assert api_response.status_code == 403 and "operator" in api_response.json()["detail"]
    assert catalog_rows(console.deployment, f"SELECT count(*) FROM runs WHERE job = '{HEALTHY}'") == runs_before


def test_an_operator_verifies_from_the_job_page_and_sees_the_result(console: Console) -> None:
    # GIVEN the operator on the healthy job's page
    page = console.signed_in(OPERATOR)
    page.goto(f"{console.server.url}/jobs/{HEALTHY}")

    # WHEN they click Verify
    page.click("button[value=verify]")

    # THEN the task page follows the verification until it passes, with its checks
    expect(page).to_have_url(f"{console.server.url}/tasks/1")
    expect(page.locator("#task-state")).to_have_attribute("data-state", "succeeded", timeout=TASK_SECONDS * 1000)
    expect(page.locator("#task-result h2")).to_contain_text("PASSED")
    checks = page.locator("#task-result tr.check")
    expect(checks).not_to_have_count(0)
    expect(page.locator("#task-result tr.check.state-failing")).to_have_count(0)

    # AND the job page lists it first among its verifications, by the operator's token; the API agrees
    page.click(f"h1 a[href='/jobs/{HEALTHY}']")
    newest = page.locator("article.verification").first
    expect(newest).to_have_attribute("data-status", "succeeded")
    expect(newest.locator("h3")).to_contain_text(f"token:{OPERATOR}")
    task = console.server.client(console.tokens[AUDITOR]).get("/api/tasks/1").json()
    assert task["state"] == "succeeded" and task["result"]["passed"] is True and task["actor"] == f"token:{OPERATOR}"


def test_a_restore_is_planned_refused_over_data_then_confirmed_into_a_fresh_target(console: Console) -> None:
    # GIVEN the operator on the healthy job's restore form
    page = console.signed_in(OPERATOR)
    page.goto(f"{console.server.url}/jobs/{HEALTHY}/restore")

    # WHEN they aim it at a folder that holds data without ticking "replace"
    occupied = console.scratch / "occupied"
    occupied.mkdir()
    (occupied / "keep-me.txt").write_text("someone's data\n")
    page.fill("input[name=to]", str(occupied))
    page.click("form.restore button[type=submit]")

    # THEN the plan says REFUSED and offers no confirmation
    expect(page.locator("section.plan")).to_have_attribute("data-refused", "true")
    expect(page.locator("section.plan h2")).to_contain_text("REFUSED")
    expect(page.locator("button.confirm")).to_have_count(0)
    assert [path.name for path in occupied.iterdir()] == ["keep-me.txt"]

    # WHEN they plan a restore into a fresh folder and confirm it
    target = console.scratch / "restored-ledger"
    page.goto(f"{console.server.url}/jobs/{HEALTHY}/restore")
    page.fill("input[name=to]", str(target))
    page.click("form.restore button[type=submit]")
    expect(page.locator("section.plan")).to_have_attribute("data-refused", "false")
    page.click("button.confirm")

    # THEN the task succeeds and the folder holds exactly the backed-up data
    expect(page.locator("#task-state")).to_have_attribute("data-state", "succeeded", timeout=TASK_SECONDS * 1000)
    assert console.healthy_source.contents(str(target)) == console.healthy_source.contents()

    # AND the verification log holds every request under the token's name: the verify and the confirmed restore
    # (a plan changes nothing and requests nothing; the auditor's refused clicks never reached an action)
    requests = console.deployment.replica_json("audit", "log", "--kind", "request")
    assert [(event["figures"]["action"], event["outcome"], event["actor"]) for event in requests] == [
        ("verify", "accepted", f"token:{OPERATOR}"),
        ("restore", "accepted", f"token:{OPERATOR}"),
    ]
    restores = console.deployment.replica_json("audit", "log", "--kind", "restore", "--job", HEALTHY)
    assert restores[-1]["outcome"] == "succeeded" and restores[-1]["actor"] == f"token:{OPERATOR}"
