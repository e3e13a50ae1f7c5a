"""Telling people: after work on a job, its new verification-log events become notifications.

An action (backup, verify, prune, restore) or the watchdog appends events; when it ends, the events it appended
for the job are grouped into incidents (a failed verification and its data-loss report are one incident, not
two), and each incident goes once to every notifier of the job and its policy that wants one of its events. Each
delivery, sent or not, is itself an event of the log. Nothing here ever raises into the work it reports on: a dead
webhook never fails a backup or hides its outcome.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from replica.actions.context import Context
from replica.audit.chain import ChainedEvent
from replica.catalog.actor import current_actor
from replica.catalog.events import EventDraft
from replica.config.models import JobConfig, PolicyConfig
from replica.config.notify import NotifierConfig
from replica.errors import ReplicaError
from replica.notify.base import Attachment, Delivery, Notification
from replica.notify.deliver import deliver

logger = logging.getLogger(__name__)
Parameters = ParamSpec("Parameters")
Result = TypeVar("Result")

NOTIFICATION_KIND = "notification"
# What an action appends, and what the watchdog appends: each reports only its own, so that a breach opened while
# a backup runs is announced once (by the watchdog), not twice.
ACTION_KINDS = frozenset({"init", "backup", "copy", "verify", "restore", "prune", "wal_verify"})
WATCHDOG_KINDS = frozenset({"breach"})
RECENT_VERIFICATIONS = 50
_local = threading.local()


@dataclass
class Incident:
    """One thing to tell people, with the notification events it answers to in order of preference."""

    events: tuple[str, ...]
    severity: str
    title: str
    text: str
    about: list[int]  # sequence numbers of the log events it reports
    fields: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] | None = None  # the report's catalog row, as paths and body
    dedup_key: str | None = None


def notifiers_of(job: JobConfig, policy: PolicyConfig) -> list[NotifierConfig]:
    """Return the notifiers of a job: its policy's, then its own (a job's replaces the policy's of that name)."""
    own = {notifier.name for notifier in job.notify}
    return [notifier for notifier in policy.notify if notifier.name not in own] + list(job.notify)


def notifying(
    action: Callable[Concatenate[Context, str, Parameters], Result],
) -> Callable[Concatenate[Context, str, Parameters], Result]:
    """Decorate an action `(context, job_name, ...)`: when it ends (returning or raising), notify the incidents of
    the events it appended for the job. Nested actions of the same job (verify of every destination) notify once,
    at the outermost."""

    @functools.wraps(action)
    def run(context: Context, job_name: str, /, *args: Parameters.args, **kwargs: Parameters.kwargs) -> Result:
        with notifying_about(context, job_name, ACTION_KINDS):
            return action(context, job_name, *args, **kwargs)

    return run


@contextlib.contextmanager
def notifying_about(context: Context, job_name: str, kinds: frozenset[str]) -> Iterator[None]:
    """Notify, when the block ends, the incidents of the events of `kinds` it appended for `job_name`."""
    active: set[str] = _local.__dict__.setdefault("jobs", set())
    if job_name in active:
        yield
        return
    before = _head_or_none(context)
    active.add(job_name)
    try:
        yield
    finally:
        active.discard(job_name)
        if before is not None:
            notify_new_events(context, job_name, before, kinds)


def _head_or_none(context: Context) -> int | None:
    try:
        return context.catalog.events.head_seq()
    except Exception as error:  # the catalog is down: the action will say so itself
        logger.warning("notifications disabled for this run: cannot read the verification log: %s", error)
        return None


def notify_new_events(context: Context, job_name: str, after_seq: int, kinds: frozenset[str]) -> list[Delivery]:
    """Notify the incidents among the job's events after `after_seq` (of `kinds`, plus their reports); return the
    deliveries. Never raises: a failure to notify is logged and, where possible, recorded as an event."""
    try:
        job, policy = context.job(job_name)
    except ReplicaError:
        return []  # an unknown or broken job: its command fails with its own error, and there is no one to tell
    try:
        notifiers = notifiers_of(job, policy)
        if not notifiers:
            return []
        events = context.catalog.events.events(job=job_name, after_seq=after_seq)
        deliveries = []
        for incident in incidents_of(context, job, events, kinds):
            deliveries += _send(context, job, incident, notifiers)
        return deliveries
    except Exception as error:  # never into the work: one line, the traceback only with --debug
        logger.error("notifications of job '%s' failed: %s: %s", job_name, type(error).__name__, error)
        logger.debug("notifications of job '%s' failed", job_name, exc_info=True)
        return []


def incidents_of(
    context: Context, job: JobConfig, events: Sequence[ChainedEvent], kinds: frozenset[str]
) -> list[Incident]:
    """Return what to tell people about `events` (oldest first) of one job."""
    reports = {}
    for event in events:
        if event.kind == "report":
            reports[event.run_id] = event
    incidents = []
    for event in events:
        if event.kind not in kinds:
            continue
        if event.kind in ACTION_KINDS:
            incident = _run_incident(context, job, event, reports.pop(event.run_id, None))
        else:
            incident = _breach_incident(context, job, event, events)
        if incident is not None:
            incidents.append(incident)
    return incidents


