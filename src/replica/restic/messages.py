"""restic's `--json` output parsed into frozen dataclasses. Human output is never scraped for data, with one
exception: restic 0.14 reports damage only as text on stderr (no JSON), so `named_repository_files` reads which
repository files its error lines name, to be re-downloaded and hashed before anyone is told data was lost."""

from __future__ import annotations

import json
import re
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
    tree: str | None = None  # the root tree's id: a copy made by `restic copy` has its original's


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
            tree=item.get("tree"),
        )
        for item in document
    ]


# restic 0.14's handle of a repository file, `<data/94826f2184>` (type, then the id shortened to 10 characters), as
# printed by `Load(<data/...>) returned error` and `load <snapshot/...>: invalid data returned`.
_HANDLE = re.compile(r"<(data|index|snapshot|key)/([0-9a-f]{8,64})>")
# A path of a repository file: the local and S3 backends print it in "open .../data/d4/d4f3...: no such file".
_PATH = re.compile(r"(?<![0-9a-z])(data/[0-9a-f]{2}|index|snapshots|keys)/([0-9a-f]{8,64})(?![0-9a-f])")
# `check --read-data`: "Pack ID does not match, want ID, got HASH", "pack ID: does not exist", "pack ID failed to
# download", "pack ID contains N errors"; and "error loading index ID".
_WANTED_PACK = re.compile(r"Pack ID does not match, want ([0-9a-f]{8,64})")
_PACK = re.compile(r"(?<![0-9a-z])pack ([0-9a-f]{8,64})(?![0-9a-f])")
_INDEX = re.compile(r"error loading index ([0-9a-f]{8,64})")
_FOLDER_OF_TYPE = {"data": "data", "index": "index", "snapshot": "snapshots", "key": "keys"}


def repository_file_path(folder: str, file_id: str) -> str:
    """Return where a repository file (or, for a shortened id, every file starting with it) lives, relative to the
    repository: `data/94/94826f...` for a pack (its first two hex digits name a subfolder), `index/ID` otherwise."""
    return f"data/{file_id[:2]}/{file_id}" if folder == "data" else f"{folder}/{file_id}"


def named_repository_files(stderr: str) -> tuple[str, ...]:
    """Return the repository files restic's error output names, as sorted paths relative to the repository
    (`repository_file_path`); a shortened id stays a prefix, dropped when a full path it starts is named too.

    Lock files and `config` are never named: locks come and go, and `config` is not named by its hash. Returns an
    empty tuple when restic named no file (the caller then has to look at every file).
    """
    paths: set[str] = set()
    for match in _WANTED_PACK.finditer(stderr):
        paths.add(repository_file_path("data", match.group(1)))
    for match in _PACK.finditer(stderr):
        paths.add(repository_file_path("data", match.group(1)))
    for match in _INDEX.finditer(stderr):
        paths.add(repository_file_path("index", match.group(1)))
    for match in _HANDLE.finditer(stderr):
        paths.add(repository_file_path(_FOLDER_OF_TYPE[match.group(1)], match.group(2)))
    for match in _PATH.finditer(stderr):
        folder = match.group(1).split("/", 1)[0]
        paths.add(repository_file_path(folder, match.group(2)))
    return tuple(sorted(path for path in paths if not any(o != path and o.startswith(path) for o in paths)))
