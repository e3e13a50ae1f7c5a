"""The verification log, its evidence pack and notifications, end to end through the real CLI.

GIVEN a job whose events are signed, with a webhook, an SMTP mailbox (STARTTLS, AUTH) and a webhook that never
answers as notifiers, verified once, then with its primary repository damaged: the next verification fails.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from replica.audit.chain import event_hash
from replica.policy.compliance import VerifiedPoint, rpo_compliance
from tests.e2e.conftest import Deployment, assert_ok, catalog_rows, damage_largest_pack
from tests.e2e.sources import SqliteSource
from tests.support.receivers import SmtpReceiver, WebhookReceiver

JOB = "audited"
HANGING_TIMEOUT_SECONDS = 1
RTO_OBJECTIVE_SECONDS = 600  # the e2e policy's 10m
RPO_OBJECTIVE_SECONDS = 3600


@dataclass
class Audited:
    """What the module's GIVEN produced."""

    webhook: WebhookReceiver
    hanging: WebhookReceiver
    smtp: SmtpReceiver
    failing_verify_exit: int
    failing_verify_seconds: float
    failing_verify_stdout: str
    public_key: Path


@pytest.fixture(scope="module")
def audited(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    with WebhookReceiver() as webhook, WebhookReceiver() as hanging, SmtpReceiver() as smtp:
        hanging.hang = True
        key = deployment.root / "audit.key"
        assert_ok(deployment.replica("audit", "keygen", "-o", str(key)))
        deployment.secret_files |= {key}
        smtp_password_file = deployment.root / "smtp-password"
        smtp_password_file.write_text(smtp.password)
        deployment.secret_files.add(smtp_password_file)
        deployment.extra_secrets.append(smtp.password)
        deployment.environment_extra["REPLICA_AUDIT_SIGNING_KEY_FILE"] = str(key)
        source = SqliteSource(tmp_path_factory.mktemp("audited-source"))
        source.add_rows(2000)
        destinations = deployment.two_destinations("audit")
        notify = [
            {"name": "hook", "kind": "webhook", "url": webhook.url, "timeout": 5, "retries": 1},
            {
                "name": "stuck",
                "kind": "webhook",
                "url": hanging.url,
                "events": ["failure", "report"],
                "timeout": HANGING_TIMEOUT_SECONDS,
                "retries": 0,
            },
            {
                "name": "mail",
                "kind": "email",
                "host": smtp.host,
                "port": smtp.port,
                "starttls": True,
                "username": smtp.username,
                "password_file": str(smtp_password_file),
                "sender": "replica@example.com",
                "to": ["audit@example.com"],
                "include_owners": True,
                "ca_file": str(smtp.ca_file),
                "timeout": 10,
            },
        ]
        deployment.write_job(JOB, source.store_config(), destinations, notify=notify)
        assert_ok(deployment.replica("init", JOB))
        assert_ok(deployment.replica("backup", JOB))
        assert_ok(deployment.replica("verify", JOB))
        assert_ok(deployment.replica("backup", JOB))
        damage_largest_pack(deployment, destinations[0])
        started = time.monotonic()
        failing = deployment.replica("verify", JOB)
        seconds = time.monotonic() - started
        yield Audited(webhook, hanging, smtp, failing.returncode, seconds, failing.stdout, Path(f"{key}.pub"))


def test_a_failing_verification_reaches_people_with_its_report(deployment: Deployment, audited: Audited) -> None:
    # THEN the verification failed as it would without notifiers: exit 1, though one notifier never answered
    assert audited.failing_verify_exit == 1, audited.failing_verify_stdout
    assert audited.failing_verify_seconds < 60
    # AND the report exists as Markdown, HTML and JSON, with the four parts of a data-loss report
    report = deployment.replica_json("reports")[0]
    assert report["job"] == JOB
    html = Path(report["html_path"]).read_text()
    for part in ("Assessment of impact", "Data lost or at risk", "Possible resolutions", "Expected recovery time"):
        assert part in html and part in Path(report["markdown_path"]).read_text()
    assert "<script" not in html
    body = json.loads(Path(report["json_path"]).read_text())
    # AND the report cites the verification-log events of the failed verification
    verify_events = deployment.replica_json("audit", "log", "--job", JOB, "--kind", "verify")
    failed_event = next(e for e in verify_events if e["outcome"] == "failed")
    assert {"seq": failed_event["seq"], "kind": "verify", "hash": failed_event["hash"]} in body["events"]
    # AND the webhook received the report with the owners and clients of the job file
    reports_posted = [r.json() for r in audited.webhook.requests if r.json()["event"] == "report"]
    assert len(reports_posted) == 1
    document = reports_posted[0]["document"]
    assert document["report_id"] == report["id"]
    assert document["affected"]["clients"] == ["Client A", "Client B"]
    assert "oncall@example.com" in json.dumps(document)
    # AND the mailbox received it over STARTTLS with AUTH, to the configured address and the job's owner
    assert len(audited.smtp.mails) == 1
    mail = audited.smtp.mails[0]
    assert set(mail.recipients) == {"audit@example.com", "oncall@example.com"}
    assert mail.login == audited.smtp.username
    assert mail.message["Subject"].startswith("[replica] Data-loss report: job 'audited'")
    html_part = mail.message.get_body(preferencelist=("html",))
    assert html_part is not None and "Possible resolutions" in html_part.get_content()
    text_part = mail.message.get_body(preferencelist=("plain",))
    assert text_part is not None and "Client A" in text_part.get_content()
    attached = [part.get_filename() for part in mail.message.iter_attachments()]
    assert attached == [f"report-{report['id']}.json"]
    # AND every delivery, sent or not, is an event of the log; the stuck notifier's names its timeout
    deliveries = deployment.replica_json("audit", "log", "--job", JOB, "--kind", "notification")
    outcomes = {(e["figures"]["notifier"], e["outcome"]) for e in deliveries}
    assert outcomes == {("hook", "sent"), ("mail", "sent"), ("stuck", "failed")}
    stuck = next(e for e in deliveries if e["figures"]["notifier"] == "stuck")
    assert "no answer" in stuck["detail"] and f"timed out after {HANGING_TIMEOUT_SECONDS} s" in stuck["detail"]
    assert failed_event["seq"] in stuck["figures"]["about"]
    # AND no secret went out with a notification
    sent = [request.body for request in audited.webhook.requests] + [m.message.as_bytes() for m in audited.smtp.mails]
    for secret in deployment.secrets():
        assert all(secret.encode() not in payload for payload in sent)


def _tamper(deployment: Deployment, *statements: str, **parameters: Any) -> None:
    """Do what anyone with write access to the catalog could: drop the guards, then change rows."""
    if deployment.catalog.kind == "sqlite":
        guards = ["DROP TRIGGER events_no_update", "DROP TRIGGER events_no_delete"]
    else:
        guards = ["DROP TRIGGER events_append_only ON events"]
    deployment.catalog.execute(*guards, *statements, **parameters)


def test_audit_verify_names_an_edited_a_deleted_and_an_inserted_event(deployment: Deployment, audited: Audited) -> None:
    # GIVEN the untouched log: it verifies, signatures included
    intact = deployment.replica("audit", "verify", "--public-key", str(audited.public_key))
    assert_ok(intact)
    assert "verification log intact" in intact.stdout and ": valid" in intact.stdout
    head = int(intact.stdout.split("head: ", 1)[1].split(":", 1)[0])
    assert head >= 10
    middle = head // 2
    last = catalog_rows(deployment, f"SELECT recorded_at, hash, signature FROM events WHERE seq = {head}")[0]
    forged = (head + 1, last[0], "verify", JOB, "primary", None, None, "daemon@x", "succeeded", "{}", "", last[1])
    forged_row = (*forged, event_hash((*forged, "", None, None), last[2]), None, None)
    forged_values = {f"value{index}": value for index, value in enumerate(forged_row)}
    insert = f"INSERT INTO events VALUES ({', '.join(f':{name}' for name in forged_values)})"
    cases: dict[str, tuple[str, dict[str, Any], int]] = {
        # WHEN one event's outcome is edited in the database
        "edited": (f"UPDATE events SET outcome = 'forged-' || outcome WHERE seq = {middle}", {}, middle),
        # WHEN one event is deleted
        "deleted": (f"DELETE FROM events WHERE seq = {middle}", {}, middle),
        # WHEN an event is inserted with a correctly computed hash (only the signing key is missing)
        "inserted": (insert, forged_values, head + 1),
    }
    with deployment.catalog.kept_as_now() as put_back:
        for name, (statement, parameters, named) in cases.items():
            _tamper(deployment, statement, **parameters)
            result = deployment.replica("audit", "verify")
            # THEN audit verify fails and names the first bad event
            assert result.returncode == 1, (name, result.stdout, result.stderr)
            assert f"verification log tampered: event #{named}:" in result.stderr, (name, result.stderr)
            put_back()
    assert_ok(deployment.replica("audit", "verify"))
    # AND an anchor written down earlier is checked: a rewritten head is found
    head_hash = intact.stdout.split("head: ", 1)[1].split(":", 1)[1].split()[0]
    assert_ok(deployment.replica("audit", "verify", "--anchor", f"{head}:{head_hash}"))
    wrong = deployment.replica("audit", "verify", "--anchor", f"{head}:{'0' * 64}")
    assert wrong.returncode == 1 and f"event #{head}: hash differs from the anchored one" in wrong.stderr


def test_the_evidence_pack_matches_the_catalog(deployment: Deployment, audited: Audited) -> None:
    # WHEN the evidence of the whole period is exported in every format (under the deployment: scanned for secrets)
    tmp_path = deployment.root / "exports"
    for export_format in ("json", "csv", "html"):
        assert_ok(deployment.replica("audit", "export", "--format", export_format, "-o", str(tmp_path / export_format)))
    pack = json.loads((tmp_path / "json").read_text())
    summary = next(job for job in pack["jobs"] if job["job"] == JOB)
    # THEN its counts are the catalog's
    verifications = catalog_rows(
        deployment,
        f"SELECT status, details, finished_at, destination, snapshot_id FROM runs "
        f"WHERE job = '{JOB}' AND kind = 'verify' AND status IN ('succeeded', 'failed') ORDER BY id",
    )
    passed = [row for row in verifications if row[0] == "succeeded"]
    assert summary["verifications"] == {
        "performed": len(verifications),
        "passed": len(passed),
        "failed": len(verifications) - len(passed),
        "pass_rate": len(passed) / len(verifications),
    }
    assert 0 < summary["verifications"]["pass_rate"] < 1
    backups = catalog_rows(deployment, f"SELECT count(*) FROM runs WHERE job = '{JOB}' AND kind = 'backup'")[0][0]
    assert summary["backups"] == {"performed": backups, "succeeded": backups}
    # AND its RTO compliance is the catalog's measured RTOs against the policy's objective
    rtos = [json.loads(row[1])["rto_seconds"] for row in passed]
    assert summary["rto"]["measured"] == len(rtos)
    assert summary["rto"]["within_objective"] == sum(rto <= RTO_OBJECTIVE_SECONDS for rto in rtos)
    assert summary["rto"]["worst_seconds"] == pytest.approx(max(rtos))
    # AND its RPO compliance is what the catalog's verified recovery points give over the period
    points = []
    for _status, _details, finished_at, destination, snapshot_id in passed:
        taken_at = catalog_rows(
            deployment,
            f"SELECT taken_at FROM snapshots WHERE job = '{JOB}' AND destination = '{destination}' "
            f"AND snapshot_id = '{snapshot_id}'",
        )[0][0]
        points.append(VerifiedPoint(_utc(finished_at), _utc(taken_at)))
    first_job_event = next(e for e in pack["events"] if e["job"] == JOB)
    start = datetime.fromisoformat(first_job_event["recorded_at"])
    expected = rpo_compliance(points, RPO_OBJECTIVE_SECONDS, start, datetime.fromisoformat(pack["period"]["until"]))
    assert summary["rpo"]["compliance"] == pytest.approx(expected.compliance, abs=1e-3)
    assert summary["rpo_objective_seconds"] == RPO_OBJECTIVE_SECONDS
    # AND the chain head is the log's, and the pack verifies away from the catalog with the published key
    verify = deployment.replica(
        "audit", "verify", "--export", str(tmp_path / "json"), "--public-key", str(audited.public_key)
    )
    assert_ok(verify)
    assert f"head: {pack['chain']['head_seq']}:{pack['chain']['head_hash']}" in verify.stdout
    assert pack["chain"]["verified"] is True and pack["chain"]["head_seq"] == pack["chain"]["log_head_seq"]
    # AND the CSV and HTML renderings carry the same events and head
    with (tmp_path / "csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(pack["events"])
    assert pack["chain"]["head_hash"] in (tmp_path / "html").read_text()
    # AND an edited pack is caught
    pack["events"][1]["outcome"] = "forged"
    (tmp_path / "edited.json").write_text(json.dumps(pack))
    edited = deployment.replica("audit", "verify", "--export", str(tmp_path / "edited.json"))
    assert edited.returncode == 1 and f"event #{pack['events'][1]['seq']}:" in edited.stderr


def test_no_secret_is_in_any_log_line_event_report_or_export(deployment: Deployment, audited: Audited) -> None:
    # GIVEN everything above (the CLI's output, the catalog, the reports, the exports under the deployment)
    # THEN neither the repository password, the S3 secret key, the PostgreSQL password nor the SMTP password appears
    # anywhere
    assert len(deployment.secrets()) == 4
    assert deployment.leaked_secrets() == []


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # the catalog stores UTC
