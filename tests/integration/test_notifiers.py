"""Every notifier kind against a real receiver on 127.0.0.1: the payload each sends, retries only where they can
help, a timeout that holds, failing soft whatever happens, and secrets never in a Delivery or a log line."""

from __future__ import annotations

import base64
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from replica import __version__
from replica.config.notify import NotifierConfig
from replica.notify import deliver as deliver_module
from replica.notify.base import Attachment, Delivery, Notification
from replica.notify.deliver import deliver
from tests.support.receivers import SmtpReceiver, WebhookReceiver, free_port

NOTIFIER = TypeAdapter(NotifierConfig)
TOKEN = "T0K3N-9f2c41d7"  # stands for the secret part of a webhook URL
ROUTING_KEY = "R0UT1NG-e93b0c55aa"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours proxy variables; the notifications must reach the local receivers directly.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Any:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    """The backoff delays deliver asked for; recorded instead of slept, to keep the tests fast."""
    return []


def notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "event": "failure",
        "job": "billing",
        "title": "billing: backup failed",
        "text": "**restic** failed on destination `primary`: <exit 1>",
        "severity": "critical",
        "fields": {"destination": "primary", "owners": "dba@acme.example", "window at risk": "3h12m"},
        "document": {"format": 1, "job": "billing", "objectives": {"rpo": "1h"}},
        "dedup_key": "replica/billing/backup",
    }
    return Notification(**{**values, **overrides})


def configure(**fields: Any) -> NotifierConfig:
    return NOTIFIER.validate_python({"name": "it", **fields})


def send(note: Notification, *configs: NotifierConfig, sleeps: list[float] | None = None) -> list[Delivery]:
    recorded = sleeps if sleeps is not None else []
    return deliver(note, configs, sleep=recorded.append)


def test_webhook_posts_the_documented_payload(receiver: WebhookReceiver) -> None:
    note = notification()
    [delivery] = send(note, configure(kind="webhook", url=receiver.url_for(f"/hooks/{TOKEN}")))
    assert (delivery.sent, delivery.attempts, delivery.error, delivery.kind) == (True, 1, None, "webhook")
    [request] = receiver.requests
    assert request.path == f"/hooks/{TOKEN}"
    assert request.headers["User-Agent"] == f"replica/{__version__}"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json() == {
        "format": 1,
        "source": "replica",
        "event": "failure",
        "job": "billing",
        "severity": "critical",
        "title": "billing: backup failed",
        "text": note.text,
        "fields": note.fields,
        "document": note.document,
    }


def test_slack_gets_blocks_within_its_limits(receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_IT_SLACK_URL", receiver.url_for(f"/services/{TOKEN}"))
    long_text = "**Data at risk** for <ACME> & co\n" + "x" * 5000
    note = notification(text=long_text, fields={f"fact {n}": str(n) for n in range(12)})
    [delivery] = send(note, configure(kind="slack", url_env="REPLICA_IT_SLACK_URL"))
    assert delivery.sent
    payload = receiver.requests[0].json()
    assert payload["text"] == "billing: backup failed"
    header, context, section, *facts = payload["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "billing: backup failed", "emoji": True}}
    assert "failure" in context["elements"][0]["text"] and "job billing" in context["elements"][0]["text"]
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith("*Data at risk* for &lt;ACME&gt; &amp; co\n")
    assert len(section["text"]["text"]) == 3000 and section["text"]["text"].endswith("…")
    assert [len(block["fields"]) for block in facts] == [10, 2]  # Slack takes at most 10 fields per section
    assert facts[0]["fields"][0] == {"type": "mrkdwn", "text": "*fact 0*\n0"}


def test_pagerduty_triggers_then_resolves_with_one_dedup_key(receiver: WebhookReceiver, tmp_path: Path) -> None:
    receiver.status, receiver.answer = 202, b'{"status":"success","message":"Event processed"}'
    key_file = tmp_path / "pagerduty.key"
    key_file.write_text(ROUTING_KEY + "\n")
    pager = configure(kind="pagerduty", routing_key_file=str(key_file), url=receiver.url_for("/v2/enqueue"))
    deliveries = send(notification(title="billing: RPO breached " + "!" * 2000, severity="warning"), pager)
    deliveries += send(notification(event="recovery", severity="info", title="billing: back within RPO"), pager)
    assert [d.sent for d in deliveries] == [True, True]
    trigger, resolve = (request.json() for request in receiver.requests)
    assert trigger == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "replica/billing/backup",
        "payload": {
            "summary": ("billing: RPO breached " + "!" * 2000)[:1024],
            "source": "replica",
            "severity": "warning",
            "component": "billing",
            "class": "failure",
            "custom_details": notification().fields,
        },
    }
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "replica/billing/backup"}
    assert ROUTING_KEY not in repr(deliveries)


def test_a_server_error_is_retried_with_a_doubling_backoff(receiver: WebhookReceiver, sleeps: list[float]) -> None:
    receiver.respond_with(500, 503, 429)
    hook = configure(kind="webhook", url=receiver.url_for("/hook"), retries=3)
    [delivery] = send(notification(), hook, sleeps=sleeps)
    assert (delivery.sent, delivery.attempts) == (True, 4)
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(receiver.requests) == 4


