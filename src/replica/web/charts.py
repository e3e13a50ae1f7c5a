"""Charts of the console as inline SVG, drawn on the server (no JavaScript library): measured values over time as
a line with a dot per measurement, and the objective as a dashed horizontal line. A dot over the objective, or
from a run that failed, is drawn in the failing colour (`class="point over"`), so a breach stands out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from replica.config.durations import format_duration
from replica.web.history import HistoryPoint

WIDTH = 640
HEIGHT = 220
MARGIN_LEFT = 64
MARGIN_RIGHT = 16
MARGIN_TOP = 16
MARGIN_BOTTOM = 36
# Head room over the highest value or the objective, so neither touches the top edge.
HEADROOM = 1.15


def _x_scale(points: Sequence[HistoryPoint]) -> tuple[datetime, float]:
    """Return the first moment and the pixels per second of the time axis (one point sits in the middle)."""
    first, last = points[0].at, points[-1].at
    span = (last - first).total_seconds()
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    return first, plot_width / span if span > 0 else 0.0


def _x(at: datetime, first: datetime, pixels_per_second: float) -> float:
    if pixels_per_second == 0.0:
        return MARGIN_LEFT + (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / 2
    return MARGIN_LEFT + (at - first).total_seconds() * pixels_per_second


def _y(seconds: float, top_seconds: float) -> float:
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    return MARGIN_TOP + plot_height * (1 - seconds / top_seconds)


def time_series_chart(points: Sequence[HistoryPoint], objective_seconds: float, *, title: str) -> str:
    """Return an SVG document fragment charting `points` (oldest first) against `objective_seconds`.

    With no points the chart says so and still draws the objective, so an empty history is visibly empty.
    """
    top = max([objective_seconds, *(point.seconds for point in points)]) * HEADROOM or 1.0
    bottom = HEIGHT - MARGIN_BOTTOM
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" data-points="{len(points)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{MARGIN_LEFT}" y1="{bottom}" x2="{WIDTH - MARGIN_RIGHT}" y2="{bottom}"/>',
        f'<line class="axis" x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{bottom}"/>',
        f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{bottom}" text-anchor="end">0</text>',
        f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{MARGIN_TOP + 4:.1f}" text-anchor="end">'
        f"{escape(format_duration(top))}</text>",
    ]
    objective_y = _y(objective_seconds, top)
    parts.append(
        f'<line class="objective" x1="{MARGIN_LEFT}" y1="{objective_y:.1f}" x2="{WIDTH - MARGIN_RIGHT}" '
        f'y2="{objective_y:.1f}" data-seconds="{objective_seconds:g}"/>'
    )
    parts.append(
        f'<text class="objective-label" x="{WIDTH - MARGIN_RIGHT}" y="{objective_y - 4:.1f}" text-anchor="end">'
        f"objective {escape(format_duration(objective_seconds))}</text>"
    )
    if not points:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle">'
            "no measurements yet</text>"
        )
    else:
        parts += _series(points, objective_seconds, top)
    parts.append("</svg>")
    return "\n".join(parts)


def _series(points: Sequence[HistoryPoint], objective_seconds: float, top: float) -> list[str]:
    """Return the SVG of the measured line, one dot per point (with a tooltip), and the time axis's end labels."""
    first, pixels_per_second = _x_scale(points)
    coordinates = [(_x(point.at, first, pixels_per_second), _y(point.seconds, top)) for point in points]
    parts = []
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        parts.append(f'<polyline class="measured" points="{path}"/>')
    for point, (x, y) in zip(points, coordinates, strict=True):
        over = point.seconds > objective_seconds or not point.passed
        measured = format_duration(point.seconds)
        tooltip = f"{point.at:%Y-%m-%d %H:%M:%S} UTC: {measured} ({point.kind} run {point.run_id})"
        parts.append(
            f'<circle class="point {"over" if over else "within"}" cx="{x:.1f}" cy="{y:.1f}" r="4" '
            f'data-seconds="{point.seconds:.3f}"><title>{escape(tooltip)}</title></circle>'
        )
    label_y = HEIGHT - MARGIN_BOTTOM + 18
    parts.append(
        f'<text class="tick" x="{MARGIN_LEFT}" y="{label_y}">{points[0].at:%Y-%m-%d %H:%M}</text>'
        f'<text class="tick" x="{WIDTH - MARGIN_RIGHT}" y="{label_y}" text-anchor="end">'
        f"{points[-1].at:%Y-%m-%d %H:%M}</text>"
    )
    return parts
