"""Secrets reach restic and the dump tools only through environment variables or files, and no URL or DSN shows its
credentials: canary secrets planted where replica takes credentials are looked for everywhere it writes or prints.

Every e2e deployment is such a trap (tests/e2e/conftest.py): its repository password, S3 secret key and
PostgreSQL password are canaries, every program replica starts runs behind a shim that records its command line,
and at teardown no canary may be in a command line, an output, a daemon log or a file under the deployment. So
the backups, verifications and restores of every store kind (test_protect_each_store), the faults of test_bad_input,
the reports of test_corruption_and_reports and the daemons of test_daemon are all swept. This module adds what
they do not plant: a webhook URL with `user:password@`, a wrong repository password, credentials in a settings
endpoint and a connection string in a job file, then gathers every record replica keeps (status, runs, reports,
the verification log, its evidence export, a dump of the catalog) for the sweep. (There is no HTTP API yet.)
"""

from __future__ import annotations

import base64
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, assert_ok
from tests.e2e.sources import DirectorySource
from tests.support.receivers import WebhookReceiver, free_port


def canary(what: str) -> str:
    """Return a secret no one could print by chance, naming what it stands for."""
    return f"canary-{what}-{secrets.token_hex(8)}"


WEBHOOK_PASSWORD = canary("webhook")
WRONG_PASSWORD = canary("wrongpass")
ENDPOINT_PASSWORD = canary("endpoint")
DSN_PASSWORD = canary("dsn")
PLANTED = (WEBHOOK_PASSWORD, WRONG_PASSWORD, ENDPOINT_PASSWORD, DSN_PASSWORD)


@pytest.fixture(scope="module")
def webhook(deployment: Deployment) -> Iterator[WebhookReceiver]:
    """A webhook receiver, named to replica by a URL with credentials in it (in an environment variable)."""
    with WebhookReceiver() as receiver:
        deployment.extra_secrets.extend(PLANTED)
        deployment.environment_extra["CANARY_WEBHOOK_URL"] = (
            receiver.url.replace("://", f"://alerts:{WEBHOOK_PASSWORD}@") + "/hook"
        )
        deployment.write_policy(
            "canary", notify=[{"name": "hook", "kind": "webhook", "url_env": "CANARY_WEBHOOK_URL", "retries": 0}]
        )
        yield receiver


def test_no_planted_secret_reaches_a_command_line_an_output_a_record_or_a_notification(
    deployment: Deployment, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    # GIVEN a directory job under the webhook's policy, its primary repository created (restic directly: a second
    # repository and replica's init would cost seconds that prove nothing more here)
    source = DirectorySource(tmp_path)
    destinations = deployment.two_destinations("canary")
    deployment.write_job("canary-dir", source.store_config(), destinations, "canary")
    environment = deployment.environment()
    primary = f"s3:{deployment.s3.endpoint_url}/{destinations[0]['bucket']}/{destinations[0]['prefix']}"
    created = subprocess.run(
        ["restic", "init"],
        env={**environment, "RESTIC_REPOSITORY": primary, "RESTIC_PASSWORD": deployment.password_file.read_text()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr

    # WHEN things go wrong: a wrong repository password, an endpoint that refuses connections, an endpoint with
    # credentials in the settings, a connection string with a password as a job's database
    wrong = deployment.root / "wrong-password"
    wrong.write_text(WRONG_PASSWORD)
    deployment.secret_files.add(wrong)
    wrong_password = deployment.replica(
        "--debug", "backup", "canary-dir", env=deployment.environment(REPLICA_RESTIC_PASSWORD_FILE=str(wrong))
    )
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = deployment.replica("backup", "canary-dir", env=deployment.environment(REPLICA_S3_ENDPOINT_URL=closed))
    endpoint = f"https://key:{ENDPOINT_PASSWORD}@s3.example"
    bad_settings = deployment.replica("status", env=deployment.environment(REPLICA_S3_ENDPOINT_URL=endpoint))
    bad_job = deployment.root / "jobs" / "canary-dsn.yaml"
    deployment.write_job(
        "canary-dsn",
        {"kind": "postgresql", "database": f"postgresql://backup:{DSN_PASSWORD}@db1/billing"},
        deployment.two_destinations("dsn"),
    )
    deployment.secret_files.add(bad_job)  # the one file that holds a planted secret on purpose
    bad_config = deployment.replica("config", "validate")
    bad_job.unlink()

    # THEN each fails with its own exit code and says why, without the secret
    assert wrong_password.returncode != 0 and "wrong repository password" in wrong_password.stderr
    assert unreachable.returncode == 3, unreachable.stderr
    assert bad_settings.returncode == 2 and "must not carry credentials" in bad_settings.stderr
    assert bad_config.returncode == 2 and "canary-dsn.yaml:" in bad_config.stderr
    assert "not a connection string" in bad_config.stderr

    # AND the webhook heard the failed backups, its credentials sent as a Basic header, never in a body
    basic = "Basic " + base64.b64encode(f"alerts:{WEBHOOK_PASSWORD}".encode()).decode()
    assert len(webhook.requests) >= 2, "the failed backups were not notified"
    assert {request.headers.get("Authorization") for request in webhook.requests} == {basic}
    assert [r.path for r in webhook.requests if any(s.encode() in r.body for s in deployment.secrets())] == []

    # AND restic ran behind the recording shims, with no secret on any command line
    assert "restic" in deployment.recorders.programs()
    assert [line for line in deployment.recorders.lines() if any(s in line for s in deployment.secrets())] == []

    # AND no secret is in any record replica keeps: status, runs, reports, the verification log and its export,
    # and the catalog itself, as a file and as a dump (the teardown sweeps all of them again)
    for arguments in (("status", "--json"), ("runs", "--json")):
        assert_ok(deployment.replica(*arguments))
    assert_ok(deployment.replica("audit", "export", "--format", "json", "-o", str(deployment.root / "evidence.json")))
    (deployment.root / "catalog-dump.sql").write_text(deployment.catalog.dump())
    assert deployment.leaked_secrets() == []
