"""The recorded WAL lag on both catalog databases: migration 0010 creates its tables, a measurement replaces the
previous one per job and destination, the lag read back grows with the time since it was measured, and the source
positions the lag is computed from are kept per job, oldest first, the newest few only."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import inspect

from replica.catalog.database import open_catalog
from replica.catalog.records import Catalog, utc_now
from replica.catalog.wal_lags import LagRecord


def test_lags_round_trip_replace_per_destination_and_age(catalog_url: str) -> None:
    sessions = open_catalog(catalog_url)
    with sessions() as session:
        columns = {column["name"] for column in inspect(session.connection()).get_columns("wal_lags")}
    assert columns == {"job", "destination", "measured_at", "lag_seconds", "lag_is_lower_bound", "newest_segment",
                       "newest_stored_at", "insert_lsn"}  # fmt: skip
    lags = Catalog(sessions).wal_lags
    measured_at = utc_now()
    first = LagRecord("billing", "primary", measured_at, 12.5, "000000010000000000000007", measured_at, "0/7000028")
    empty = LagRecord("billing", "offsite", measured_at, 600.0, None, None, "0/7000028", lower_bound=True)
    lags.record([first, empty])
    lags.record([replace(first, lag_seconds=0.0, newest_segment="000000010000000000000008")])

    recorded = lags.latest(["billing", "other"])

    assert set(recorded) == {"billing"}
    primary, offsite = recorded["billing"]["primary"], recorded["billing"]["offsite"]
    assert (primary.lag_seconds, primary.newest_segment, primary.measured_at) == (
        0.0,
        "000000010000000000000008",
        measured_at,
    )
    assert primary.seconds_at(measured_at + timedelta(seconds=30)) == 30.0
    assert (offsite.lower_bound, primary.lower_bound) == (True, False)
    assert offsite.seconds_at(measured_at + timedelta(seconds=30)) == 630.0
    assert lags.latest() == recorded


def test_source_positions_are_kept_per_job_oldest_first_the_newest_only(catalog_url: str) -> None:
    lags = Catalog(open_catalog(catalog_url)).wal_lags
    start = utc_now()
    for minute in range(5):
        lags.add_position("billing", start + timedelta(minutes=minute), f"0/{minute + 1}000000", kept=3)
    lags.add_position("other", start, "0/9000000", kept=3)

    assert lags.positions("billing") == [
        (start + timedelta(minutes=minute), f"0/{minute + 1}000000") for minute in (2, 3, 4)
    ]
    assert lags.positions("other") == [(start, "0/9000000")]
