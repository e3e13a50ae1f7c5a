"""The e2e deployments' catalogs (tests/support/catalogs.py) on both kinds: what replica writes shows in their rows
and in their dump (which the secret sweep at every e2e teardown reads), and a new catalog's database goes away."""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest

from replica.catalog.database import open_catalog
from replica.catalog.records import Catalog
from tests.support.catalogs import CATALOG_KINDS, POSTGRESQL_ADMIN, deployment_catalog


@pytest.mark.parametrize("kind", CATALOG_KINDS)
def test_what_replica_writes_shows_in_the_rows_and_the_dump_and_the_catalog_goes_away(
    kind: str, tmp_path: Path
) -> None:
    # GIVEN a deployment's new catalog, where replica recorded a failed run whose error holds a canary
    canary = f"canary-{secrets.token_hex(8)}"
    with deployment_catalog(kind, tmp_path / "state") as catalog:
        assert not catalog.has_schema()
        sessions = open_catalog(catalog.url)
        records = Catalog(sessions)
        run_id = records.start_run("billing", "backup", phase="dump")
        records.finish_run(run_id, succeeded=False, error=f"exit 1: {canary}")
        sessions.kw["bind"].dispose()

        # WHEN the tests read it THEN they see the row as SQLite shows it, and the dump holds the canary
        assert catalog.has_schema()
        ((status, error, details, started_at),) = catalog.rows(
            "SELECT status, error, details, started_at FROM runs WHERE id = :run", run=run_id
        )
        assert (status, error, details) == ("failed", f"exit 1: {canary}", "{}")
        assert isinstance(started_at, str) and started_at[:2] == "20"
        assert canary in catalog.dump()
        name = catalog.name

    # AND once the deployment is done its PostgreSQL database is gone
    if kind == "postgresql":
        with psycopg.connect(POSTGRESQL_ADMIN) as admin:
            assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (0,)
