"""The JSON API of the real `replica serve` on a real job: it reads what the command line prints, runs an
operator's verification in the background under the token's name, follows the command line's restore rules,
refuses every action to an auditor, exports an evidence pack whose chain is intact, and never answers a secret."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Deployment, assert_ok, damage_largest_pack
from tests.e2e.sources import DirectorySource
from tests.e2e.web import WebServer, create_token, running_server

pytestmark = pytest.mark.e2e

JOB = "api-files"
TASK_SECONDS = 120
# Fields of the status document that move with the clock between two reads.
MOVING = ("generated_at", "rpo_seconds", "data_loss_window_seconds")


@dataclass(frozen=True)
class Served:
    """The running server, its two clients, the job's source and destinations."""

    server: WebServer
    auditor: httpx.Client
    operator: httpx.Client
    source: DirectorySource
    destinations: list[dict[str, Any]]
    restore_root: Path


@pytest.fixture(scope="module")
def served(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """GIVEN a directory job backed up and verified through the CLI, an auditor's and an operator's token, and a
    running `replica serve`."""
    source = DirectorySource(tmp_path_factory.mktemp("api-source"))
    destinations = deployment.two_destinations("api")
    deployment.write_job(JOB, source.store_config(), destinations)
    for command in ("init", "backup", "verify"):
        assert_ok(deployment.replica(command, JOB))
    auditor = create_token(deployment, "api-auditor", "auditor")
    operator = create_token(deployment, "oncall", "operator")
    restore_root = tmp_path_factory.mktemp("web-restores")
    with (
        running_server(deployment, REPLICA_WEB_RESTORE_ROOT=str(restore_root)) as server,
        server.client(auditor) as by_auditor,
        server.client(operator) as by_operator,
    ):
        yield Served(server, by_auditor, by_operator, source, destinations, restore_root)


def _still(document: Any) -> Any:
    """Return a document without the fields that move with the clock."""
    if isinstance(document, dict):
        return {key: _still(value) for key, value in document.items() if key not in MOVING}
    if isinstance(document, list):
        return [_still(item) for item in document]
    return document


def _ok(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wait_for_task(client: httpx.Client, task_id: int) -> tuple[dict[str, Any], list[str]]:
    """Poll a task until it finishes; return its last document and every state seen on the way."""
    deadline = time.monotonic() + TASK_SECONDS
    states = []
    while True:
        task = _ok(client.get(f"/api/tasks/{task_id}"))
        states.append(task["state"])
        if task["state"] in ("succeeded", "failed"):
            return task, states
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


def test_reads_answer_what_the_command_line_prints(deployment: Deployment, served: Served) -> None:
    client = served.auditor

    # WHEN the auditor reads status, jobs, runs, snapshots, events and reports
    status = _ok(client.get("/api/status"))
    job = _ok(client.get(f"/api/jobs/{JOB}"))
    jobs = _ok(client.get("/api/jobs"))
    runs = _ok(client.get("/api/runs", params={"limit": 5}))
    job_runs = _ok(client.get(f"/api/jobs/{JOB}/runs", params={"kind": "verify"}))
    snapshots = _ok(client.get(f"/api/jobs/{JOB}/snapshots"))
    events = _ok(client.get("/api/events", params={"job": JOB, "kind": ["backup", "verify"], "limit": 50}))
    reports = _ok(client.get("/api/reports", params={"job": JOB}))

    # THEN each is the document the CLI prints
    cli_status = deployment.replica_json("status")
    assert _still(status) == _still(cli_status)
    assert _still(job) == _still(next(j for j in cli_status["jobs"] if j["job"] == JOB))
    assert {"job": JOB, "store": "directory", "policy": "e2e", "state": job["state"], "reasons": job["reasons"]} in (
        jobs["jobs"]
    )
    assert runs == deployment.replica_json("runs", "--limit", "5")
    assert job_runs == [run for run in deployment.replica_json("runs", "--job", JOB) if run["kind"] == "verify"]
    assert len(job_runs) == 1 and job_runs[0]["status"] == "succeeded"
    assert snapshots == deployment.replica_json("snapshots", JOB)
    assert {s["destination"] for s in snapshots} == {"primary", "offsite"}
    cli_events = deployment.replica_json("audit", "log", "--job", JOB, "--kind", "backup", "--kind", "verify")
    assert events == cli_events and {e["kind"] for e in events} == {"backup", "verify"}
    assert reports == deployment.replica_json("reports", "--job", JOB) == []

    # AND one run comes with its checks
    verify_run = _ok(client.get(f"/api/runs/{job_runs[0]['id']}"))
    assert {key: value for key, value in verify_run.items() if key != "checks"} == job_runs[0]
    assert verify_run["checks"] and all(check["passed"] for check in verify_run["checks"])

    # AND unknown records are 404 naming them
    for path, name in [("/api/jobs/nope", "nope"), ("/api/runs/999999", "999999"), ("/api/reports/999999", "999999")]:
        answer = client.get(path)
        assert answer.status_code == 404 and name in answer.json()["detail"], answer.text


def test_an_operator_verification_runs_in_the_background_under_the_token_name(
    deployment: Deployment, served: Served
) -> None:
    # WHEN the operator asks for a verification
    answer = served.operator.post(f"/api/jobs/{JOB}/verify", json={"destination": "offsite"})

    # THEN it is accepted at once with its task, which shows progress and ends with the run's outcome
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert answer.headers["location"] == f"/api/tasks/{accepted['id']}"
    assert (accepted["kind"], accepted["job"], accepted["actor"]) == ("verify", JOB, "token:oncall")
    task, states = _wait_for_task(served.auditor, accepted["id"])
    assert task["state"] == "succeeded" and task["error"] is None, task
    assert states[-1] == "succeeded" and set(states) <= {"queued", "running", "succeeded"}
    assert task["progress"], "no progress line was shown"
    result = task["result"]
    assert result["passed"] is True and result["destination"] == "offsite"
    assert task in _ok(served.auditor.get("/api/tasks", params={"job": JOB}))

    # AND the log holds the request and the verification, both by the token's name
    events = _ok(served.auditor.get("/api/events", params={"job": JOB, "kind": ["request", "verify"]}))
    request = [e for e in events if e["kind"] == "request" and e["figures"].get("task") == accepted["id"]]
    assert [(e["outcome"], e["actor"], e["figures"]["action"]) for e in request] == [
        ("accepted", "token:oncall", "verify")
    ]
    verified = [e for e in events if e["kind"] == "verify" and e["run_id"] == result["run_id"]]
    assert verified and {(e["actor"], e["outcome"]) for e in verified} == {("token:oncall", "succeeded")}
    run = _ok(served.auditor.get(f"/api/runs/{result['run_id']}"))
    assert (run["kind"], run["actor"], run["status"]) == ("verify", "token:oncall", "succeeded")


def test_restore_follows_the_command_line_rules(deployment: Deployment, served: Served, tmp_path: Path) -> None:
    # GIVEN a directory holding data, and a path that does not exist yet, in the web's restore folder
    occupied = served.restore_root / "in-use"
    occupied.mkdir()
    (occupied / "precious.txt").write_text("live data")
    new_place = served.restore_root / "new-place"

    # WHEN the operator restores over the data without force, and asks for dry runs
    refused = served.operator.post(f"/api/jobs/{JOB}/restore", json={"to": str(occupied)})
    plan_new = served.operator.post(f"/api/jobs/{JOB}/restore", json={"to": str(new_place), "dry_run": True})
    plan_occupied = served.operator.post(f"/api/jobs/{JOB}/restore", json={"to": str(occupied), "dry_run": True})

    # THEN the restore is refused (409 saying why) and nothing changed; the dry runs only plan
    assert refused.status_code == 409 and "already holds data" in refused.json()["detail"]
    assert [path.name for path in occupied.iterdir()] == ["precious.txt"]
    assert (occupied / "precious.txt").read_text() == "live data"
    assert _ok(plan_new)["target_has_data"] is False and plan_new.json()["refused"] is False
    assert plan_occupied.json()["refused"] is True and plan_occupied.json()["target"] == f"directory {occupied}"
    assert not new_place.exists()

    # WHEN the operator names a relative target, and targets outside the restore folder (directly, or by ..)
    relative = served.operator.post(f"/api/jobs/{JOB}/restore", json={"to": "by-name", "dry_run": True})
    outside = tmp_path / "elsewhere"
    escapes = [
        served.operator.post(f"/api/jobs/{JOB}/restore", json={"to": str(outside)}),
        served.operator.post(f"/api/jobs/{JOB}/restore", json={"to": "../escaped", "dry_run": True}),
    ]

    # THEN the relative one lands inside the folder, and the others are refused (403 naming the setting), nothing made
    assert _ok(relative)["target"] == f"directory {served.restore_root / 'by-name'}"
    for answer in escapes:
        assert answer.status_code == 403 and "web_restore_root" in answer.json()["detail"], answer.text
    assert not outside.exists() and not (served.restore_root.parent / "escaped").exists()

    # AND the refusals are in the log by the token's name (a target outside the folder even when only planned)
    requests = _ok(served.auditor.get("/api/events", params={"job": JOB, "kind": "request"}))
    refusals = [e for e in requests if e["outcome"] == "refused"]
    assert [(e["actor"], e["figures"]["action"], e["figures"]["target"]) for e in refusals] == [
        ("token:oncall", "restore", f"directory {occupied}"),
        ("token:oncall", "restore", str(outside)),
        ("token:oncall", "restore", "../escaped"),
    ]


def test_an_auditor_may_not_act(deployment: Deployment, served: Served, tmp_path: Path) -> None:
    events_before = len(_ok(served.auditor.get("/api/events", params={"limit": 1000})))

    # WHEN the auditor tries every action
    answers = [
        served.auditor.post(f"/api/jobs/{JOB}/backup"),
        served.auditor.post(f"/api/jobs/{JOB}/verify"),
        served.auditor.post(f"/api/jobs/{JOB}/restore", json={"to": str(tmp_path / "x")}),
        served.auditor.post(f"/api/jobs/{JOB}/restore", json={"to": str(tmp_path / "x"), "dry_run": True}),
    ]

    # THEN each is 403 naming the role needed, and nothing was recorded or started
    assert [answer.status_code for answer in answers] == [403, 403, 403, 403]
    assert all("operator" in answer.json()["detail"] for answer in answers)
    assert len(_ok(served.auditor.get("/api/events", params={"limit": 1000}))) == events_before
    assert all(task["actor"] != "token:api-auditor" for task in _ok(served.auditor.get("/api/tasks")))


def test_a_data_loss_report_reads_as_on_the_command_line(deployment: Deployment, served: Served) -> None:
    # GIVEN damage at rest in the primary, found by a verification (a data-loss report)
    damage_largest_pack(deployment, served.destinations[0])
    assert deployment.replica("verify", JOB).returncode == 1

    # WHEN the auditor lists reports and reads the newest as JSON and as Markdown
    reports = _ok(served.auditor.get("/api/reports", params={"job": JOB}))
    report_id = reports[0]["id"]
    body = _ok(served.auditor.get(f"/api/reports/{report_id}"))
    markdown = served.auditor.get(f"/api/reports/{report_id}/markdown")
    markdown_by_format = served.auditor.get(f"/api/reports/{report_id}", params={"format": "markdown"})

    # THEN each is what `replica reports` prints
    assert reports == deployment.replica_json("reports", "--job", JOB)
    assert body == deployment.replica_json("reports", "show", str(report_id))
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    cli_markdown = deployment.replica("reports", "show", str(report_id))
    assert markdown.text.strip() == cli_markdown.stdout.strip() == markdown_by_format.text.strip()
    assert JOB in markdown.text


def test_the_audit_export_downloads_a_pack_whose_chain_is_intact(deployment: Deployment, served: Served) -> None:
    # WHEN the auditor checks the log and downloads the evidence pack in each format
    verified = _ok(served.auditor.get("/api/audit/verify"))
    as_json = served.auditor.get("/api/audit/export", params={"format": "json"})
    as_csv = served.auditor.get("/api/audit/export", params={"format": "csv"})
    as_html = served.auditor.get("/api/audit/export", params={"format": "html", "since": "2000-01-01T00:00:00"})

    # THEN the log is intact, and each download is an attachment
    assert verified["intact"] is True and verified["events"] >= 1
    for answer, suffix in [(as_json, ".json"), (as_csv, ".zip"), (as_html, ".html")]:
        assert answer.status_code == 200, answer.text
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith("attachment;") and disposition.rstrip('"').endswith(suffix)

    # AND the JSON pack proves itself intact with the command line, up to the head the API reported
    pack_path = deployment.root / "api-evidence.json"
    pack_path.write_bytes(as_json.content)
    pack = json.loads(as_json.content)
    assert pack["chain"]["verified"] is True and pack["chain"]["head_seq"] >= verified["head_seq"]
    checked = deployment.replica("audit", "verify", "--export", str(pack_path))
    assert_ok(checked)
    assert "evidence pack intact" in checked.stdout
    # AND the CSV download holds the events file and the summary file; the HTML page names the job
    events_file, summary_file = sorted(zipfile.ZipFile(io.BytesIO(as_csv.content)).namelist(), key=len)
    assert summary_file == events_file.replace(".csv", "-summary.csv")
    assert as_html.headers["content-type"].startswith("text/html") and JOB in as_html.text


def test_no_answer_holds_a_secret(deployment: Deployment, served: Served) -> None:
    # GIVEN every GET operation of the API, its parameters filled with real records
    document = _ok(served.operator.get("/openapi.json"))
    run_id = _ok(served.operator.get("/api/runs", params={"limit": 1}))[0]["id"]
    report_id = _ok(served.operator.get("/api/reports"))[0]["id"]
    task_id = _ok(served.operator.get("/api/tasks"))[0]["id"]
    values = {"{job}": JOB, "{run_id}": str(run_id), "{report_id}": str(report_id), "{task_id}": str(task_id)}
    paths = []
    for path, operations in document["paths"].items():
        if "get" in operations:
            for name, value in values.items():
                path = path.replace(name, value)
            paths.append(path)
    extra = [
        "/api/audit/export?format=csv",
        "/api/audit/export?format=html",
        f"/api/reports/{report_id}?format=markdown",
    ]

    # WHEN the operator reads each of them
    answers = {path: served.operator.get(path) for path in [*paths, *extra, "/openapi.json"]}

    # THEN every one answers 200, and no secret (repository password, S3 key, database password, any token)
    # appears in a body or a header
    assert {path: answer.status_code for path, answer in answers.items() if answer.status_code != 200} == {}
    assert len(paths) >= 15
    secrets = [secret.encode() for secret in deployment.secrets() if secret]
    leaks = [
        path
        for path, answer in answers.items()
        for secret in secrets
        if secret in _readable(answer) or secret in str(answer.headers).encode()
    ]
    assert leaks == []


def _readable(answer: httpx.Response) -> bytes:
    """Return an answer's body as sent, or the files of a zip archive (compressed, a secret would not show)."""
    if answer.headers.get("content-type") != "application/zip":
        return answer.content
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    return b"".join(archive.read(name) for name in archive.namelist())


def test_a_restore_target_must_lie_strictly_inside_the_restore_folder(served: Served, tmp_path: Path) -> None:
    # GIVEN a symbolic link inside the restore folder that leads out of it
    outside = tmp_path / "outside"
    outside.mkdir()
    (served.restore_root / "way-out").symlink_to(outside)
    before = len(_ok(served.auditor.get("/api/events", params={"job": JOB, "kind": "request", "limit": 1000})))

    # WHEN the operator restores into the folder itself (".", or its path) and through the link
    answers = [
        served.operator.post(f"/api/jobs/{JOB}/restore", json={"to": to, "force": True})
        for to in (".", str(served.restore_root), "way-out/restored")
    ]

    # THEN each is refused (403 naming the setting), nothing lands outside, and each refusal is in the log
    for answer in answers:
        assert answer.status_code == 403 and "web_restore_root" in answer.json()["detail"], answer.text
    assert list(outside.iterdir()) == []
    assert served.restore_root.is_dir()
    requests = _ok(served.auditor.get("/api/events", params={"job": JOB, "kind": "request", "limit": 1000}))
    refused = [e for e in requests[before:] if e["outcome"] == "refused"]
    assert [(e["actor"], e["figures"]["action"]) for e in refused] == [("token:oncall", "restore")] * 3


def test_an_operator_backup_runs_and_reports_its_snapshots(served: Served) -> None:
    # WHEN the operator starts a backup
    answer = served.operator.post(f"/api/jobs/{JOB}/backup")

    # THEN its task ends with the new snapshot and its copy to the second destination, as `replica backup` would
    assert answer.status_code == 202, answer.text
    task, _ = _wait_for_task(served.auditor, answer.json()["id"])
    assert task["state"] == "succeeded", task
    result = task["result"]
    assert [copy["destination"] for copy in result["copies"]] == ["offsite"]
    assert all(copy["error"] is None and copy["snapshot_id"] for copy in result["copies"])
    snapshots = _ok(served.auditor.get(f"/api/jobs/{JOB}/snapshots"))
    assert result["snapshot_id"] in {s["snapshot_id"] for s in snapshots}
    run = _ok(served.auditor.get(f"/api/runs/{result['run_id']}"))
    assert (run["kind"], run["actor"], run["status"]) == ("backup", "token:oncall", "succeeded")


def test_the_console_cookie_only_works_from_the_console_own_pages(served: Served) -> None:
    # GIVEN the operator's token as the console's cookie, without a Bearer header
    token = served.operator.headers["authorization"].removeprefix("Bearer ")
    cookies = {"replica_token": token}
    url = f"{served.server.url}/api/jobs/nope/backup"

    # WHEN a page of another origin (another port of this host) posts with it, and the console's own page does
    elsewhere = [
        httpx.post(url, cookies=cookies, headers={"Sec-Fetch-Site": "same-site"}),
        httpx.post(url, cookies=cookies, headers={"Origin": "http://127.0.0.1:1"}),
        # a proxy's Basic credentials, which the browser sends along as it sends the cookie
        httpx.post(url, cookies=cookies, headers={"Sec-Fetch-Site": "same-site", "Authorization": "Basic dTpw"}),
    ]
    own = httpx.post(url, cookies=cookies, headers={"Sec-Fetch-Site": "same-origin", "Origin": served.server.url})

    # THEN the others are refused (403) and the console's own gets past the check (to the unknown job's 404)
    for answer in elsewhere:
        assert answer.status_code == 403 and "another page" in answer.json()["detail"], answer.text
    assert own.status_code == 404, own.text


def test_pages_answer_malformed_input_with_a_4xx(served: Served) -> None:
    # WHEN the pages are given times without a UTC instant, ids past any record's, and unknown records
    paths = [
        "/audit?since=0001-01-01T00:00:00%2B01:00",
        "/audit?until=9999-12-31T23:59:59-01:00",
        "/audit/export?since=not-a-time",
        "/reports/99999999999999999999",
        "/tasks/99999999999999999999",
        "/jobs/no-such-job",
        "/jobs/no-such-job/restore",
    ]
    answers = {path: served.operator.get(path) for path in paths}

    # THEN each is a 4xx with a message, never a 500
    for path, answer in answers.items():
        assert 400 <= answer.status_code < 500 and answer.json()["detail"], (path, answer.status_code, answer.text)
