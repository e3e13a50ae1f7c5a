"""Configuration changes in the verification log: every job or policy file added, changed or removed.

Only each file's SHA-256 is recorded, never its content (a job file may hold a dead-man URL, which is a secret).
Checked by every command that does work and by the daemon at start and on every reload: an auditor can see which
configuration each run ran under.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from replica.actions.context import Context
from replica.catalog.actor import current_actor
from replica.catalog.events import EventDraft
from replica.catalog.models import Event

CONFIG_KIND = "config"


def configuration_digests(context: Context) -> dict[str, tuple[Path, str]]:
    """Return, per configuration file (`job:NAME`, `policy:NAME`), its path and the SHA-256 of its bytes."""
    digests: dict[str, tuple[Path, str]] = {}
    for label, folder in (("job", context.settings.jobs_dir), ("policy", context.settings.policies_dir)):
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue  # unreadable now: config validation reports it; the next command records it
            digests[f"{label}:{path.stem}"] = (path, digest)
    return digests


def record_configuration_changes(context: Context) -> int:
    """Append a `config` event for every configuration file added, changed or removed since the log last saw it;
    return how many were appended. Decided and appended under the log's lock, so that two commands starting
    together record a change once."""
    settings = context.settings
    if not settings.jobs_dir.is_dir() or not settings.policies_dir.is_dir():
        # Run from the wrong folder: the command fails on its own; recording every file as removed would be noise.
        return 0
    current = configuration_digests(context)
    catalog = context.catalog
    # Most commands find nothing changed: decide that without the log's lock, which is a write (and an fsync).
    with catalog.sessions() as session:
        if not _changes(session, current):
            return 0
    with catalog.sessions.begin() as session:
        catalog.events.lock(session)
        drafts = _changes(session, current)  # again under the lock: another command may have recorded them
        catalog.events.append_locked(session, drafts)
    return len(drafts)


def _changes(session: Session, current: dict[str, tuple[Path, str]]) -> list[EventDraft]:
    """Return the events of the files in `current` that differ from what the log last recorded of each."""
    known: dict[str, str | None] = {}
    rows = session.execute(select(Event.figures, Event.outcome).where(Event.kind == CONFIG_KIND).order_by(Event.seq))
    for figures_text, outcome in rows:
        figures = json.loads(figures_text)
        known[figures["file"]] = None if outcome == "removed" else figures.get("sha256")
    drafts = []
    for name, (path, digest) in sorted(current.items()):
        before = known.get(name)
        if before != digest:
            drafts.append(_draft(name, "added" if before is None else "changed", path, digest, before))
    for name, before in sorted(known.items()):
        if before is not None and name not in current:
            drafts.append(_draft(name, "removed", None, None, before))
    return drafts


def _draft(name: str, outcome: str, path: Path | None, digest: str | None, before: str | None) -> EventDraft:
    label, _, stem = name.partition(":")
    figures: dict[str, str | None] = {"file": name, "sha256": digest, "previous_sha256": before}
    if path is not None:
        figures["path"] = str(path)
    return EventDraft(
        kind=CONFIG_KIND,
        outcome=outcome,
        actor=current_actor(),
        job=stem if label == "job" else None,
        figures=figures,
        detail=f"{label} file {stem} {outcome}",
    )
