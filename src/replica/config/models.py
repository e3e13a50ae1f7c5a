"""pydantic models of job and policy files. Unknown keys are errors; defaults live on the fields."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from replica.config.durations import Duration
from replica.config.notify import NotifierConfigs
from replica.schedule.specs import validate_schedule_text
from replica.urls import endpoint_problem

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
CheckName = Literal["repository", "restore", "integrity", "fingerprint", "canary"]
CHECK_NAMES: tuple[CheckName, ...] = ("repository", "restore", "integrity", "fingerprint", "canary")


def _require_absolute(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError("must be an absolute path")
    return value


AbsolutePath = Annotated[Path, AfterValidator(_require_absolute)]


def _require_plain_name(value: str) -> str:
    # pg_dump and psql take a connection string for --dbname: a password in one would reach the command line.
    if "=" in value or "://" in value:
        raise ValueError(
            "must be a database name, not a connection string (give host, port and user as fields, and the "
            "password by password_env or password_file)"
        )
    return value


DatabaseName = Annotated[str, AfterValidator(_require_plain_name)]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors and models are immutable."""

    # defer_build: a model's validator is built when it first validates, not at import (`status` validates only
    # policies, and skips ~15 ms of start-up building the others).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class SecretReference(StrictModel):
    """Where a secret comes from: an environment variable or a file, never the job file itself."""

    password_env: str | None = Field(
        default=None,
        description="Environment variable holding the password.",
        examples=["BILLING_PGPASSWORD"],
    )
    password_file: Path | None = Field(
        default=None, description="File holding the password.", examples=["/etc/replica/billing.pgpass"]
    )

    @model_validator(mode="after")
    def _one_source_at_most(self) -> SecretReference:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self


class DirectoryStoreConfig(StrictModel):
    """A directory tree; restic reads its files."""

    kind: Literal["directory"] = Field(description="Store kind.", examples=["directory"])
    path: AbsolutePath = Field(description="Absolute path of the directory to protect.", examples=["/srv/uploads"])
    exclude: tuple[str, ...] = Field(default=(), description="restic exclude patterns.", examples=[["*.tmp"]])


class SqliteStoreConfig(StrictModel):
    """A SQLite database file; copied with the online backup API, never as a live file."""

    kind: Literal["sqlite"] = Field(description="Store kind.", examples=["sqlite"])
    path: AbsolutePath = Field(description="Absolute path of the database file.", examples=["/var/lib/app/app.sqlite3"])


class PostgresqlStoreConfig(SecretReference):
    """A PostgreSQL database; dumped with `pg_dump -Fc` straight into restic."""

    kind: Literal["postgresql"] = Field(description="Store kind.", examples=["postgresql"])
    host: str = Field(default="127.0.0.1", description="Server host or socket directory.", examples=["db1.internal"])
    port: int = Field(default=5432, ge=1, le=65535, description="Server port.", examples=[5432])
    user: str = Field(
        default="postgres", description="Role used to dump, restore and fingerprint.", examples=["backup"]
    )
    database: DatabaseName = Field(description="Database to protect.", examples=["billing"])
    dump_timeout: Duration = Field(
        default=timedelta(hours=6), description="Deadline of one dump or restore.", examples=["6h"]
    )
    dump_compression: int = Field(
        default=1,
        ge=0,
        le=9,
        description="zlib level of the custom-format dump (pg_dump --compress). 1 costs about half the CPU of "
        "pg_dump's default (6) on the database host for a slightly larger dump; 0 stores it uncompressed.",
        examples=[1],
    )
    mode: Literal["logical", "physical"] = Field(
        default="logical",
        description="`logical`: pg_dump of one database, restored with pg_restore. `physical`: base backups of the "
        "whole cluster (pg_basebackup, tar, WAL excluded) plus the write-ahead log shipped by `replica wal-push` "
        "(the server's archive_command), restorable to any point in time.",
        examples=["physical"],
    )
    server_user: str = Field(
        default="postgres",
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="Operating-system user that runs the scratch PostgreSQL servers of physical restores (a server "
        "refuses to run as root).",
        examples=["postgres"],
    )
    bin_dir: AbsolutePath | None = Field(
        default=None,
        description="Folder of the PostgreSQL server programs (initdb, postgres, pg_ctl) matching the source's "
        "major version; empty means /usr/lib/postgresql/MAJOR/bin.",
        examples=["/usr/lib/postgresql/15/bin"],
    )


class MariadbStoreConfig(SecretReference):
    """A MariaDB/MySQL database; dumped with `mariadb-dump --single-transaction` straight into restic."""

    kind: Literal["mariadb"] = Field(description="Store kind.", examples=["mariadb"])
    host: str = Field(default="127.0.0.1", description="Server host.", examples=["db2.internal"])
    port: int = Field(default=3306, ge=1, le=65535, description="Server port.", examples=[3306])
    user: str = Field(default="root", description="User that dumps, restores and fingerprints.", examples=["backup"])
    database: DatabaseName = Field(description="Database (schema) to protect.", examples=["shop"])
    dump_timeout: Duration = Field(
        default=timedelta(hours=6), description="Deadline of one dump or restore.", examples=["6h"]
    )


