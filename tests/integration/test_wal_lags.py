"""The recorded WAL lag on both catalog databases: migration 0010 creates its table, a measurement replaces the
previous one per job and destination, and the lag read back grows with the time since it was measured."""

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
    assert columns == {"job", "destination", "measured_at", "lag_seconds", "newest_segment", "newest_stored_at",
                       "insert_lsn"}  # fmt: skip
    lags = Catalog(sessions).wal_lags
    measured_at = utc_now()
    first = LagRecord("billing", "primary", measured_at, 12.5, "000000010000000000000007", measured_at, "0/7000028")
    empty = LagRecord("billing", "offsite", measured_at, None, None, None, "0/7000028")
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
    assert offsite.seconds_at(measured_at + timedelta(seconds=30)) is None
    assert lags.latest() == recorded
