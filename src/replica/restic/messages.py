"""restic's `--json` output parsed into frozen dataclasses. Human output is never scraped for data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class UnexpectedOutput(ValueError):
    """restic printed JSON without the message replica needs (a restic change, or a truncated run)."""


def json_lines(stdout: str) -> Iterator[dict[str, Any]]:
    """Yield every JSON object printed one per line; other lines are skipped."""
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict):
            yield message


@dataclass(frozen=True)
class BackupSummary:
    """The `summary` message of `restic backup --json`."""

    snapshot_id: str
    files_new: int
    files_changed: int
    total_files_processed: int
    total_bytes_processed: int
    data_added: int
    total_duration_seconds: float


def parse_backup_summary(stdout: str) -> BackupSummary:
    """Return the summary of a backup. Raises UnexpectedOutput when there is none."""
    for message in json_lines(stdout):
        if message.get("message_type") == "summary" and message.get("snapshot_id"):
            return BackupSummary(
                snapshot_id=str(message["snapshot_id"]),
                files_new=int(message.get("files_new", 0)),
                files_changed=int(message.get("files_changed", 0)),
                total_files_processed=int(message.get("total_files_processed", 0)),
                total_bytes_processed=int(message.get("total_bytes_processed", 0)),
                data_added=int(message.get("data_added", 0)),
                total_duration_seconds=float(message.get("total_duration", 0.0)),
            )
    raise UnexpectedOutput("restic backup printed no summary with a snapshot id")


@dataclass(frozen=True)
class ResticSnapshot:
    """One entry of `restic snapshots --json`."""

    id: str
    short_id: str
    time: datetime
    paths: tuple[str, ...]
    hostname: str
    tags: tuple[str, ...]
    original: str | None


def parse_time(text: str) -> datetime:
    """Return restic's RFC 3339 timestamp (nanoseconds allowed) as an aware datetime."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text)


def parse_snapshots(stdout: str) -> list[ResticSnapshot]:
    """Return the snapshots listed by `restic snapshots --json`. Raises UnexpectedOutput on other output."""
    try:
        document = json.loads(stdout or "[]")
    except json.JSONDecodeError as error:
        raise UnexpectedOutput(f"restic snapshots printed invalid JSON: {error}") from None
    if not isinstance(document, list):
        raise UnexpectedOutput("restic snapshots printed JSON that is not a list")
    return [
        ResticSnapshot(
            id=str(item["id"]),
            short_id=str(item.get("short_id", item["id"][:8])),
            time=parse_time(str(item["time"])),
            paths=tuple(item.get("paths") or ()),
            hostname=str(item.get("hostname", "")),
            tags=tuple(item.get("tags") or ()),
            original=item.get("original"),
        )
        for item in document
    ]
