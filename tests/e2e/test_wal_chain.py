"""The WAL of a physical PostgreSQL job after it is archived: the lag of each destination against the real shared
server's current position (`wal-status`, `status`), a gap found by `wal-verify` naming the copy that still has it,
and retention deleting only what no retained base backup needs.

The shared server is only read (its current WAL position) and never switched: a fixed window of segments is
archived under names around its current one (WINDOW before it, 3 after), sealed by the real archive on moto's S3
server. Names are what the chain, the lag and retention judge. Other tests may make the shared server switch
segments meanwhile: the assertions hold however far it moves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from replica.actions.context import Context
from replica.actions.wal import wal_archives
from replica.actions.wal_lag import record_wal_lags
from replica.catalog.records import utc_now
from replica.config.models import PostgresqlStoreConfig
from replica.settings import load_settings
from replica.stores.postgresql_wal import read_wal_position
from replica.wal.archive import WalArchive
from replica.wal.lag import LONG_PAGE_HEADER_BYTES
from replica.wal.segments import Segment, format_lsn, parse_lsn
from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.sources import PG_PASSWORD_VARIABLE, POSTGRES

JOB = "walchain"
# Segments archived before the current one: what retention deletes (a fixed number, whatever the server's age).
WINDOW = 3
# A source position recorded this long before the test, at the end of the offsite copy's newest segment.
RECORDED_SECONDS_AGO = 600


@dataclass
class Archived:
    """The job's three archives and the number of the server's current segment."""

    context: Context
    primary: WalArchive
    offsite: WalArchive
    vault: WalArchive
    current: int
    timeline: int
    segment_bytes: int

    def name(self, offset: int) -> str:
        """Return the name of the segment `offset` from the server's current one."""
        return Segment(self.timeline, self.current + offset).name(self.segment_bytes)


def _names(archive: WalArchive) -> list[str]:
    return [stored.name for stored in archive.stored()]


@pytest.fixture(scope="module")
def archived(deployment: Deployment) -> Iterator[Archived]:
    """GIVEN a physical job of the shared server with a base backup recorded in the primary only, starting in the
    server's current segment; the primary holds the segments from current-WINDOW to current+3 (ahead: the server
    may switch segments meanwhile), the offsite copy lags (up to current-1) and the vault holds current..current+3;
    a source position was recorded RECORDED_SECONDS_AGO at the end of current-1."""
    store = {**POSTGRES, "kind": "postgresql", "database": "postgres", "mode": "physical"}
    vault = {"name": "vault", "bucket": deployment.new_bucket("walc-v"), "prefix": "restic/walc"}
    destinations = [*deployment.two_destinations("walc"), vault]
    deployment.write_job(JOB, {**store, "password_env": PG_PASSWORD_VARIABLE}, destinations)
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in deployment.environment().items():
            patch.setenv(variable, value)
        context = Context(load_settings())
        job, _ = context.job(JOB)
        assert isinstance(job.store, PostgresqlStoreConfig)
        position = read_wal_position(job.store)
        assert position.segment.number >= WINDOW, "the shared server has not written its first segments yet"
        here = Archived(
            context, *wal_archives(context, job), position.segment.number, position.timeline, position.segment_bytes
        )
        for offset in range(-WINDOW, 4):
            here.primary.push(here.name(offset), b"wal %d" % offset)
            archive = here.offsite if offset < 0 else here.vault
            archive.push(here.name(offset), b"wal %d" % offset)
        for archive in (here.primary, here.offsite, here.vault):
            archive.push(f"{here.name(-WINDOW)}.00000028.backup", b"backup history of an older base backup")
            # A later timeline branching off far past the archived window: every archived segment is on the
            # server's timeline, which that history says a restore follows there.
            switch = format_lsn((here.current + 100) * here.segment_bytes)
            archive.push(f"{here.timeline + 1:08X}.history", f"{here.timeline}\t{switch}\tno target\n".encode())
        start_lsn = here.current * here.segment_bytes + 0x28
        fingerprint = {
            "start_lsn": format_lsn(start_lsn),
            "end_lsn": format_lsn(start_lsn + 0x100),
            "timeline": here.timeline,
            "wal_segment_size": here.segment_bytes,
            "system_identifier": "7300000000000000001",
        }
        run_id = context.catalog.start_run(JOB, "backup", phase="backup")
        context.catalog.add_snapshot(
            job=JOB,
            destination="primary",
            snapshot_id="base0001",
            original_id="base0001",
            backup_run_id=run_id,
            taken_at=utc_now(),
            bytes_processed=1,
            bytes_added=1,
            stored_name="base.tar",
            fingerprint=fingerprint,
        )
        context.catalog.finish_run(run_id, succeeded=True, snapshot_id="base0001")
        recorded_at = utc_now() - timedelta(seconds=RECORDED_SECONDS_AGO)
        context.catalog.wal_lags.add_position(JOB, recorded_at, format_lsn(here.current * here.segment_bytes))
        yield here


