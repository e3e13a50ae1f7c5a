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

    assert raised.value.problems[0].startswith("replica.toml: at 's3_probe_timeout_seconds': ")


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