class RedisStoreConfig(SecretReference):
    """A Redis server; its RDB snapshot (`redis-cli --rdb`) is backed up, every logical database in it."""

    kind: Literal["redis"] = Field(description="Store kind.", examples=["redis"])
    host: str = Field(default="127.0.0.1", description="Server host.", examples=["cache1.internal"])
    port: int = Field(default=6379, ge=1, le=65535, description="Server port.", examples=[6379])
    dump_timeout: Duration = Field(
        default=timedelta(hours=1), description="Deadline of taking or loading one RDB.", examples=["1h"]
    )


StoreConfig = Annotated[
    DirectoryStoreConfig | SqliteStoreConfig | PostgresqlStoreConfig | MariadbStoreConfig | RedisStoreConfig,
    Field(discriminator="kind"),
]


class DestinationConfig(SecretReference):
    """One restic repository in an S3 bucket. The first destination of a job is the primary."""

    name: str = Field(pattern=NAME_PATTERN, description="Name of the destination within the job.", examples=["primary"])
    bucket: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="S3 bucket.", examples=["acme-backups-eu"]
    )
    prefix: str = Field(
        default="", description="Key prefix of the repository inside the bucket.", examples=["restic/billing"]
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint; empty means the settings' endpoint (or AWS).",
        examples=["https://s3.eu-central-1.amazonaws.com"],
    )

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        value = value.strip("/")
        if value and not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
            raise ValueError("may hold only letters, digits, '.', '_', '-' and '/'")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        problem = endpoint_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value.rstrip("/") if value else value


ScheduleText = Annotated[str, AfterValidator(validate_schedule_text)]


class ScheduleConfig(StrictModel):
    """When the daemon and `run-due` run each kind of work, independently. A job's entries override its policy's.

    Each is `every DURATION` (`every 15m`), a five-field cron line in UTC (`30 3 * * *`), a shorthand (`@daily`) or
    `off` (never, even if the policy schedules it). Unset means the policy's entry (and none at all: never).
    """

    backup: ScheduleText | None = Field(default=None, description="When to back up.", examples=["every 1h"])
    verify: ScheduleText | None = Field(
        default=None, description="When to test-restore and verify.", examples=["30 3 * * *"]
    )
    prune: ScheduleText | None = Field(default=None, description="When to apply retention.", examples=["@weekly"])
    jitter: Duration | None = Field(
        default=None,
        description="Spread start times by up to this much (stable per job and kind), so that many jobs on one "
        "timetable do not start in the same second.",
        examples=["5m"],
    )