def test_lag_is_measured_per_destination_recorded_and_shown_by_status(
    deployment: Deployment, archived: Archived
) -> None:
    # WHEN the lag is measured against the server's current position
    document = deployment.replica_json("wal-status", JOB)
    # THEN the offsite copy lags (the server wrote past its newest segment) by at least the time since the source
    # was recorded at the end of that segment: an upper bound, since that position is old enough to bound it
    primary, offsite, vault = document["destinations"]
    assert offsite["newest_segment"] == archived.name(-1)
    assert offsite["behind_bytes"] > LONG_PAGE_HEADER_BYTES
    assert offsite["lag_seconds"] >= RECORDED_SECONDS_AGO and not offsite["lag_is_lower_bound"]
    # AND the primary, which holds segments past the current one, has lost nothing while the server has not
    # written past them; however far it went, the primary never lags the copy that holds less
    assert (primary["destination"], primary["newest_segment"]) == ("primary", archived.name(3))
    assert (vault["newest_segment"], vault["lag_seconds"]) == (archived.name(3), primary["lag_seconds"])
    primary_end = (archived.current + 4) * archived.segment_bytes
    if parse_lsn(document["source_insert_lsn"]) <= primary_end + LONG_PAGE_HEADER_BYTES:
        assert primary["lag_seconds"] == 0.0 and primary["behind_bytes"] <= LONG_PAGE_HEADER_BYTES
    assert primary["lag_seconds"] <= offsite["lag_seconds"]
    assert [d["chain"]["state"] for d in document["destinations"]] == ["ok", "no base backup", "no base backup"]
    # AND status shows the recorded lag (from the catalog only) per destination
    (job,) = [j for j in deployment.replica_json("status")["jobs"] if j["job"] == JOB]
    lags = {d["name"]: d["wal_lag"] for d in job["destinations"]}
    assert lags["primary"]["measured_lag_seconds"] == primary["lag_seconds"]
    assert lags["primary"]["newest_segment"] == archived.name(3)
    assert lags["offsite"]["measured_lag_seconds"] == offsite["lag_seconds"]
    assert lags["offsite"]["lag_seconds"] >= offsite["lag_seconds"]  # aged since the measurement
    # AND the daemon's tick measures every physical job again, replacing the recorded lag
    assert record_wal_lags(archived.context) == 1
    remeasured = archived.context.catalog.wal_lags.latest([JOB])[JOB]
    assert remeasured["offsite"].lag_seconds is not None
    assert remeasured["offsite"].lag_seconds >= offsite["lag_seconds"]
    assert remeasured["offsite"].measured_at > datetime.fromisoformat(lags["offsite"]["measured_at"])


def test_a_segment_deleted_from_the_primary_is_a_gap_naming_the_copy_that_has_it(
    deployment: Deployment, archived: Archived
) -> None:
    # GIVEN segment current+1 deleted from the primary (the vault still has it, the lagging offsite copy not)
    archived.primary.delete([archived.name(1)])
    try:
        # WHEN the chain is verified
        result = deployment.replica("wal-verify", JOB, "--json")
    finally:
        archived.primary.push(archived.name(1), b"wal 1")
    # THEN it fails, naming the LSN range and the copy that still has all of it
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    primary = document["destinations"][0]
    (gap,) = primary["gaps"]
    start = (archived.current + 1) * archived.segment_bytes
    assert (gap["start_lsn"], gap["end_lsn"]) == (format_lsn(start), format_lsn(start + archived.segment_bytes))
    assert gap["held_by"] == [{"destination": "vault", "whole": True, "ranges": [gap["description"]]}]
    # AND the run is recorded failed with its event in the verification log, and a data-loss report names the
    # store, the clients, the range at risk and the copy to restore from
    run_id = document["run_id"]
    assert catalog_rows(deployment, f"SELECT kind, status FROM runs WHERE id = {run_id}") == [("wal_verify", "failed")]
    events = catalog_rows(deployment, f"SELECT kind, outcome, figures FROM events WHERE run_id = {run_id} ORDER BY seq")
    assert [(kind, outcome) for kind, outcome, _ in events] == [("wal_verify", "failed"), ("report", "written")]
    checks = json.loads(events[0][2])["checks"]
    assert [(c["name"], c["passed"]) for c in checks] == [
        ("wal-chain:primary", False),
        ("wal-chain:offsite", True),
        ("wal-chain:vault", True),
    ]
    report = Path(document["report_path"]).read_text()
    assert "postgresql cluster on 127.0.0.1:5432 (physical)" in report
    assert "Client A" in report
    assert f"{format_lsn(start)}-{format_lsn(start + archived.segment_bytes)}" in report
    assert "is still in 'vault'" in report
    # AND once the segment is back, the chain is whole again
    assert_ok(deployment.replica("wal-verify", JOB))


def test_prune_deletes_wal_older_than_the_oldest_retained_base_backup_and_nothing_else(
    deployment: Deployment, archived: Archived
) -> None:
    before = {"primary": _names(archived.primary), "offsite": _names(archived.offsite)}
    first = -WINDOW
    expired = [*(archived.name(offset) for offset in range(first, 0)), f"{archived.name(first)}.00000028.backup"]
    # WHEN retention is shown, then applied
    shown = deployment.replica_json("prune", JOB, "--dry-run")
    assert _names(archived.primary) == before["primary"]  # a dry run deletes nothing
    assert_ok(deployment.replica("prune", JOB))
    # THEN the dry run listed, and the prune deleted, exactly what precedes the base backup's start segment
    wal = {d["destination"]: d["wal"] for d in shown["destinations"]}
    assert wal["primary"] == {"kept_from": archived.name(0), "removed": sorted(expired)}
    assert _names(archived.primary) == [name for name in before["primary"] if name not in expired]
    assert archived.name(0) in _names(archived.primary)
    # AND the offsite copy, with no base backup retained, keeps everything
    assert wal["offsite"] == {"kept_from": None, "removed": []}
    assert _names(archived.offsite) == before["offsite"]
