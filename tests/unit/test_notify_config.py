"""Notifier configuration: one model per kind behind `kind`, secrets named never inlined, every mistake reported
in words a user can act on (and never repeating a value that may be a secret)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from replica.config.notify import (
    NOTIFY_EVENTS,
    EmailNotifierConfig,
    NotifierConfig,
    NotifierConfigs,
    PagerdutyNotifierConfig,
    SlackNotifierConfig,
    WebhookNotifierConfig,
)

NOTIFIER = TypeAdapter(NotifierConfig)
NOTIFIERS = TypeAdapter(NotifierConfigs)
SECRET_URL = "ftp://hooks.example.com/services/T000/B000/XXXXsecretXXXX"

EXAMPLES = """
- name: audit-hook
  kind: webhook
  url_env: REPLICA_AUDIT_WEBHOOK_URL
  events: [failure, breach, recovery, report]
  timeout: 10
  retries: 2
- name: ops-slack
  kind: slack
  url_file: /etc/replica/slack.url
  events: [failure, breach, recovery]
- name: dba-mail
  kind: email
  host: smtp.acme.example
  port: 587
  starttls: true
  username: replica@acme.example
  password_env: REPLICA_SMTP_PASSWORD
  sender: replica@acme.example
  to: [oncall@acme.example]
  include_owners: true
  ca_file: /etc/replica/smtp-ca.pem
- name: pager
  kind: pagerduty
  routing_key_env: REPLICA_PAGERDUTY_KEY
  events: [failure, breach, recovery]
