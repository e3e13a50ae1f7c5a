"""Process-wide settings: environment (`REPLICA_*`, standard `AWS_*`) and an optional `replica.toml`.

Precedence, highest first: environment variables, `replica.toml` (path in `REPLICA_CONFIG_FILE`, else
`./replica.toml` when present), field defaults. Secrets are `SecretStr` so they never print by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from replica.errors import ConfigError
from replica.urls import endpoint_problem

CONFIG_FILE_VARIABLE = "REPLICA_CONFIG_FILE"


def default_state_directory() -> Path:
    """Return `$XDG_STATE_HOME/replica`, or `~/.local/state/replica`."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "replica"


class Settings(BaseSettings):
    """Where replica keeps its state, finds its files and reaches restic and S3."""

    model_config = SettingsConfigDict(env_prefix="REPLICA_", extra="forbid", populate_by_name=True)

    state_dir: Path = Field(
        default_factory=default_state_directory,
        description="Directory for the default catalog, reports and scratch space.",
        examples=["/var/lib/replica"],
    )
    catalog_url: str = Field(
        default="",
        description="SQLAlchemy URL of the catalog; empty means a SQLite file in state_dir.",
        examples=["sqlite:////var/lib/replica/catalog.sqlite3", "postgresql+psycopg://replica@db/replica"],
    )
    jobs_dir: Path = Field(
        default=Path("jobs"), description="Folder of job files (*.yaml).", examples=["/etc/replica/jobs"]
    )
    policies_dir: Path = Field(
        default=Path("policies"),
        description="Folder of policy files (*.yaml).",
        examples=["/etc/replica/policies"],
    )
    drills_dir: Path = Field(
        default=Path("drills"), description="Folder of drill plans (*.yaml).", examples=["/etc/replica/drills"]
    )
    reports_dir: Path | None = Field(
        default=None,
        description="Where data-loss reports are written; empty means state_dir/reports.",
        examples=["/var/lib/replica/reports"],
    )
    scratch_dir: Path | None = Field(
        default=None,
        description="Where test restores are unpacked; empty means state_dir/scratch.",
        examples=["/var/tmp/replica"],
    )
    restic_binary: str = Field(default="restic", description="restic executable.", examples=["/usr/bin/restic"])
    restic_password: SecretStr | None = Field(
        default=None,
        description="Default repository password (prefer restic_password_file).",
        examples=["***"],
    )
    restic_password_file: Path | None = Field(
        default=None,
        description="File holding the default repository password.",
        examples=["/etc/replica/restic.key"],
    )
    restic_timeout_seconds: float = Field(
        default=6 * 3600,
        gt=0,
        description="Deadline of a restic backup, copy, check or restore.",
        examples=[21600],
    )
    restic_metadata_timeout_seconds: float = Field(
        default=300,
        gt=0,
        description="Deadline of short restic calls (init, snapshots, forget).",
        examples=[300],
    )
    stall_seconds: float = Field(
        default=300,
        ge=0,
        description="Stop a restic or dump process that made no progress (no byte read or written) for this long, "
        "as at its deadline (state `timeout`); 0 turns the stall detector off.",
        examples=[300],
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "REPLICA_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "s3_endpoint_url"
        ),
        description="S3 endpoint for destinations that name none (MinIO, SeaweedFS, moto); empty means AWS.",
        examples=["http://127.0.0.1:8333"],
    )
    s3_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("REPLICA_S3_REGION", "AWS_DEFAULT_REGION", "AWS_REGION"),
        description="S3 region.",
        examples=["eu-central-1"],
    )
    s3_access_key_id: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("REPLICA_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        description="S3 access key id.",
        examples=["AKIA..."],
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("REPLICA_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        description="S3 secret access key.",
        examples=["***"],
    )
    s3_probe_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="Deadline of the bucket probe every run makes (and of replica's own S3 requests).",
        examples=[10],
    )

    audit_signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM, made by `replica audit keygen`) that signs every verification-log "
        "event; empty means events are hash-chained but not signed.",
        examples=["/etc/replica/audit.key"],
    )

    web_host: str = Field(
        default="127.0.0.1",
        description="Address `replica serve` listens on (the web console and HTTP API).",
        examples=["127.0.0.1", "0.0.0.0"],
    )
    web_port: int = Field(default=8470, ge=1, le=65535, description="Port `replica serve` listens on.", examples=[8470])
    web_restore_root: Path | None = Field(
        default=None,
        description="Folder under which the web console and API may restore files (directory, SQLite and Redis "
        "targets; a relative target is taken inside it); empty means state_dir/restores.",
        examples=["/srv/restores"],
    )
    broker_url: SecretStr | None = Field(
        default=None,
        description="Celery broker of `daemon --executor celery` and `replica worker` (RabbitMQ: "
        "amqp://USER:PASSWORD@HOST:5672/VHOST; Redis: redis://HOST:6379/DB). A secret: it may carry a password.",
        examples=["amqp://replica:secret@mq.internal:5672/replica"],
    )
    default_queue: str = Field(
        default="replica",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
        description="Celery queue of the runs of jobs that name no `queue`.",
        examples=["replica"],
    )
    web_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Actions (backup, verify, restore) the web server runs at a time; more wait in its queue.",
        examples=[2],
    )

    @field_validator("s3_endpoint_url")
    @classmethod
    def _safe_endpoint(cls, value: str | None) -> str | None:
        # The same rules as a destination's endpoint_url: no credentials in it, plain http:// only to loopback.
        if not value:
            return None
        problem = endpoint_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @model_validator(mode="after")
    def _fill_derived_paths(self) -> Settings:
        if not self.catalog_url:
            self.catalog_url = f"sqlite:///{self.state_dir / 'catalog.sqlite3'}"
        if self.reports_dir is None:
            self.reports_dir = self.state_dir / "reports"
        if self.scratch_dir is None:
            self.scratch_dir = self.state_dir / "scratch"
        return self

    @property
    def stall_limit_seconds(self) -> float | None:
        """Return the stall limit of processes, None when the stall detector is off."""
        return self.stall_seconds or None

    @property
    def reports_path(self) -> Path:
        """Return the reports folder (always set after validation)."""
        assert self.reports_dir is not None
        return self.reports_dir

    @property
    def scratch_path(self) -> Path:
        """Return the scratch folder (always set after validation)."""
        assert self.scratch_dir is not None
        return self.scratch_dir

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = _toml_path()
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)