def _run_incident(
    context: Context, job: JobConfig, event: ChainedEvent, report_event: ChainedEvent | None
) -> Incident | None:
    what = f"{event.kind} of job '{job.name}'" + (f" to '{event.destination}'" if event.destination else "")
    fields = _facts(job, event)
    # One key per job, kind and destination: a failure and the recovery that follows resolve the same incident.
    dedup_key = f"replica/{job.name}/{event.kind}/{event.destination or '-'}"
    if event.outcome == "failed":
        incident = Incident(
            events=("report", "failure") if report_event else ("failure",),
            severity="critical",
            title=f"FAILED: {what}",
            text=f"{what} failed: {event.detail or 'no detail'} (run {event.run_id}, event #{event.seq})",
            about=[event.seq],
            fields=fields,
            dedup_key=dedup_key,
        )
        if report_event is not None:
            _attach_report(context, incident, report_event)
        return incident
    recovering = event.kind in ("backup", "verify", "wal_verify")
    if event.outcome == "succeeded" and recovering and _recovered(context, job, event):
        return Incident(
            events=("recovery",),
            severity="info",
            title=f"RECOVERED: {what} succeeded again",
            text=f"{what} succeeded after a failure (run {event.run_id}, event #{event.seq})",
            about=[event.seq],
            fields=fields,
            dedup_key=dedup_key,
        )
    return None


def _recovered(context: Context, job: JobConfig, event: ChainedEvent) -> bool:
    """Return True when the previous completed run of this kind and destination failed."""
    earlier = context.catalog.events.events(job=job.name, kinds=[event.kind], newest=RECENT_VERIFICATIONS)
    for previous in reversed(earlier):
        same_work = previous.seq < event.seq and previous.destination == event.destination
        if same_work and previous.outcome in ("succeeded", "failed"):
            return previous.outcome == "failed"
    return False


def _breach_incident(
    context: Context, job: JobConfig, event: ChainedEvent, events: Sequence[ChainedEvent]
) -> Incident | None:
    figures = json.loads(event.figures)
    objective = str(figures.get("objective", "objective")).upper()
    fields = _facts(job, event)
    dedup_key = f"replica/{job.name}/{figures.get('objective')}"
    if event.outcome == "cleared":
        title = f"RESOLVED: {objective} of job '{job.name}'"
        return Incident(("recovery",), "info", title, event.detail, [event.seq], fields, dedup_key=dedup_key)
    title = f"BREACH: {objective} of job '{job.name}'"
    incident = Incident(("breach", "report"), "critical", title, event.detail, [event.seq], fields, dedup_key=dedup_key)
    risk = [e for e in events if e.kind == "report" and e.seq > event.seq and "risk" in e.figures]
    if risk:
        _attach_report(context, incident, risk[0])
    return incident


def _facts(job: JobConfig, event: ChainedEvent) -> dict[str, str]:
    facts = {
        "job": job.name,
        "event": f"#{event.seq} {event.kind} {event.outcome}",
        "at": event.recorded_at,
        "actor": event.actor,
    }
    if event.destination:
        facts["destination"] = event.destination
    failure = json.loads(event.figures or "{}").get("failure")
    if failure:
        facts["failure"] = str(failure)  # the run's failure state, for routing alerts without parsing text
    if event.snapshot:
        facts["snapshot"] = event.snapshot
    if job.owners:
        facts["owners"] = ", ".join(job.owners)
    if job.clients:
        facts["clients"] = ", ".join(job.clients)
    return facts


def _attach_report(context: Context, incident: Incident, report_event: ChainedEvent) -> None:
    """Make the incident carry its report: the Markdown as text, the HTML page, the JSON document."""
    report_id = json.loads(report_event.figures).get("report_id")
    report = context.catalog.report(int(report_id)) if report_id is not None else None
    if report is None:
        return
    incident.about.append(report_event.seq)
    incident.title = report.title
    incident.report = {
        "body": report.body,
        "markdown": _read(report.markdown_path),
        "html": _read(report.html_path),
        "json_path": report.json_path,
    }
    if incident.report["markdown"]:
        incident.text = incident.report["markdown"]
    incident.fields["report"] = f"#{report.id} {report.markdown_path}"


def _read(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


def _send(context: Context, job: JobConfig, incident: Incident, notifiers: list[NotifierConfig]) -> list[Delivery]:
    deliveries = []
    for notifier in notifiers:
        event = next((name for name in incident.events if name in notifier.events), None)
        if event is None:
            continue
        deliveries += deliver(_notification(job, incident, event), [notifier])
    log = context.catalog.events
    for delivery in deliveries:
        figures = {
            "notifier": delivery.notifier,
            "notifier_kind": delivery.kind,
            "event": delivery.event,
            "attempts": delivery.attempts,
            "duration_seconds": round(delivery.duration_seconds, 3),
            "about": incident.about,
        }
        outcome = "sent" if delivery.sent else "failed"
        draft = EventDraft(NOTIFICATION_KIND, outcome, current_actor(), job=job.name, figures=figures)
        log.append(EventDraft(**{**draft.__dict__, "detail": delivery.error or ""}))
    return deliveries


def _notification(job: JobConfig, incident: Incident, event: str) -> Notification:
    report = incident.report or {}
    attachments: tuple[Attachment, ...] = ()
    body = report.get("body")
    if body is not None:
        data = json.dumps(body, indent=2, sort_keys=True).encode("utf-8")
        attachments = (Attachment(f"report-{body.get('report_id', 'x')}.json", "application/json", data),)
    return Notification(
        event=event,
        job=job.name,
        title=incident.title,
        text=incident.text,
        severity=incident.severity,
        fields=dict(incident.fields),
        html=report.get("html"),
        attachments=attachments,
        document=body,
        dedup_key=incident.dedup_key,
        recipients=tuple(job.owners),
    )