"""


def problems(data: Any) -> list[str]:
    """Return every validation problem of one notifier as `location: message`; none when it is valid."""
    try:
        NOTIFIER.validate_python(data)
    except ValidationError as error:
        return [
            f"{'.'.join(map(str, problem['loc']))}: {problem['msg'].removeprefix('Value error, ')}"
            for problem in error.errors()
        ]
    return []


def webhook(**fields: Any) -> dict[str, Any]:
    return {"name": "hook", "kind": "webhook", **fields}


def email(**fields: Any) -> dict[str, Any]:
    base = {"name": "mail", "kind": "email", "host": "smtp.acme.example", "sender": "r@acme.example"}
    return {**base, "to": ["ops@acme.example"], **fields}


def test_the_documented_examples_are_valid_and_each_gets_its_kind() -> None:
    notifiers = NOTIFIERS.validate_python(yaml.safe_load(EXAMPLES))
    kinds = [type(notifier) for notifier in notifiers]
    assert kinds == [WebhookNotifierConfig, SlackNotifierConfig, EmailNotifierConfig, PagerdutyNotifierConfig]


def test_defaults_live_on_the_fields() -> None:
    hook = NOTIFIER.validate_python(webhook(url="https://hooks.example.com/x"))
    assert (hook.events, hook.timeout, hook.retries) == (NOTIFY_EVENTS, 10.0, 2)
    mail = NOTIFIER.validate_python(email())
    assert isinstance(mail, EmailNotifierConfig)
    assert (mail.port, mail.starttls, mail.ssl, mail.include_owners) == (587, True, False, False)
    pager = NOTIFIER.validate_python({"name": "p", "kind": "pagerduty", "routing_key_env": "KEY"})
    assert "report" not in pager.events  # nobody is paged for a scheduled report unless asked


def test_an_unknown_kind_lists_the_valid_ones() -> None:
    [problem] = problems({"name": "teams", "kind": "msteams", "url": "https://x.example"})
    assert "'msteams'" in problem
    for kind in ("webhook", "slack", "email", "pagerduty"):
        assert kind in problem


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({"url": "https://hooks.example.com/x", "url_env": "HOOK_URL"}, "got url and url_env"),
        ({"url_env": "HOOK_URL", "url_file": "/etc/replica/hook.url"}, "got url_env and url_file"),
        ({}, "give exactly one of url, url_env, url_file"),
    ],
)
def test_a_url_comes_from_exactly_one_place(sources: dict[str, str], expected: str) -> None:
    [problem] = problems(webhook(**sources))
    assert expected in problem


def test_a_bad_url_is_refused_without_repeating_it() -> None:
    [problem] = problems({"name": "chat", "kind": "slack", "url": SECRET_URL})
    assert problem == "slack.url: must be an http(s) URL"
    assert "secret" not in problem


def test_a_url_pasted_into_url_env_is_refused_without_repeating_it() -> None:
    [problem] = problems(webhook(url_env="https://hooks.example.com/services/XXXXsecretXXXX"))
    assert problem.startswith("webhook.url_env: String should match pattern")
    assert "secret" not in problem


def test_events_may_not_be_empty_nor_unknown() -> None:
    [problem] = problems(webhook(url="https://h.example/x", events=[]))
    assert "name at least one event" in problem
    [problem] = problems(webhook(url="https://h.example/x", events=["failure", "success"]))
    assert "events.1" in problem and "'failure'" in problem


def test_repeated_events_are_kept_once() -> None:
    hook = NOTIFIER.validate_python(webhook(url="https://h.example/x", events=["failure", "breach", "failure"]))
    assert hook.events == ("failure", "breach")


@pytest.mark.parametrize(
    ("field", "value"), [("timeout", 0), ("timeout", 121), ("retries", -1), ("retries", 11), ("name", "Ops Slack")]
)
def test_limits_are_checked(field: str, value: object) -> None:
    [problem] = problems(webhook(url="https://h.example/x", **{field: value}))
    assert problem.startswith(f"webhook.{field}:")


def test_unknown_keys_are_errors() -> None:
    [problem] = problems(webhook(url="https://h.example/x", headers={"Authorization": "x"}))
    assert problem == "webhook.headers: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"username": "replica"}, "username needs password_env or password_file"),
        ({"password_env": "SMTP_PASSWORD"}, "password_env or password_file needs a username"),
        (
            {"username": "r", "password_env": "SMTP_PASSWORD", "password_file": "/etc/p"},
            "give password_env or password_file, not both",
        ),
        ({"ssl": True, "starttls": True}, "give ssl (implicit TLS) or starttls, not both"),
        ({"starttls": False, "username": "r", "password_env": "P"}, "authentication needs starttls or ssl"),
        ({"to": []}, "name at least one recipient"),
        ({"to": ["ops@acme.example", "not an address"]}, "must be an email address"),
        ({"sender": "replica@acme.example\r\nBcc: x@evil.example"}, "must be an email address"),
    ],
)
def test_email_settings_must_be_consistent(fields: dict[str, Any], expected: str) -> None:
    [problem] = problems(email(**fields))
    assert expected in problem


def test_implicit_tls_alone_turns_starttls_off_and_uses_port_465() -> None:
    mail = NOTIFIER.validate_python(email(ssl=True))
    assert isinstance(mail, EmailNotifierConfig)
    assert (mail.ssl, mail.starttls, mail.port) == (True, False, 465)
    explicit = NOTIFIER.validate_python(email(ssl=True, port=2465))
    assert isinstance(explicit, EmailNotifierConfig)
    assert explicit.port == 2465


def test_a_pagerduty_routing_key_is_never_inline() -> None:
    found = problems({"name": "p", "kind": "pagerduty", "routing_key": "R0UTINGKEY"})
    assert found == ["pagerduty.routing_key: Extra inputs are not permitted"]
    [problem] = problems({"name": "p", "kind": "pagerduty"})
    assert "give exactly one of routing_key_env, routing_key_file" in problem


def test_notifier_names_are_unique_in_a_list() -> None:
    with pytest.raises(ValidationError, match="notifier names must be unique; repeated: ops"):
        NOTIFIERS.validate_python(
            [webhook(name="ops", url="https://a.example/x"), webhook(name="ops", url="https://b.example/x")]
        )
