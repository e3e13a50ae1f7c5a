"""The contract every notifier kind implements, and what a delivery leaves in the audit.

A notifier sends one `Notification` once and raises `NotifyError` when it could not; retrying, timing and failing
soft are `deliver`'s job, written once for every kind. Neither the error's message nor the `Delivery` may hold a
secret: no URL path or query, no password, no routing key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from replica.errors import ReplicaError

EVENTS = ("failure", "breach", "recovery", "report")
SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Attachment:
    """A file attached to an email (other kinds ignore attachments)."""

    filename: str
    content_type: str  # "application/json", "text/html; charset=utf-8"...
    data: bytes


@dataclass(frozen=True)
class Notification:
    """What happened to a job, in a form every kind can render.

    `fields` are short facts (destination, snapshot, owners, clients, window at risk); `html` is a standalone page
    (the HTML data-loss report) sent as the email's HTML alternative; `document` is the JSON report, sent as-is by
    the generic webhook; `dedup_key` ties a PagerDuty trigger to its later resolve; `recipients` are the job's
    owners, emailed when a notifier says `include_owners`.
    """

    event: str
    job: str
    title: str
    text: str
    severity: str
    fields: dict[str, str] = field(default_factory=dict)
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    document: dict[str, Any] | None = None
    dedup_key: str | None = None
    recipients: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Raise ValueError for an unknown event or severity: a caller's bug, caught before any delivery."""
        if self.event not in EVENTS:
            raise ValueError(f"unknown notification event {self.event!r}; expected one of {', '.join(EVENTS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; expected one of {', '.join(SEVERITIES)}")

    @property
    def one_line_title(self) -> str:
        """Return the title on one line (a newline in an email subject is a header injection)."""
        return " ".join(self.title.split())


class NotifyError(ReplicaError):
    """A notifier could not send; the message holds no secret and `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.message = message
        self.retryable = retryable
        super().__init__(message)


class Notifier(Protocol):
    """One configured notifier, secrets already read."""

    kind: str
    name: str

    def send(self, notification: Notification, timeout_seconds: float) -> None:
        """Send `notification` once, each network operation limited to `timeout_seconds`.

        Raises NotifyError (secret-free message, `retryable` set) when it was not accepted.
        """
        ...


@dataclass(frozen=True)
class Delivery:
    """The outcome of sending one notification to one notifier, as recorded in the audit log. Never a secret."""

    notifier: str
    kind: str
    event: str
    sent: bool
    attempts: int
    error: str | None
    duration_seconds: float