def test_one_500_then_success_takes_two_attempts(receiver: WebhookReceiver) -> None:
    receiver.respond_with(500)
    [delivery] = send(notification(), configure(kind="slack", url=receiver.url_for("/services/x")))
    assert (delivery.sent, delivery.attempts, delivery.error) == (True, 2, None)


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_client_error_is_not_retried(receiver: WebhookReceiver, status: int, sleeps: list[float]) -> None:
    receiver.respond_with(status)
    [delivery] = send(notification(), configure(kind="webhook", url=receiver.url_for("/hook")), sleeps=sleeps)
    assert (delivery.sent, delivery.attempts, sleeps) == (False, 1, [])
    # A bare error code in the answer (Slack's "no_service") is repeated: it says what to fix.
    assert delivery.error == f"{receiver.url} answered HTTP {status} (server_said_no)"


def test_a_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    receiver.respond_with(302)
    [delivery] = send(notification(), configure(kind="webhook", url=receiver.url_for("/hook")))
    assert (delivery.sent, delivery.attempts) == (False, 1)
    assert "HTTP 302 (a redirect, not followed" in (delivery.error or "")
    assert len(receiver.requests) == 1


def test_a_receiver_that_never_answers_costs_the_timeout_not_the_run(receiver: WebhookReceiver) -> None:
    receiver.hang = True
    hook = configure(kind="webhook", url=receiver.url_for("/hook"), timeout=0.5, retries=1)
    started = time.monotonic()
    [delivery] = deliver(notification(), [hook])  # the real sleep: the whole bill is measured
    elapsed = time.monotonic() - started
    assert (delivery.sent, delivery.attempts) == (False, 2)
    assert "timed out after 0.5 s" in (delivery.error or "")
    assert elapsed < 2.0 and delivery.duration_seconds < 2.0


def test_a_refused_connection_is_retried_then_given_up(sleeps: list[float]) -> None:
    port = free_port()
    hook = configure(kind="webhook", url=f"http://127.0.0.1:{port}/hooks/{TOKEN}", retries=2)
    [delivery] = send(notification(), hook, sleeps=sleeps)
    assert (delivery.sent, delivery.attempts, sleeps) == (False, 3, [0.5, 1.0])
    assert delivery.error == f"cannot reach http://127.0.0.1:{port}: ConnectionRefusedError: Connection refused"


def test_the_secret_part_of_a_url_is_never_in_a_delivery_or_a_log(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="replica")
    receiver.respond_with(500, 500, 500)
    [delivery] = send(notification(), configure(kind="slack", url=receiver.url_for(f"/services/{TOKEN}?t={TOKEN}")))
    assert not delivery.sent and delivery.error == f"{receiver.url} answered HTTP 500 (server_said_no)"
    assert TOKEN not in repr(delivery) and TOKEN not in caplog.text
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "not sent to it (slack) after 3 attempt(s)" in warning.getMessage()


def test_credentials_in_a_webhook_url_travel_as_basic_auth_and_never_show(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # urllib alone would take `user:password@127.0.0.1` for a host name and ask DNS for it, password included.
    caplog.set_level(logging.DEBUG, logger="replica")
    hook = configure(kind="webhook", url=receiver.url.replace("://", f"://alerts:{TOKEN}@") + "/hook")

    [delivery] = send(notification(), hook)

    assert delivery.sent
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"alerts:{TOKEN}".encode()).decode()
    receiver.respond_with(500, 500, 500)
    [failed] = send(notification(), hook)
    assert (
        failed.error
        == f"http://alerts:***@127.0.0.1:{receiver.url.rsplit(':', 1)[1]} answered HTTP 500 (server_said_no)"
    )
    assert TOKEN not in repr(failed) and TOKEN not in caplog.text


