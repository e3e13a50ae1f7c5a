"""Client notices of a recovery (`replica recover`): one draft per client named by a job of the plan, for a person
to edit and send, in four parts under the headings of `NOTICE_HEADINGS`.

Pure functions: facts in, a JSON-ready document and its Markdown (template `notice.md.j2`) out. The facts name
stores by job, kind and description and destinations by name: never a host, a target or a credential, since the
text leaves the company. Times are UTC ISO 8601, durations as `format_duration` writes them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2

from replica.config.durations import format_duration
from replica.report.dataloss import RECOVERY_HEADING, RecoveryPoint, point_document
from replica.report.html import TEMPLATES_PATH
from replica.urls import redact_text

NOTICE_FORMAT = 1
NOTICE_KIND = "client-notice"
ASSESSMENT_HEADING = "Assessment of the potential loss"
MEASURES_HEADING = "Planned measures"
IMPACT_HEADING = "Estimated impact"
NOTICE_HEADINGS = (ASSESSMENT_HEADING, MEASURES_HEADING, IMPACT_HEADING, RECOVERY_HEADING)


@dataclass(frozen=True)
class NoticeStore:
    """One store of the client's, as the recovery restores (or restored) it."""

    job: str
    kind: str
    description: str
    order: int  # its place in the plan's restore order, from 1
    point: RecoveryPoint  # the recovery point restored, with its canary time when known
    verified_at: datetime | None  # when a test restore last proved it (None: never)
    forecast_seconds: float | None  # expected restore time from measured RTOs (None: never measured)
    restored_seconds: float | None = None  # what this recovery measured (None: not restored yet)
    checks: tuple[str, ...] = ()  # the checks its restore passed


@dataclass(frozen=True)
class NoticeFacts:
    """Everything a notice says, gathered by the caller."""

    client: str
    plan: str
    service: str  # the plan's description, or its name
    stores: list[NoticeStore]  # the client's stores only
    plan_stores: int  # how many stores the recovery restores in all
    incident_at: datetime
    created_at: datetime
    completed: bool  # True: the recovery is done; False: a dry run, planned only
    total_seconds: float | None  # this recovery, every store (None: not done)
    forecast_total_seconds: float | None  # every store, from measured RTOs (None: some never measured)
    rto_objective_seconds: float


