"""Times a client gives (query parameters, form fields, request bodies): ISO 8601, UTC when no zone is named, and
always converted to UTC before they reach the catalog (which cannot store an instant outside year 1 to 9999)."""

from __future__ import annotations

from datetime import UTC, datetime

from replica.errors import UsageError


def in_utc(moment: datetime | None) -> datetime | None:
    """Return a time in UTC (a time without a zone is UTC, as on the command line). Raises ValueError for a time
    that has no UTC instant (0001-01-01T00:00:00+01:00)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range once converted to UTC") from None


def parse_moment(text: str) -> datetime | None:
    """Return the time a form field holds, in UTC; None when empty. Raises UsageError for anything else."""
    if not text.strip():
        return None
    try:
        return in_utc(datetime.fromisoformat(text.strip()))
    except ValueError as error:
        raise UsageError(f"'{text[:64]}' is not an ISO 8601 time such as 2026-05-04T13:00 ({error})") from None