class JobConfig(StrictModel):
    """One protected store: what it is, where its copies go and who cares if it is lost."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Job name; equals the file name without .yaml.",
        examples=["billing"],
    )
    description: str = Field(default="", description="What this store holds.", examples=["Billing database"])
    store: StoreConfig = Field(description="The data store to protect.")
    destinations: tuple[DestinationConfig, ...] = Field(
        description="restic repositories (at least two); the first is primary, the others receive copies."
    )
    policy: str = Field(
        pattern=NAME_PATTERN, description="Name of a file in the policies folder.", examples=["standard"]
    )
    owners: tuple[str, ...] = Field(default=(), description="Who runs this store.", examples=[["dba@acme.example"]])
    clients: tuple[str, ...] = Field(
        default=(), description="Who is affected if its data is lost.", examples=[["ACME Retail", "Globex"]]
    )
    schedule: ScheduleConfig = Field(
        default_factory=ScheduleConfig, description="When the daemon runs this job (overrides the policy's)."
    )
    queue: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Celery queue of this job's runs under `daemon --executor celery`: only workers started with "
        "`replica worker --queue NAME` (on a host that reaches the store) run them. Unset: the default queue.",
        examples=["db-host-1"],
    )
    ping_url: str | None = Field(
        default=None,
        description="Dead-man URL (Healthchecks.io style) pinged on start (URL/start), success (URL) and failure "
        "(URL/fail) of every scheduled run; treat it as a secret.",
        examples=["https://hc-ping.com/5f1c0f6e-8d1e-4f4e-9a53-2b8c7c2f1e11"],
    )
    notify: NotifierConfigs = Field(
        default=(),
        description="Who hears of failures, breaches, recoveries and reports of this job, in addition to its "
        "policy's notifiers (a job's notifier replaces the policy's of the same name).",
        examples=[[{"name": "oncall", "kind": "webhook", "url_env": "ONCALL_WEBHOOK_URL", "events": ["failure"]}]],
    )
    canary: bool = Field(
        default=False,
        description="Write a canary (timestamp and run id) into the store right before each dump; verify then "
        "measures the real recovery point from the newest canary restored.",
        examples=[True],
    )

    @field_validator("destinations")
    @classmethod
    def _at_least_two(cls, value: tuple[DestinationConfig, ...]) -> tuple[DestinationConfig, ...]:
        # Not min_length: pydantic would count only the destinations that validated, and add "too few" to the
        # real error of an invalid one. A field validator runs only once every destination is valid.
        if len(value) < 2:
            raise ValueError("at least two are needed (a primary and a copy)")
        # Here rather than on the model: the error then points at the destinations (their file line), not the file.
        names = [destination.name for destination in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"destination names must be unique; repeated: {', '.join(duplicates)}")
        locations = [(d.endpoint_url, d.bucket, d.prefix) for d in value]
        if len(set(locations)) != len(locations):
            raise ValueError("two destinations point at the same bucket and prefix")
        return value

    @field_validator("ping_url")
    @classmethod
    def _ping_url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @property
    def primary(self) -> DestinationConfig:
        """Return the primary destination (the first)."""
        return self.destinations[0]

    def destination(self, name: str) -> DestinationConfig | None:
        """Return the destination called `name`, or None."""
        return next((d for d in self.destinations if d.name == name), None)


class RetentionConfig(StrictModel):
    """How many snapshots to keep; the newest verified snapshot is always kept whatever these say."""

    keep_last: int = Field(default=7, ge=1, description="Newest snapshots to keep.", examples=[7])
    keep_hourly: int = Field(default=0, ge=0, description="Hourly snapshots to keep.", examples=[24])
    keep_daily: int = Field(default=7, ge=0, description="Daily snapshots to keep.", examples=[7])
    keep_weekly: int = Field(default=4, ge=0, description="Weekly snapshots to keep.", examples=[4])
    keep_monthly: int = Field(default=12, ge=0, description="Monthly snapshots to keep.", examples=[12])

    @field_validator("keep_last", mode="before")
    @classmethod
    def _keeps_something(cls, value: object) -> object:
        # ge=1 alone would say "greater than or equal to 1"; say what 0 would do.
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError(f"must be at least 1: keep_last: {value} would let prune forget every snapshot")
        return value


class VerificationConfig(StrictModel):
    """How deep a verification goes and which of its checks may fail without failing it."""

    read_data_subset: str = Field(
        default="10%",
        pattern=r"^(\d+(\.\d+)?%|\d+/\d+|\d+[KMGT]?)$",
        description="Passed to `restic check --read-data-subset` (a %, n/t or a size).",
        examples=["10%", "1/7", "500M"],
    )
    critical_checks: tuple[CheckName, ...] = Field(
        default=CHECK_NAMES,
        description="Checks whose failure fails the verification.",
        examples=[["repository", "restore", "integrity", "fingerprint"]],
    )
    row_count_tolerance_percent: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="Allowed row count difference per table, in percent.",
        examples=[0],
    )
    sample_files: int = Field(
        default=32,
        ge=0,
        le=10000,
        description="Files of a directory, or keys per Redis database, whose content digest is compared.",
        examples=[32],
    )


class PolicyConfig(StrictModel):
    """Named objectives, retention and verification rules shared by jobs."""

    name: str = Field(pattern=NAME_PATTERN, description="Policy name; equals the file name.", examples=["standard"])
    description: str = Field(default="", description="What this policy is for.", examples=["Tier-1 databases"])
    rpo: Duration = Field(
        description="Recovery point objective: max age of the newest verified point.", examples=["1h"]
    )
    rto: Duration = Field(description="Recovery time objective: max measured restore-to-usable time.", examples=["15m"])
    at_risk_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="A job is 'at risk' past this fraction of an objective.",
        examples=[0.8],
    )
    rto_forecast_horizon: Duration = Field(
        default=timedelta(days=30),
        description="A job is 'at risk' when its RTO is forecast to exceed the objective within this time.",
        examples=["30d"],
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig, description="Snapshots to keep.")
    schedule: ScheduleConfig = Field(
        default_factory=ScheduleConfig, description="Default timetable of the jobs using this policy."
    )
    verification: VerificationConfig = Field(default_factory=VerificationConfig, description="Verification rules.")
    notify: NotifierConfigs = Field(
        default=(),
        description="Notifiers of every job using this policy (webhook, slack, email, pagerduty).",
        examples=[[{"name": "pager", "kind": "pagerduty", "routing_key_env": "PAGERDUTY_ROUTING_KEY"}]],
    )


def is_physical(job: JobConfig) -> bool:
    """Return True for a job that archives WAL (PostgreSQL in physical mode)."""
    return isinstance(job.store, PostgresqlStoreConfig) and job.store.mode == "physical"
