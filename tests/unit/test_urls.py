"""URLs and DSNs as replica shows them (credentials redacted) and the S3 endpoints it accepts."""

from __future__ import annotations

import base64

import pytest

from replica.catalog.records import first_line
from replica.urls import endpoint_problem, is_loopback_host, redact_text, redact_url, without_user_info


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://replica:pg-s3cr3t@db1:5433/replica?sslmode=require",
            "postgresql+psycopg://replica:***@db1:5433/replica",
        ),
        ("https://alerts:s3cr3t@hooks.example/a/b?token=s3cr3t#s3cr3t", "https://alerts:***@hooks.example/a/b"),
        ("https://s3cr3t@hooks.example/x", "https://***@hooks.example/x"),
        ("sqlite:////var/lib/replica/catalog.sqlite3", "sqlite:////var/lib/replica/catalog.sqlite3"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("no scheme s3cr3t", "(invalid URL)"),
        ("https://host:s3cr3t/", "(invalid URL)"),
    ],
)
def test_redact_url_hides_passwords_and_queries(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cr3t" not in redact_url(url, keep_path=False)


def test_redact_url_without_the_path_keeps_only_scheme_and_host() -> None:
    assert redact_url("https://hc-ping.com/5f1c-s3cr3t", keep_path=False) == "https://hc-ping.com"


def test_redact_text_hides_every_url_user_info_and_dsn_password() -> None:
    text = (
        "cannot reach https://bob:s3cr3t@hooks.example/x; catalog postgresql://replica:s3cr3t@db/replica; "
        "conninfo host=db1 password=s3cr3t dbname=x; quoted password='s3 cr3t'"
    )

    redacted = redact_text(text)

    assert "s3cr3t" not in redacted and "cr3t" not in redacted
    assert "https://***@hooks.example/x" in redacted and "postgresql://***@db/replica" in redacted
    assert "host=db1 password=*** dbname=x" in redacted
    assert redact_text("plain message, nothing to hide") == "plain message, nothing to hide"
    # a raw `@` in the password: all of the user info goes, not just what precedes its first `@`
    assert redact_text("dsn postgresql://app:p@ss@db/x failed") == "dsn postgresql://***@db/x failed"
    assert redact_text("(host=db password=hunter2)") == "(host=db password=***)"


def test_every_recorded_run_error_is_redacted() -> None:
    assert first_line("pg_dump failed: postgresql://backup:s3cr3t@db1/billing\nmore") == (
        "pg_dump failed: postgresql://***@db1/billing"
    )


def test_user_info_is_moved_into_a_basic_authorization_header() -> None:
    url, header = without_user_info("https://alerts:p%40ss@hooks.example:8443/hook?x=1")

    assert url == "https://hooks.example:8443/hook?x=1"
    assert header == "Basic " + base64.b64encode(b"alerts:p@ss").decode()
    assert without_user_info("https://hooks.example/hook") == ("https://hooks.example/hook", None)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_loopback_is_localhost_127_slash_8_and_ipv6_one(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://s3.eu-central-1.amazonaws.com", None),
        ("http://127.0.0.1:8333", None),
        ("http://localhost:9000/", None),
        ("http://s3.internal:9000", "plain http:// to 's3.internal'"),
        ("https://key:s3cr3t@s3.example", "must not carry credentials"),
        ("ftp://s3.example", "must look like http(s)://host[:port]"),
        ("https://s3.example/bucket", "must look like http(s)://host[:port]"),
    ],
)
def test_endpoint_rules(url: str, problem: str | None) -> None:
    found = endpoint_problem(url)

    assert (found is None) if problem is None else (found is not None and found.startswith(problem))
    assert "s3cr3t" not in (found or "")
