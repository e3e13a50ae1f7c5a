"""Reports as standalone HTML pages: the data-loss report and the watchdog's risk report, rendered by the Jinja2
templates in `templates/` (`dataloss.html.j2`, `risk.html.j2` on `base.html.j2`).

A page is one self-contained file: inline CSS, no JavaScript, no external resources, so it can be mailed or
archived and opened anywhere. Everything taken from a body is escaped (job descriptions, check details and error
messages are free text). The body is the JSON document of `replica.report.dataloss.build_report` or
`replica.report.risk.build_risk_report`; its optional keys (`report_id`, `events`) are listed in the docstring of
`replica.report.dataloss` and are rendered only when present, so bodies saved before they existed still render.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import jinja2

from replica.config.durations import format_duration
from replica.report.dataloss import (
    AT_RISK_HEADING,
    IMPACT_HEADING,
    RECOVERY_HEADING,
    RESOLUTIONS_HEADING,
    RISK_REPORT_KIND,
    format_size,
    short_hash,
)
from replica.report.risk import objective_name

TEMPLATES_PATH = Path(__file__).parent / "templates"


@functools.cache
def template_environment() -> jinja2.Environment:
    """Return the Jinja2 environment of replica's report templates (built once): autoescaped, strict about
    undefined names, with the filters and headings the templates share."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_PATH),
        autoescape=True,
        # A missing key is a bug in a template or a body that is not a report: fail loudly, never print blanks.
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        duration=format_duration,
        percent=format_percent,
        short_hash=short_hash,
        size=format_size,
        objective_name=objective_name,
        or_dash=or_dash,
    )
    environment.globals["headings"] = {
        "impact": IMPACT_HEADING,
        "at_risk": AT_RISK_HEADING,
        "resolutions": RESOLUTIONS_HEADING,
        "recovery": RECOVERY_HEADING,
    }
    return environment


def render_html(body: dict[str, Any]) -> str:
    """Return a report body (data-loss, or risk when it says `kind: risk`) as a standalone HTML page.

    Raises jinja2.UndefinedError when the body lacks a key every report of its kind has.
    """
    name = "risk.html.j2" if body.get("kind") == RISK_REPORT_KIND else "dataloss.html.j2"
    return (
        template_environment()
        .get_template(name)
        .render(
            report=body,
            # Optional keys are resolved here so that the templates stay strict about every other key.
            report_id=body.get("report_id"),
            events=body.get("events") or [],
            bytes_known="bytes_at_risk" in body["data_at_risk"],
        )
    )


def format_percent(fraction: float | None) -> str:
    """Return a fraction (0..1) as a percentage with one decimal, `99.9%`, or `-` when unknown."""
    if fraction is None:
        return "-"
    # Truncate rather than round: an auditor must never read 100.0% for a rate with a single failure in it. The
    # epsilon keeps binary fractions such as 0.999 * 1000 = 998.9999… from losing a tenth.
    return f"{math.floor(fraction * 1000 + 1e-6) / 10:.1f}%"


def or_dash(value: object) -> object:
    """Return the value, or `-` for None or an empty string (an empty table cell reads as a rendering fault)."""
    return "-" if value is None or value == "" else value