def _toml_path() -> Path | None:
    named = os.environ.get(CONFIG_FILE_VARIABLE)
    if named:
        return Path(named)
    local = Path("replica.toml")
    return local if local.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Return the settings of this process.

    Raises ConfigError naming the file (or environment) and field of every invalid value.
    """
    from pydantic import ValidationError

    toml_path = _toml_path()
    if toml_path is not None and not toml_path.is_file():
        raise ConfigError([f"{toml_path}: settings file does not exist (named by {CONFIG_FILE_VARIABLE})"])
    if toml_path is not None:
        import tomllib

        try:
            tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError([f"{toml_path}: not a readable TOML file: {error}"]) from None
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError([_describe_settings_error(e["loc"], e["msg"], toml_path) for e in error.errors()]) from None


def _describe_settings_error(location: tuple[int | str, ...], message: str, toml_path: Path | None) -> str:
    """Return `SOURCE: at 'field': message`, naming the environment variable when one set the value."""
    key = str(location[0]) if location else ""
    field_name = key.lower().removeprefix("replica_")
    field = Settings.model_fields.get(field_name)
    names = {f"REPLICA_{field_name.upper()}", key.upper()}
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        names |= {str(choice).upper() for choice in alias.choices}
    environment = {name.upper() for name in os.environ}
    from_environment = sorted(names & environment)
    if from_environment or toml_path is None:
        source = f"environment variable {from_environment[0]}" if from_environment else "environment (REPLICA_*)"
    else:
        source = f"{toml_path}:{_toml_line(toml_path, field_name or key)}"
    return f"{source}: at '{field_name or key}': {message.removeprefix('Value error, ')}"


def _toml_line(toml_path: Path, key: str) -> int:
    """Return the line (from 1) that sets `key` at the top of a TOML file; 1 when it cannot be told."""
    import re

    pattern = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
    try:
        lines = toml_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 1
    return next((number for number, line in enumerate(lines, 1) if pattern.match(line)), 1)