def client_slug(client: str) -> str:
    """Return a file name for a client: lower case letters, digits and dashes (`client` when nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "-", client.lower()).strip("-") or "client"


def build_notice(facts: NoticeFacts) -> dict[str, Any]:
    """Return the notice as a JSON-ready document."""
    windows = [_loss_window(store, facts.incident_at) for store in facts.stores]
    worst = max((window["window_seconds"] for window in windows), default=0.0)
    return {
        "format": NOTICE_FORMAT,
        "kind": NOTICE_KIND,
        "draft": True,
        "title": f"Notice to {facts.client}: recovery of {facts.service}",
        "client": facts.client,
        "plan": facts.plan,
        "service": facts.service,
        "created_at": facts.created_at.isoformat(),
        "incident_at": facts.incident_at.isoformat(),
        "completed": facts.completed,
        "assessment": {
            "stores": windows,
            "worst_window_seconds": worst,
            "summary": f"Changes made to your data between the recovery point of each store and "
            f"{facts.incident_at.isoformat(timespec='seconds')} may be lost: at most "
            f"{format_duration(worst)} of changes.",
        },
        "measures": {
            "steps": [_step(store, facts) for store in facts.stores],
            "summary": _measures_summary(facts),
        },
        "impact": _impact(facts),
        "recovery_time": _recovery_time(facts),
    }


def _loss_window(store: NoticeStore, incident_at: datetime) -> dict[str, Any]:
    start = store.point.recovery_point
    return {
        "job": store.job,
        "description": store.description,
        "recovery_point": start.isoformat(),
        "recovery_point_source": "canary" if store.point.canary_at else "snapshot",
        "window_start": start.isoformat(),
        "window_end": incident_at.isoformat(),
        # A point taken after the incident (a later --incident-at given by hand) loses nothing.
        "window_seconds": max((incident_at - start).total_seconds(), 0.0),
        "point": point_document(store.point),
    }


def _step(store: NoticeStore, facts: NoticeFacts) -> dict[str, Any]:
    point = store.point
    proof = (
        f"proved restorable by a test restore finished {store.verified_at.isoformat(timespec='seconds')}"
        if store.verified_at
        else "not yet proved by a test restore"
    )
    checks = ", ".join(store.checks) if store.checks else "restore, integrity and backup-time fingerprint"
    done = "restored" if facts.completed else "to be restored"
    return {
        "order": store.order,
        "job": store.job,
        "description": store.description,
        "destination": point.destination,
        "snapshot_id": point.snapshot_id,
        "taken_at": point.taken_at.isoformat(),
        "verified": point.verified,
        "verified_at": store.verified_at.isoformat() if store.verified_at else None,
        "checks": list(store.checks),
        "text": f"Step {store.order} of {facts.plan_stores}: {_store_name(store)} {done} from backup copy "
        f"'{point.destination}' (backup taken {point.taken_at.isoformat(timespec='seconds')}, {proof}); "
        f"checks {'passed' if store.checks else 'to pass before it is put in place'}: {checks}.",
    }


def _measures_summary(facts: NoticeFacts) -> str:
    if facts.completed:
        return (
            f"All {facts.plan_stores} stores of {facts.service} were restored one after another from our backup "
            "copies, each checked before it was put in place; data already in a target was kept aside, never deleted."
        )
    return (
        f"All {facts.plan_stores} stores of {facts.service} will be restored one after another from our backup "
        "copies, each checked against what was backed up before it is put in place."
    )


def _impact(facts: NoticeFacts) -> dict[str, Any]:
    services = [_store_name(store) for store in facts.stores]
    if facts.completed:
        outage = (facts.created_at - facts.incident_at).total_seconds()
        summary = f"Unavailable or degraded from the incident until the recovery finished: {format_duration(outage)}."
    elif facts.forecast_total_seconds is not None:
        outage = (facts.created_at - facts.incident_at).total_seconds() + facts.forecast_total_seconds
        summary = (
            f"Unavailable or degraded from the incident until the recovery finishes: about {format_duration(outage)}."
        )
    else:
        outage = None
        summary = "Unavailable or degraded from the incident until the recovery finishes (duration not yet known)."
    return {"services": services, "outage_seconds": outage, "summary": summary}


def _recovery_time(facts: NoticeFacts) -> dict[str, Any]:
    forecast = facts.forecast_total_seconds
    if facts.completed:
        seconds = facts.total_seconds
        basis = "measured: this recovery, every store of the service"
    else:
        seconds = forecast
        basis = (
            "forecast: the worst of the last five measured restore times of each store, restored one after another"
            if forecast is not None
            else "unknown: a store of the service has never had its restore time measured"
        )
    return {
        "seconds": seconds,
        "basis": basis,
        "forecast_seconds": forecast,
        "rto_objective_seconds": facts.rto_objective_seconds,
        "stores": [
            {"job": s.job, "forecast_seconds": s.forecast_seconds, "restored_seconds": s.restored_seconds}
            for s in facts.stores
        ],
    }


def _store_name(store: NoticeStore) -> str:
    described = f" ({store.description})" if store.description else ""
    return f"the {store.kind} store '{store.job}'{described}"


@functools.cache
def _markdown_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_PATH),
        autoescape=False,  # Markdown, not HTML: the text is read as written
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["duration"] = format_duration
    return environment


def render_notice_markdown(notice: dict[str, Any]) -> str:
    """Return the notice as Markdown under the four headings. Raises jinja2.UndefinedError when `notice` lacks a
    key every notice has."""
    headings = dict(zip(("assessment", "measures", "impact", "recovery"), NOTICE_HEADINGS, strict=True))
    text = _markdown_environment().get_template("notice.md.j2").render(notice=notice, headings=headings)
    return redact_text(text)
