"""The exercise report of a drill on disk (Markdown, HTML and JSON under `reports_dir/drills/PLAN/`), its review,
and the list of plans with their last drill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replica.actions.context import Context
from replica.catalog.actor import current_actor
from replica.catalog.events import EventDraft
from replica.catalog.records import utc_now
from replica.config.drills import DrillPlanConfig
from replica.errors import NotFound, UsageError
from replica.report.exercise import add_review, build_exercise, render_html, render_markdown

if TYPE_CHECKING:
    from replica.actions.drill import DrillOutcome

DRILLS_FOLDER = "drills"
REVIEWED = "reviewed"


def write_exercise_report(context: Context, plan: DrillPlanConfig, outcome: DrillOutcome) -> dict[str, Path]:
    """Write the exercise report of `outcome`; return its paths by format (`markdown`, `html`, `json`).

    Raises OSError when a file cannot be written."""
    created_at = utc_now()
    folder = context.settings.reports_path / DRILLS_FOLDER / plan.name
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{created_at.strftime('%Y%m%dT%H%M%SZ')}-drill-{outcome.run_id}"
    paths = {"markdown": folder / f"{stem}.md", "html": folder / f"{stem}.html", "json": folder / f"{stem}.json"}
    _write(paths, build_exercise(plan, outcome, created_at))
    return paths


def _write(paths: dict[str, Path], body: dict[str, Any]) -> None:
    paths["markdown"].write_text(render_markdown(body), encoding="utf-8")
    paths["html"].write_text(render_html(body), encoding="utf-8")
    paths["json"].write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def review_drill(context: Context, run_id: int, note: str) -> dict[str, Path]:
    """Append a dated note by the current actor to the Review section of drill run `run_id`'s exercise report,
    log a `drill` event `reviewed`; return the report's paths.

    Raises NotFound when there is no such drill or its report file is gone; UsageError for an empty note.
    """
    if not note.strip():
        raise UsageError("a review note must say something (--note TEXT)")
    run = context.catalog.run(run_id)
    if run is None or run.kind != "drill":
        raise NotFound(f"no drill run {run_id} (see 'replica runs' for drill runs)")
    report = run.details.get("report")
    if not isinstance(report, str) or not Path(report).is_file():
        raise NotFound(f"drill run {run_id} has no exercise report on disk ({report or 'none recorded'})")
    json_path = Path(report)
    paths = {"markdown": json_path.with_suffix(".md"), "html": json_path.with_suffix(".html"), "json": json_path}
    reviewer, now = current_actor(), utc_now()
    body = add_review(json.loads(json_path.read_text(encoding="utf-8")), reviewer, note.strip(), now)
    _write(paths, body)
    context.catalog.events.append(
        EventDraft(
            kind="drill",
            outcome=REVIEWED,
            actor=reviewer,
            job=run.job,
            run_id=run_id,
            figures={"note": note.strip(), "report": str(json_path), "reviews": len(body["review"])},
        ),
        recorded_at=now,
    )
    return paths


def list_plans(context: Context) -> list[dict[str, Any]]:
    """Return each plan (valid or broken) with its jobs, objective, schedule and last drill run."""
    plans = context.drill_plans
    documents: list[dict[str, Any]] = []
    for name in sorted({*plans.plans, *plans.broken}):
        last = next(iter(context.catalog.runs(job=name, kind="drill", limit=1)), None)
        plan = plans.plans.get(name)
        documents.append(
            {
                "plan": name,
                "jobs": plan.jobs if plan else [],
                "rto_seconds": plan.rto.total_seconds() if plan else None,
                "schedule": plan.schedule if plan else None,
                "problems": plans.broken.get(name, []),
                "last_run": None
                if last is None
                else {
                    "run_id": last.id,
                    "status": last.status,
                    "started_at": last.started_at.isoformat(),
                    "report": last.details.get("report"),
                },
            }
        )
    return documents