def test_a_missing_secret_fails_that_delivery_only(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("REPLICA_IT_MISSING_KEY", raising=False)
    pager = configure(name="pager", kind="pagerduty", routing_key_env="REPLICA_IT_MISSING_KEY")
    hook = configure(name="hook", kind="webhook", url=receiver.url_for("/hook"))
    muted = configure(name="muted", kind="webhook", url=receiver.url_for("/muted"), events=["report"])
    broken, sent = send(notification(), pager, hook, muted)
    assert (broken.notifier, broken.sent, broken.attempts) == ("pager", False, 0)
    assert (
        broken.error
        == "notifier 'pager' (pagerduty) routing key: environment variable REPLICA_IT_MISSING_KEY is not set or empty"
    )
    assert (sent.notifier, sent.sent) == ("hook", True)
    assert [request.path for request in receiver.requests] == ["/hook"]  # "muted" wants reports only
    assert "REPLICA_IT_MISSING_KEY" in caplog.text


def test_a_notifier_that_crashes_is_a_failed_delivery(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Crashing:
        kind, name = "webhook", "crash"

        def __init__(self, config: Any) -> None:
            pass

        def send(self, notification: Notification, timeout_seconds: float) -> None:
            raise RuntimeError(f"cannot post to https://hooks.example.com/{TOKEN}")

    monkeypatch.setitem(deliver_module.NOTIFIER_KINDS, "webhook", Crashing)
    [delivery] = send(notification(), configure(kind="webhook", url=receiver.url_for("/hook")))
    assert (delivery.sent, delivery.attempts, delivery.error) == (False, 1, "unexpected RuntimeError")
    assert TOKEN not in caplog.text


def email_config(smtp: SmtpReceiver, **fields: Any) -> NotifierConfig:
    values = {
        "kind": "email",
        "host": smtp.host,
        "port": smtp.port,
        "username": smtp.username,
        "password_env": "REPLICA_IT_SMTP_PASSWORD",
        "sender": "replica@acme.example",
        "to": ["oncall@acme.example"],
        "ca_file": str(smtp.ca_file),
    }
    return configure(**{**values, **fields})


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_email_over_starttls_with_authentication(mechanism: str, monkeypatch: pytest.MonkeyPatch) -> None:
    note = notification(
        html="<html><body><h1>Data-loss report</h1></body></html>",
        attachments=(Attachment("report.json", "application/json", b'{"format": 1}'),),
        recipients=("dba@acme.example", "Team Billing", "OnCall@acme.example"),
    )
    with SmtpReceiver(mechanisms=(mechanism,)) as smtp:
        monkeypatch.setenv("REPLICA_IT_SMTP_PASSWORD", smtp.password)
        [delivery] = send(note, email_config(smtp, include_owners=True))
    assert (delivery.sent, delivery.attempts, delivery.kind) == (True, 1, "email")
    [mail] = smtp.mails
    assert (mail.login, mail.mechanism) == (smtp.username, mechanism)
    assert mail.mail_from == "replica@acme.example"
    # Owners that are addresses join `to`; "Team Billing" is not one; the same address is sent to once.
    assert mail.recipients == ("oncall@acme.example", "dba@acme.example")
    message = mail.message
    assert message["Subject"] == "[replica] billing: backup failed"
    assert message["To"] == "oncall@acme.example, dba@acme.example"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert note.text in plain.get_content() and "window at risk: 3h12m" in plain.get_content()
    assert "<h1>Data-loss report</h1>" in html.get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report.json"
    assert attachment.get_content_type() == "application/json"
    assert attachment.get_content() == b'{"format": 1}'


def test_email_over_implicit_tls_with_a_password_file(tmp_path: Path) -> None:
    with SmtpReceiver(implicit_tls=True) as smtp:
        password_file = tmp_path / "smtp.password"
        password_file.write_text(smtp.password + "\n")
        mail = email_config(smtp, ssl=True, password_env=None, password_file=str(password_file))
        [delivery] = send(notification(), mail)
    assert delivery.sent
    assert [m.login for m in smtp.mails] == [smtp.username]


def test_a_wrong_smtp_password_fails_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.DEBUG, logger="replica")
    wrong = "wr0ng-Pa55-e5c1"
    monkeypatch.setenv("REPLICA_IT_SMTP_PASSWORD", wrong)
    with SmtpReceiver() as smtp:
        [delivery] = send(notification(), email_config(smtp), sleeps=sleeps)
    assert (delivery.sent, delivery.attempts, sleeps) == (False, 1, [])  # a refused password stays refused
    assert delivery.error == f"{smtp.host}:{smtp.port}: authentication refused (SMTP 535)"
    assert smtp.failed_logins >= 1 and smtp.mails == []  # smtplib tries each mechanism offered
    for secret in (wrong, smtp.password):
        assert secret not in repr(delivery) and secret not in caplog.text


def test_an_untrusted_certificate_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpReceiver() as smtp:
        monkeypatch.setenv("REPLICA_IT_SMTP_PASSWORD", smtp.password)
        [delivery] = send(notification(), email_config(smtp, ca_file=None))  # system CAs only
    assert (delivery.sent, delivery.attempts) == (False, 1)
    assert "certificate not trusted" in (delivery.error or "")
    assert smtp.mails == []


def test_an_smtp_server_that_is_not_there_is_retried(sleeps: list[float]) -> None:
    port = free_port()  # nothing listens there
    mail = configure(kind="email", host="127.0.0.1", port=port, sender="r@acme.example", to=["o@acme.example"])
    [delivery] = send(notification(), mail, sleeps=sleeps)
    assert (delivery.sent, delivery.attempts, sleeps) == (False, 3, [0.5, 1.0])
    assert delivery.error == f"cannot reach 127.0.0.1:{port}: ConnectionRefusedError: Connection refused"


def test_an_smtp_server_that_never_greets_times_out(sleeps: list[float]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections (backlog), never says a word
        port = silent.getsockname()[1]
        mail = configure(
            kind="email", host="127.0.0.1", port=port, sender="r@acme.example", to=["o@acme.example"], timeout=0.3
        )
        [delivery] = send(notification(), mail, sleeps=sleeps)
    assert (delivery.sent, delivery.attempts) == (False, 3)
    assert delivery.error == f"127.0.0.1:{port}: timed out after 0.3 s"
