"""What `replica verify` adds for a physical PostgreSQL job: a recovery to a random point in time, proven by a
canary, and the WAL chain of the verified destination.

With `canary: true` the verification writes a canary into the live database, waits until the WAL holding it is
archived on the destination (asking the server to switch segments when the job's user may), and recovers the base
backup to a random moment between the backup's end and that canary (`policy.recovery_target`). The newest canary
written before that moment must come back, and nothing committed after it: the restored canary proves the time
reached. Without canaries the recovery replays the whole archive. Either way the destination's chain is listed for
gaps, which a recovery that stops early would not show.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

from replica.actions.context import Context
from replica.actions.proving import ExpectedData
from replica.actions.runs import RunRecorder
from replica.actions.wal import wal_archive
from replica.actions.wal_chain import CHECK_PREFIX, check_wal_chain
from replica.catalog.records import CheckOutcome, utc_now
from replica.config.models import DestinationConfig, JobConfig, PostgresqlStoreConfig, is_physical
from replica.errors import StorageError, StoreError
from replica.policy.recovery_target import choose_recovery_target
from replica.stores.base import Canary, Store
from replica.stores.postgresql_physical import PhysicalPostgresqlStore
from replica.stores.postgresql_wal import read_wal_position
from replica.wal.archive import WalArchive
from replica.wal.segments import Segment, parse_segment_name, segment_of_lsn

# How long the verification waits for its canary's WAL to reach the destination: archive_timeout plus a push.
ARCHIVED_WAIT_SECONDS = 120.0
ARCHIVED_POLL_SECONDS = 0.5


@dataclass
class PhysicalAim:
    """What a physical verification recovers to, the data it must find there, and checks already decided."""

    expected: ExpectedData
    checks: list[CheckOutcome] = field(default_factory=list)


def aim_physical_verification(
    context: Context,
    job: JobConfig,
    store: Store,
    destination: DestinationConfig,
    expected: ExpectedData,
    run: RunRecorder,
) -> PhysicalAim:
    """Choose the recovery target of a physical job's verification and tell the store; return the expected data
    (its canary replaced by the one the target must bring back) and any check already failed. Returns `expected`
    unchanged for other jobs. Raises StoreError when the canary cannot be written (the live database is down)."""
    if not is_physical(job) or not isinstance(store, PhysicalPostgresqlStore):
        return PhysicalAim(expected)
    store.aim_recovery(None)
    if not job.canary:
        return PhysicalAim(expected)
    assert isinstance(job.store, PostgresqlStoreConfig)
    run.phase("canary")
    written = Canary(run.run_id, utc_now())
    store.write_canary(written)
    run.details.update(canary_written_at=written.written_at.isoformat())
    position = read_wal_position(job.store)
    needed = segment_of_lsn(position.insert_lsn - 1, position.timeline, position.segment_bytes)
    store.switch_wal()
    run.phase("wait-archived")
    archive = wal_archive(context, job, destination)
    if not _wait_archived(archive, needed, position.segment_bytes):
        # Recovery then replays whatever is archived: no canary is known to be there, so none is compared (the
        # failed check says why); the backup's canary would pass or fail by chance.
        return PhysicalAim(
            without_canary(expected),
            [
                CheckOutcome(
                    "point-in-time",
                    False,
                    True,
                    f"the canary written at {written.written_at.isoformat()} was not archived on '{destination.name}' "
                    f"within {ARCHIVED_WAIT_SECONDS:.0f} s (segment {needed.name(position.segment_bytes)}): WAL "
                    "archiving is stalled or far behind",
                )
            ],
        )
    backup_end = datetime.fromisoformat(str(expected.fingerprint["end_time"]))
    backup_canary = expected.fingerprint.get("canary")
    since = Canary.from_document(backup_canary).written_at if backup_canary else backup_end
    canaries = store.canaries_since(since)
    chosen = choose_recovery_target(backup_end, written.written_at, canaries, random.Random())
    target, aimed = aim_at(expected, written, chosen)
    store.aim_recovery(target)
    if target is not None:
        run.details.update(recovery_target=target.isoformat())
        context.progress(f"recovering to {target.isoformat()} (random between the backup's end and now)")
    return PhysicalAim(aimed)


def aim_at(
    expected: ExpectedData, written: Canary, chosen: tuple[datetime, Canary | None] | None
) -> tuple[datetime | None, ExpectedData]:
    """Return the recovery target (None: the end of the archive) and the expected data for a `chosen` target
    (`choose_recovery_target`'s answer), `written` being the canary this verification wrote and saw archived.

    No target (the backup ended moments ago): recovery replays the whole archive, which holds `written`, so that
    canary must come back, not the backup's older one. A target: the newest canary before it (unchanged when none
    was written before it)."""
    if chosen is None:
        return None, _expecting(expected, written)
    target, before = chosen
    return target, expected if before is None else _expecting(expected, before)


def without_canary(expected: ExpectedData) -> ExpectedData:
    """Return `expected` with no canary to compare."""
    fingerprint = {name: value for name, value in expected.fingerprint.items() if name != "canary"}
    return replace(expected, fingerprint=fingerprint)


def _expecting(expected: ExpectedData, canary: Canary) -> ExpectedData:
    return replace(expected, fingerprint={**expected.fingerprint, "canary": canary.as_document()})


def _wait_archived(archive: WalArchive, needed: Segment, segment_bytes: int) -> bool:
    """Return True once the archive holds segment `needed` or a later one (on any timeline), False after
    ARCHIVED_WAIT_SECONDS. Raises StorageError when the destination cannot be listed."""
    start_after = Segment(needed.timeline, max(needed.number - 1, 0)).name(segment_bytes)
    deadline = time.monotonic() + ARCHIVED_WAIT_SECONDS
    while True:
        for stored in archive.stored(start_after=start_after):
            try:
                if parse_segment_name(stored.name, segment_bytes).number >= needed.number:
                    return True
            except ValueError:
                continue  # a history or backup-history file
        if time.monotonic() >= deadline:
            return False
        time.sleep(ARCHIVED_POLL_SECONDS)


def wal_chain_checks(context: Context, job: JobConfig, destination: DestinationConfig) -> list[CheckOutcome]:
    """Return the `wal-chain:DESTINATION` check of a physical job's verified destination (no checks for other
    jobs); a destination that cannot be listed fails the check."""
    if not is_physical(job):
        return []
    name = f"{CHECK_PREFIX}:{destination.name}"
    try:
        checks = check_wal_chain(context, job).checks()
    except (StorageError, StoreError) as error:
        return [CheckOutcome(name, False, True, f"the WAL archive could not be listed: {error}")]
    return [check for check in checks if check.name == name]
