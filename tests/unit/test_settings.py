"""Process settings from the environment and an optional replica.toml; secrets stay hidden."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from replica.errors import ConfigError
from replica.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Start every test from no REPLICA_*/AWS_* variables and a folder without replica.toml."""
    for name in list(os.environ):
        if name.upper().startswith(("REPLICA_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.chdir(tmp_path)


def test_state_dir_derives_catalog_reports_and_scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_STATE_DIR", "/var/lib/replica")

    settings = load_settings()

    assert settings.catalog_url == "sqlite:////var/lib/replica/catalog.sqlite3"
    assert settings.reports_path == Path("/var/lib/replica/reports")
    assert settings.scratch_path == Path("/var/lib/replica/scratch")


def test_standard_aws_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-key")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")

    settings = load_settings()

    assert settings.s3_access_key_id is not None
    assert settings.s3_access_key_id.get_secret_value() == "AKIAEXAMPLE"
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "s3cr3t-key"
    assert settings.s3_endpoint_url == "http://127.0.0.1:8333"
    assert settings.s3_region == "eu-central-1"


def test_toml_file_named_by_replica_config_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "etc" / "replica.toml"
    toml.parent.mkdir()
    toml.write_text('restic_binary = "/opt/restic/restic"\njobs_dir = "/etc/replica/jobs"\n', encoding="utf-8")
    monkeypatch.setenv("REPLICA_CONFIG_FILE", str(toml))

    settings = load_settings()

    assert settings.restic_binary == "/opt/restic/restic"
    assert settings.jobs_dir == Path("/etc/replica/jobs")


def test_environment_wins_over_the_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "replica.toml").write_text('restic_binary = "/from/toml"\n', encoding="utf-8")
    monkeypatch.setenv("REPLICA_RESTIC_BINARY", "/from/environment")

    assert load_settings().restic_binary == "/from/environment"


def test_invalid_environment_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_RESTIC_TIMEOUT_SECONDS", "-5")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert raised.value.problems[0].startswith(
        "environment variable REPLICA_RESTIC_TIMEOUT_SECONDS: at 'restic_timeout_seconds': "
    )


def test_invalid_toml_value_names_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "replica.toml").write_text('s3_probe_timeout_seconds = "soon"\n', encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert raised.value.problems[0].startswith("replica.toml:1: at 's3_probe_timeout_seconds': ")


def test_invalid_environment_value_is_not_blamed_on_a_valid_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "replica.toml"
    toml.write_text('restic_binary = "/opt/restic/restic"\n', encoding="utf-8")
    monkeypatch.setenv("REPLICA_CONFIG_FILE", str(toml))
    monkeypatch.setenv("REPLICA_RESTIC_TIMEOUT_SECONDS", "-5")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    (problem,) = raised.value.problems
    assert "restic_timeout_seconds" in problem
    assert not problem.startswith(str(toml)), "the bad value is in the environment, not in the file"


def test_secrets_do_not_show_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_RESTIC_PASSWORD", "correct-horse-battery")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-key")

    settings = load_settings()

    assert settings.restic_password is not None
    assert settings.restic_password.get_secret_value() == "correct-horse-battery"
    for text in (repr(settings), str(settings), str(settings.restic_password)):
        assert "correct-horse-battery" not in text
        assert "s3cr3t-key" not in text


def test_malformed_toml_file_is_a_one_line_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "replica.toml"
    toml.write_text("state_dir = [unclosed\n")
    monkeypatch.setenv("REPLICA_CONFIG_FILE", str(toml))
    with pytest.raises(ConfigError, match="not a readable TOML file"):
        load_settings()


@pytest.mark.parametrize("variable", ["REPLICA_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"])
def test_a_plain_http_endpoint_to_another_host_is_rejected_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://minio.internal:9000")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert raised.value.problems == [
        f"environment variable {variable}: at 's3_endpoint_url': plain http:// to 'minio.internal' would cross the "
        "network unencrypted; use https:// (plain http:// is allowed only to localhost, 127.0.0.0/8 and ::1)"
    ]


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8333",
        "http://127.9.0.1:9000/",
        "http://localhost:9000",
        "http://[::1]:9000",
        "https://s3.example",
    ],
)
def test_https_and_loopback_endpoints_are_accepted(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("REPLICA_S3_ENDPOINT_URL", endpoint)

    assert load_settings().s3_endpoint_url == endpoint.rstrip("/")


def test_an_endpoint_in_the_toml_file_is_rejected_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "replica.toml").write_text(
        'restic_binary = "/usr/bin/restic"\ns3_endpoint_url = "http://10.0.0.7:9000"\n', encoding="utf-8"
    )

    with pytest.raises(ConfigError) as raised:
        load_settings()

    (problem,) = raised.value.problems
    assert problem.startswith("replica.toml:2: at 's3_endpoint_url': plain http:// to '10.0.0.7' ")


def test_credentials_in_the_endpoint_are_rejected_without_repeating_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_S3_ENDPOINT_URL", "https://AKIA:wJalr-s3cr3t@s3.example")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    (problem,) = raised.value.problems
    assert "must not carry credentials" in problem
    assert "s3cr3t" not in problem and "AKIA" not in problem
