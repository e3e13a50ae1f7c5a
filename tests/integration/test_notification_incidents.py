"""Which events become which notifications: runs recorded with the Catalog API on a real SQLite catalog, a real
webhook receiver on 127.0.0.1, no restic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from replica.actions.context import Context
from replica.actions.notifications import ACTION_KINDS, notify_new_events
from replica.settings import Settings
from tests.support.receivers import WebhookReceiver

POLICY = (
    "name: tight\nrpo: 1h\nrto: 15m\nnotify:\n  - {name: policy-hook, kind: webhook, url: 'URL', events: [failure]}\n"
)
JOB = """\
name: billing
store: {kind: directory, path: /srv/billing}
destinations:
  - {name: primary, bucket: acme-primary}
  - {name: offsite, bucket: acme-offsite}
policy: tight
owners: [dba@acme.example]
clients: [ACME Retail]
notify:
  - {name: job-hook, kind: webhook, url: 'URL', events: [failure, recovery]}
"""


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def context(tmp_path: Path, webhook: WebhookReceiver) -> Context:
    jobs, policies = tmp_path / "jobs", tmp_path / "policies"
    jobs.mkdir()
    policies.mkdir()
    (policies / "tight.yaml").write_text(POLICY.replace("URL", webhook.url_for("/policy")))
    (jobs / "billing.yaml").write_text(JOB.replace("URL", webhook.url_for("/job")))
    settings = Settings(
        state_dir=tmp_path / "state", jobs_dir=jobs, policies_dir=policies, restic_password=SecretStr("x")
    )
    return Context(settings)


def test_a_failed_backup_goes_to_the_job_and_policy_notifiers_and_its_recovery_only_where_wanted(
    context: Context, webhook: WebhookReceiver
) -> None:
    catalog = context.catalog
    failed = catalog.start_run("billing", "backup", phase="dump", destination="primary")
    catalog.finish_run(failed, succeeded=False, error="pg_dump: connection refused")

    first = notify_new_events(context, "billing", 0, ACTION_KINDS)

    assert sorted((d.notifier, d.event, d.sent) for d in first) == [
        ("job-hook", "failure", True),
        ("policy-hook", "failure", True),
    ]
    failure = webhook.requests[0].json()
    assert failure["title"] == "FAILED: backup of job 'billing' to 'primary'"
    assert "pg_dump: connection refused" in failure["text"]
    assert failure["fields"]["owners"] == "dba@acme.example" and failure["fields"]["clients"] == "ACME Retail"

    head = catalog.events.head_seq()
    succeeded = catalog.start_run("billing", "backup", phase="dump", destination="primary")
    catalog.finish_run(succeeded, succeeded=True, snapshot_id="abc")
    second = notify_new_events(context, "billing", head, ACTION_KINDS)

    # THEN only the notifier that wants recoveries hears that it works again
    assert [(d.notifier, d.event) for d in second] == [("job-hook", "recovery")]
    assert webhook.requests[-1].path == "/job" and webhook.requests[-1].json()["severity"] == "info"
    # AND a third success is no news
    assert notify_new_events(context, "billing", catalog.events.head_seq() - 1, ACTION_KINDS) == []
    # AND every delivery is in the log, naming the event it was about
    deliveries = catalog.events.events(job="billing", kinds=["notification"])
    assert [event.outcome for event in deliveries] == ["sent", "sent", "sent"]


def test_a_notifier_whose_secret_is_missing_fails_soft_and_is_logged(context: Context) -> None:
    job_file = context.settings.jobs_dir / "billing.yaml"
    job_file.write_text(JOB.replace("url: 'URL'", "url_env: REPLICA_TEST_UNSET_URL"))
    fresh = context.reloaded()
    run = fresh.catalog.start_run("billing", "verify", phase="check", destination="primary")
    fresh.catalog.finish_run(run, succeeded=False, error="critical checks failed: repository")

    deliveries = notify_new_events(fresh, "billing", 0, ACTION_KINDS)

    job_delivery = next(d for d in deliveries if d.notifier == "job-hook")
    assert not job_delivery.sent and "REPLICA_TEST_UNSET_URL" in (job_delivery.error or "")
    logged = fresh.catalog.events.events(job="billing", kinds=["notification"])
    assert {(e.outcome, "REPLICA_TEST_UNSET_URL" in e.detail) for e in logged} == {("failed", True), ("sent", False)}
