"""pydantic models of notifiers, one per kind, told apart by `kind`: `NotifierConfig` is the union to use.

Secrets (an SMTP password, a PagerDuty routing key, a webhook URL that carries a token) are named here, by an
environment variable or a file, and read only when a notification is sent (`replica.notify.deliver`).

This module must not import `replica.config.models`: that module imports this one to add `notify` to jobs and
policies, so the base model and the name pattern are repeated here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# Same as replica.config.models.NAME_PATTERN (not imported: see the module docstring).
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NotifyEvent = Literal["failure", "breach", "recovery", "report"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("failure", "breach", "recovery", "report")
# The discriminator tags: config/load.py leaves them out of error locations, as it does for store kinds.
NOTIFIER_KIND_NAMES = ("webhook", "slack", "email", "pagerduty")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# Deliberately loose: local@domain without spaces, brackets or separators. The SMTP server has the last word;
# this only catches typos and header injection (a newline in an address).
_EMAIL_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_HTTP_URL = re.compile(r"https?://[^/\s?#]+(?:[/?#]\S*)?")


def is_email_address(value: str) -> bool:
    """Return True when `value` looks like an email address (local@domain, no spaces or separators)."""
    return bool(_EMAIL_ADDRESS.fullmatch(value))


def _require_email_address(value: str) -> str:
    if not is_email_address(value):
        raise ValueError("must be an email address such as ops@example.com")
    return value


EmailAddress = Annotated[str, AfterValidator(_require_email_address)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]


def is_http_url(value: str) -> bool:
    """Return True when `value` looks like an http(s) URL with a host."""
    return bool(_HTTP_URL.fullmatch(value))


def _exactly_one(model: BaseModel, names: tuple[str, ...]) -> None:
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) != 1:
        choices = ", ".join(names)
        raise ValueError(f"give exactly one of {choices}" + (f"; got {' and '.join(given)}" if given else ""))


class NotifierBase(BaseModel):
    """What every notifier has: a name, the events it wants, a timeout and a number of retries."""

    # Same settings as replica.config.models.StrictModel: unknown keys are errors, models are immutable.
    # defer_build: a model's validator is built when it first validates, not at import (`status` validates only
    # policies, and skips ~15 ms of start-up building the others).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(
        pattern=NAME_PATTERN, description="Name of the notifier, shown in logs and the audit.", examples=["ops-slack"]
    )
    events: tuple[NotifyEvent, ...] = Field(
        default=NOTIFY_EVENTS,
        description="Events sent to this notifier: failure (a run failed), breach (an objective is missed), "
        "recovery (back within objectives), report (a scheduled report).",
        examples=[["failure", "breach"]],
    )
    timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds one attempt may take before it is abandoned.", examples=[10]
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Extra attempts after a failure worth retrying (a server error, a timeout); backoff doubles "
        "from 0.5 s.",
        examples=[2],
    )

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: tuple[NotifyEvent, ...]) -> tuple[NotifyEvent, ...]:
        if not value:
            raise ValueError(f"name at least one event ({', '.join(NOTIFY_EVENTS)}); remove the notifier to mute it")
        return tuple(dict.fromkeys(value))  # drop repeats, keep the order


class UrlNotifierBase(NotifierBase):
    """A notifier that POSTs to a URL given inline, in an environment variable or in a file."""

    url: str | None = Field(
        default=None,
        description="The URL itself; prefer url_env or url_file when it carries a token.",
        examples=["https://alerts.example.com/hooks/replica"],
    )
    url_env: EnvName | None = Field(
        default=None, description="Environment variable holding the URL.", examples=["REPLICA_WEBHOOK_URL"]
    )
    url_file: Path | None = Field(
        default=None, description="File holding the URL.", examples=["/etc/replica/webhook.url"]
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # The message never repeats the value: the URL may carry a token.
        if value is not None and not is_http_url(value):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_url_source(self) -> UrlNotifierBase:
        _exactly_one(self, ("url", "url_env", "url_file"))
        return self


class WebhookNotifierConfig(UrlNotifierBase):
    """A generic JSON webhook: replica POSTs its own documented payload (format 1) with the JSON report."""

    kind: Literal["webhook"] = Field(description="Notifier kind.", examples=["webhook"])


class SlackNotifierConfig(UrlNotifierBase):
    """A Slack incoming webhook (or a compatible one: Mattermost, Rocket.Chat, Zulip's Slack endpoint)."""

    kind: Literal["slack"] = Field(description="Notifier kind.", examples=["slack"])


class EmailNotifierConfig(NotifierBase):
    """Email over SMTP: STARTTLS (default) or implicit TLS, optional authentication; certificates always checked."""

    kind: Literal["email"] = Field(description="Notifier kind.", examples=["email"])
    host: str = Field(
        pattern=r"^[A-Za-z0-9._:-]+$", description="SMTP server host name or address.", examples=["smtp.acme.example"]
    )
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port (465 by default with ssl).", examples=[587])
    starttls: bool = Field(
        default=True,
        description="Upgrade the connection with STARTTLS; never falls back to plain text.",
        examples=[True],
    )
    ssl: bool = Field(
        default=False,
        description="Implicit TLS from the first byte (SMTPS, port 465) instead of STARTTLS.",
        examples=[False],
    )
    username: str | None = Field(
        default=None, description="User to authenticate as.", examples=["replica@acme.example"]
    )
    password_env: EnvName | None = Field(
        default=None, description="Environment variable holding the SMTP password.", examples=["REPLICA_SMTP_PASSWORD"]
    )
    password_file: Path | None = Field(
        default=None, description="File holding the SMTP password.", examples=["/etc/replica/smtp.password"]
    )
    sender: EmailAddress = Field(description="The From address.", examples=["replica@acme.example"])
    to: tuple[EmailAddress, ...] = Field(description="Recipients (at least one).", examples=[["oncall@acme.example"]])
    ca_file: Path | None = Field(
        default=None,
        description="Extra CA certificate(s) to trust besides the system's, for a server with a private CA.",
        examples=["/etc/replica/smtp-ca.pem"],
    )
    include_owners: bool = Field(
        default=False, description="Also send to the job's owners that are email addresses.", examples=[True]
    )

    @model_validator(mode="before")
    @classmethod
    def _implicit_tls_defaults(cls, data: Any) -> Any:
        # With `ssl: true` alone, STARTTLS is off and the port is SMTPS's: asking users to also write
        # `starttls: false` and `port: 465` would only invite a contradictory file.
        if isinstance(data, dict) and data.get("ssl") is True:
            data = {"starttls": False, "port": 465, **data}
        return data

    @field_validator("to")
    @classmethod
    def _some_recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one recipient")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EmailNotifierConfig:
        if self.ssl and self.starttls:
            raise ValueError("give ssl (implicit TLS) or starttls, not both")
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        has_password = bool(self.password_env or self.password_file)
        if self.username and not has_password:
            raise ValueError("username needs password_env or password_file")
        if has_password and not self.username:
            raise ValueError("password_env or password_file needs a username")
        if self.username and not (self.starttls or self.ssl):
            # The password would cross the network in clear text.
            raise ValueError("authentication needs starttls or ssl")
        return self


class PagerdutyNotifierConfig(NotifierBase):
    """PagerDuty Events API v2: failures and breaches trigger an alert, a recovery resolves it."""

    kind: Literal["pagerduty"] = Field(description="Notifier kind.", examples=["pagerduty"])
    # Paging someone for a scheduled report would be noise: reports are left out unless asked for.
    events: tuple[NotifyEvent, ...] = Field(
        default=("failure", "breach", "recovery"),
        description="Events sent to PagerDuty (report is not sent unless listed).",
        examples=[["failure", "breach", "recovery"]],
    )
    routing_key_env: EnvName | None = Field(
        default=None,
        description="Environment variable holding the integration's routing key.",
        examples=["REPLICA_PAGERDUTY_KEY"],
    )
    routing_key_file: Path | None = Field(
        default=None, description="File holding the routing key.", examples=["/etc/replica/pagerduty.key"]
    )
    url: str = Field(
        default=PAGERDUTY_EVENTS_URL,
        description="Events API v2 endpoint (change it only for a proxy or tests).",
        examples=[PAGERDUTY_EVENTS_URL],
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not is_http_url(value):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> PagerdutyNotifierConfig:
        # Never inline: a routing key in a job file ends up in version control.
        _exactly_one(self, ("routing_key_env", "routing_key_file"))
        return self


NotifierConfig = Annotated[
    WebhookNotifierConfig | SlackNotifierConfig | EmailNotifierConfig | PagerdutyNotifierConfig,
    Field(discriminator="kind"),
]


def _unique_names(value: tuple[Any, ...]) -> tuple[Any, ...]:
    names = [notifier.name for notifier in value]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"notifier names must be unique; repeated: {', '.join(repeated)}")
    return value


# The list of notifiers of a job or policy; names are unique so that the audit can tell deliveries apart.
NotifierConfigs = Annotated[tuple[NotifierConfig, ...], AfterValidator(_unique_names)]
