"""`replica audit export`: the evidence pack an auditor reads without replica.

The events of the period exactly as stored (with everything needed to recompute their hashes), per-job summaries
of what was performed and passed, objective compliance over the period, and the chain head to compare with what
the operator anchored. Every number is counted from the events themselves, so the pack proves its own figures.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from replica.actions.audit import event_document, trusted_verifier
from replica.actions.context import Context
from replica.audit.chain import HASH_ALGORITHM, ChainedEvent
from replica.audit.keys import SIGNATURE_ALGORITHM, public_hex
from replica.catalog.actor import current_actor
from replica.catalog.events import format_time, parse_time
from replica.catalog.records import utc_now
from replica.errors import ReplicaError, UsageError
from replica.policy.compliance import VerifiedPoint, rpo_compliance, rto_compliance

EVIDENCE_FORMAT = 1
EXPORT_FORMATS = ("json", "csv", "html")
COMPLETED = ("succeeded", "failed")


@dataclass
class _JobTally:
    """What the period's events say about one job."""

    performed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    succeeded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rtos: list[float] = field(default_factory=list)
    breaches_opened: int = 0
    reports: int = 0
    first_event_at: datetime | None = None


def build_evidence_pack(context: Context, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """Return the evidence pack of the period [since, until] (until defaults to now) as a JSON-ready document."""
    end = until or utc_now()
    if since is not None and since > end:
        raise UsageError("--since is after --until")
    log = context.catalog.events
    verifier = trusted_verifier(context, ())
    whole = log.check(check_signature=verifier)
    events = list(log.stream(since=since, until=end))
    tallies = _tally(events)
    documents = [event_document(event) for event in events]
    first = events[0] if events else None
    signer = log.signer
    chain = {
        "hash_algorithm": HASH_ALGORITHM,
        "signature_algorithm": SIGNATURE_ALGORITHM if any(e.signature for e in events) else None,
        "public_key": public_hex(signer.private_key.public_key()) if signer else None,
        "key_id": signer.key_id if signer else None,
        "first_seq": first.seq if first else None,
        "previous_hash": first.previous_hash if first else None,
        "head_seq": events[-1].seq if events else None,
        "head_hash": events[-1].hash if events else None,
        "log_head_seq": whole.head_seq,
        "log_head_hash": whole.head_hash,
        "verified": whole.intact,
        "signatures_checked": verifier is not None,
        "problems": [str(whole.problem)] if whole.problem else [],
    }
    jobs = sorted(set(tallies) | set(context.configuration.jobs))
    return {
        "format": EVIDENCE_FORMAT,
        "kind": "replica-evidence",
        "generated_at": format_time(utc_now()),
        "generated_by": current_actor(),
        "period": {"since": format_time(since) if since else None, "until": format_time(end)},
        "chain": chain,
        "jobs": [_job_summary(context, name, tallies.get(name, _JobTally()), since, end) for name in jobs],
        "events": documents,
    }


def _tally(events: Iterable[ChainedEvent]) -> dict[str, _JobTally]:
    tallies: dict[str, _JobTally] = defaultdict(_JobTally)
    for event in events:
        if event.job is None:
            continue
        tally = tallies[event.job]
        if tally.first_event_at is None:
            tally.first_event_at = parse_time(event.recorded_at)
        if event.kind in ("backup", "copy", "verify", "restore") and event.outcome in COMPLETED:
            tally.performed[event.kind] += 1
            if event.outcome == "succeeded":
                tally.succeeded[event.kind] += 1
                rto = json.loads(event.figures).get("rto_seconds") if event.kind == "verify" else None
                if isinstance(rto, int | float):
                    tally.rtos.append(float(rto))
        elif event.kind == "breach" and event.outcome == "opened":
            tally.breaches_opened += 1
        elif event.kind == "report":
            tally.reports += 1
    return tallies


def _job_summary(
    context: Context, name: str, tally: _JobTally, since: datetime | None, end: datetime
) -> dict[str, Any]:
    rpo_objective = rto_objective = None
    policy_name = None
    try:
        _job, policy = context.job(name)
        policy_name, rpo_objective, rto_objective = policy.name, policy.rpo.total_seconds(), policy.rto.total_seconds()
    except ReplicaError:
        pass  # a job removed from the configuration (or broken) still has its evidence; only objectives are unknown
    performed = tally.performed["verify"]
    passed = tally.succeeded["verify"]
    summary: dict[str, Any] = {
        "job": name,
        "policy": policy_name,
        "rpo_objective_seconds": rpo_objective,
        "rto_objective_seconds": rto_objective,
        "backups": {"performed": tally.performed["backup"], "succeeded": tally.succeeded["backup"]},
        "copies": {"performed": tally.performed["copy"], "succeeded": tally.succeeded["copy"]},
        "verifications": {
            "performed": performed,
            "passed": passed,
            "failed": performed - passed,
            "pass_rate": passed / performed if performed else None,
        },
        "restores": {"performed": tally.performed["restore"], "succeeded": tally.succeeded["restore"]},
        "breaches_opened": tally.breaches_opened,
        "reports": tally.reports,
    }
    rto = rto_compliance(tally.rtos, rto_objective) if rto_objective is not None else None
    summary["rto"] = {
        "measured": len(tally.rtos),
        "within_objective": rto.within_objective if rto else None,
        "worst_seconds": max(tally.rtos) if tally.rtos else None,
        "median_seconds": rto.median_seconds if rto else None,
        "compliance": rto.compliance if rto else None,
    }
    start = since or tally.first_event_at or end
    if rpo_objective is not None:
        rpo = rpo_compliance(_verified_points(context, name, end), rpo_objective, start, end)
        summary["rpo"] = {
            "period_seconds": rpo.period_seconds,
            "seconds_within_objective": rpo.seconds_within_objective,
            "compliance": rpo.compliance,
            "worst_seconds": rpo.worst_seconds,
        }
    else:
        summary["rpo"] = {
            "period_seconds": (end - start).total_seconds(),
            "seconds_within_objective": 0.0,
            "compliance": None,
            "worst_seconds": None,
        }
    return summary


def _verified_points(context: Context, job: str, end: datetime) -> list[VerifiedPoint]:
    """Every verification of `job` that passed up to `end`, from the log (points proven before the period count)."""
    points = []
    for event in context.catalog.events.events(job=job, kinds=["verify"], until=end):
        figures = json.loads(event.figures)
        if event.outcome == "succeeded" and isinstance(figures.get("recovery_point"), str):
            points.append(
                VerifiedPoint(parse_time(event.recorded_at), datetime.fromisoformat(figures["recovery_point"]))
            )
    return points


def write_evidence_pack(pack: dict[str, Any], export_format: str, output: Path) -> list[Path]:
    """Write the pack as `export_format` (json, csv or html) to `output`; return the files written.

    CSV writes the events to `output` and the per-job summary (with the chain head) beside it.
    """
    from replica.report.evidence import render_evidence_html, write_evidence_csv

    output.parent.mkdir(parents=True, exist_ok=True)
    if export_format == "json":
        output.write_text(json.dumps(pack, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return [output]
    if export_format == "html":
        output.write_text(render_evidence_html(pack), encoding="utf-8")
        return [output]
    if export_format == "csv":
        summary_path = write_evidence_csv(pack, output)
        return [output, summary_path]
    raise UsageError(f"unknown export format '{export_format}' (formats: {', '.join(EXPORT_FORMATS)})")
