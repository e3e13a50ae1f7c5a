"""The console's Jinja2 templates and the filters every page uses; `render` answers a page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from replica.catalog.tokens import TokenHolder
from replica.config.durations import format_duration

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def format_moment(value: datetime | str | None) -> str:
    """Return a time as the pages show it (`2026-05-04 13:02:11`, always UTC), or `-` for none."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def state_class(state: str | None) -> str:
    """Return the CSS class of a job or run state (`state-at-risk` for `at risk`)."""
    return "state-" + (state or "unknown").replace(" ", "-")


templates.env.filters["duration"] = format_duration
templates.env.filters["moment"] = format_moment
templates.env.filters["state_class"] = state_class


def render(
    request: Request, template: str, holder: TokenHolder | None, status_code: int = 200, **context: Any
) -> Response:
    """Return a page: `template` rendered with `context` and the signed-in holder (shown in the header)."""
    return templates.TemplateResponse(request, template, {"holder": holder, **context}, status_code=status_code)
