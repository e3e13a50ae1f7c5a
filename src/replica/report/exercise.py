"""The exercise report of a drill: a JSON body built from the outcome (`build_exercise`), rendered as Markdown and
as a standalone HTML page (`exercise.html.j2`); `add_review` appends a reviewer's dated note.

Body keys: `kind` ("exercise"), `title`, `plan`, `description`, `owners`, `run_id`, `created_at`, `cut`,
`passed`, `stores` (job, store, destination, snapshot, taken_at, verified_before, rto_seconds,
rto_objective_seconds, rto_met, checks), `cross_checks` (name, critical, passed, values_job, exist_in_job,
values_count, exist_in_count, missing, missing_count, detail), `service` (seconds, objective_seconds, met),
`failures`, `review` (a list of {at, reviewer, note}; empty until reviewed).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from replica.config.durations import format_duration

if TYPE_CHECKING:
    from replica.actions.drill import DrillOutcome
    from replica.config.drills import DrillPlanConfig

EXERCISE_KIND = "exercise"
REVIEW_HEADING = "Review"
NO_REVIEW = "Not reviewed yet. Record the follow-up actions with `replica drill review {run_id} --note TEXT`."


def build_exercise(plan: DrillPlanConfig, outcome: DrillOutcome, created_at: datetime) -> dict[str, Any]:
    """Return the JSON body of the exercise report of `outcome`."""
    verdict = "PASSED" if outcome.passed else "FAILED"
    service = outcome.service_seconds
    return {
        "kind": EXERCISE_KIND,
        "title": f"Drill of '{plan.name}' (run {outcome.run_id}): {verdict}",
        "plan": plan.name,
        "description": plan.description,
        "owners": list(plan.owners),
        "run_id": outcome.run_id,
        "created_at": created_at.isoformat(timespec="seconds"),
        "started_at": outcome.started_at.isoformat(timespec="seconds"),
        "cut": outcome.cut.isoformat(timespec="seconds"),
        "passed": outcome.passed,
        "stores": [
            {
                "job": store.job,
                "store": store.store,
                "destination": store.destination,
                "snapshot": store.snapshot_id,
                "taken_at": store.taken_at.isoformat(timespec="seconds"),
                "verified_before": store.verified,
                "passed": store.passed,
                "rto_seconds": store.rto_seconds,
                "rto_objective_seconds": store.rto_objective_seconds,
                "rto_met": store.rto_seconds is not None and store.rto_seconds <= store.rto_objective_seconds,
                "checks": [
                    {"name": c.name, "passed": c.passed, "critical": c.critical, "detail": c.detail}
                    for c in store.checks
                ],
            }
            for store in outcome.stores
        ],
        "cross_checks": [
            {
                "name": check.name,
                "critical": check.critical,
                "passed": check.passed,
                "values_job": check.values_job,
                "exist_in_job": check.exist_in_job,
                "values_count": check.values_count,
                "exist_in_count": check.exist_in_count,
                "missing": list(check.missing),
                "missing_count": check.missing_count,
                "detail": check.detail,
            }
            for check in outcome.cross_checks
        ],
        "service": {
            "seconds": service,
            "objective_seconds": outcome.rto_objective_seconds,
            "met": service is not None and service <= outcome.rto_objective_seconds,
        },
        "failures": outcome.failures,
        "review": [],
    }


def add_review(body: dict[str, Any], reviewer: str, note: str, at: datetime) -> dict[str, Any]:
    """Return `body` with a dated review note appended (earlier notes kept)."""
    entry = {"at": at.isoformat(timespec="seconds"), "reviewer": reviewer, "note": note}
    return {**body, "review": [*body.get("review", []), entry]}


def _mark(passed: bool, critical: bool = True) -> str:
    return "ok" if passed else ("FAIL" if critical else "warn")


def render_markdown(body: dict[str, Any]) -> str:
    """Return the report as Markdown."""
    service = body["service"]
    lines = [
        f"# {body['title']}",
        "",
        f"Plan **{body['plan']}**" + (f": {body['description']}" if body["description"] else ""),
        "",
        f"- Cut time (every store restored to its newest recovery point at or before it): {body['cut']}",
        f"- Drill started {body['started_at']}, report written {body['created_at']}",
        f"- Service restored in {format_duration(service['seconds'])} against an objective of "
        f"{format_duration(service['objective_seconds'])}: {'met' if service['met'] else 'NOT met'}",
        f"- Owners: {', '.join(body['owners']) or '—'}",
        "",
        "## Stores exercised",
        "",
        "| Job | Destination | Snapshot | Taken at | Verified before | RTO | Objective | Result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store in body["stores"]:
        lines.append(
            f"| {store['job']} | {store['destination']} | {store['snapshot']} | {store['taken_at']} | "
            f"{'yes' if store['verified_before'] else 'no'} | {format_duration(store['rto_seconds'])} | "
            f"{format_duration(store['rto_objective_seconds'])} | {'passed' if store['passed'] else 'FAILED'} |"
        )
    for store in body["stores"]:
        lines += ["", f"### {store['job']}: {store['store']}", ""]
        lines += [f"- [{_mark(c['passed'], c['critical'])}] {c['name']}: {c['detail']}" for c in store["checks"]]
    lines += ["", "## Cross-store checks", ""]
    if not body["cross_checks"]:
        lines.append("None in the plan.")
    for check in body["cross_checks"]:
        lines.append(
            f"- [{_mark(check['passed'], check['critical'])}] {check['name']} "
            f"({check['values_job']} → {check['exist_in_job']}): {check['detail']}"
        )
        if check["missing"]:
            lines += [f"  - missing: `{value}`" for value in check["missing"]]
    lines += ["", "## Failures found", ""]
    lines += [f"- {failure}" for failure in body["failures"]] or ["None."]
    lines += ["", f"## {REVIEW_HEADING}", ""]
    lines += [f"- {entry['at']} by {entry['reviewer']}: {entry['note']}" for entry in body["review"]] or [
        NO_REVIEW.format(run_id=body["run_id"])
    ]
    return "\n".join(lines) + "\n"


def render_html(body: dict[str, Any]) -> str:
    """Return the report as a standalone HTML page."""
    from replica.report.html import template_environment  # deferred: Jinja2 costs ~50 ms

    template = template_environment().get_template("exercise.html.j2")
    return template.render(report=body, no_review=NO_REVIEW.format(run_id=body["run_id"]))
