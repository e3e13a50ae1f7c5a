"""Where a PostgreSQL server's write-ahead log is now: what the replication lag of its archive is measured against.

Read-only: three functions of the server, no setting changed, so it works with the job's own (backup) user.
"""

from __future__ import annotations

import psycopg

from replica.config.models import PostgresqlStoreConfig
from replica.secrets import store_password
from replica.stores.base import source_error
from replica.stores.postgresql import CONNECT_TIMEOUT_SECONDS
from replica.wal.lag import WalPosition
from replica.wal.segments import parse_lsn

# pg_settings gives the size in its unit: bytes since PostgreSQL 11, 8 kB blocks before.
_UNIT_BYTES = {"B": 1, "kB": 1024, "8kB": 8192, "MB": 1024 * 1024}
_QUERY = (
    "SELECT pg_current_wal_insert_lsn()::text, (SELECT timeline_id FROM pg_control_checkpoint()), "
    "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "
    "(SELECT unit FROM pg_settings WHERE name = 'wal_segment_size')"
)


def read_wal_position(config: PostgresqlStoreConfig) -> WalPosition:
    """Return the source's insert LSN, timeline and WAL segment size.

    Raises SourceUnreachable when the server cannot be reached, StoreError when it cannot answer (a standby in
    recovery has no insert position) or the password is missing (ConfigError).
    """
    where = f"postgresql on {config.host}:{config.port}"
    try:
        with psycopg.connect(
            host=config.host,
            port=config.port,
            user=config.user,
            dbname=config.database,
            password=store_password(config, where),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            autocommit=True,
            application_name="replica",
        ) as connection:
            row = connection.execute(_QUERY).fetchone()
    except psycopg.Error as error:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        raise source_error(
            f"{where}: cannot read the WAL position: {(lines or [type(error).__name__])[0]}", str(error)
        ) from None
    if row is None or row[2] is None:
        raise source_error(f"{where}: cannot read the WAL position: no answer")
    insert, timeline, setting, unit = row
    return WalPosition(parse_lsn(insert), int(timeline), int(setting) * _UNIT_BYTES.get(unit or "B", 1))
