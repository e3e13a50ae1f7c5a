"""Which lead a catalog URL gets, and the lead's lock key (no database: see tests/integration/test_leadership)."""

from __future__ import annotations

from pathlib import Path

import pytest

from replica.catalog.database import MIGRATION_LOCK_KEY
from replica.daemon.leadership import (
    LEADER_LOCK_KEY,
    AdvisoryLockLead,
    FileLockLead,
    SoleLead,
    leadership_for,
)
from replica.errors import ConfigError


def test_the_lead_key_is_its_own_and_a_postgresql_bigint() -> None:
    # The migration's transaction lock and the lead share PostgreSQL's one advisory key space: one key would make
    # a standby's schema check wait for the leader to die.
    assert LEADER_LOCK_KEY != MIGRATION_LOCK_KEY
    assert 0 < LEADER_LOCK_KEY < 2**63


def test_each_catalog_engine_gets_its_lock(tmp_path: Path) -> None:
    assert isinstance(leadership_for("postgresql+psycopg://replica:secret@db.example/replica"), AdvisoryLockLead)
    file_lead = leadership_for(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    assert isinstance(file_lead, FileLockLead)
    # beside the catalog, so that every daemon of the host finds the same file
    assert file_lead.try_acquire()
    assert (tmp_path / "catalog.sqlite3.leader-lock").exists()
    file_lead.release()
    assert isinstance(leadership_for("sqlite://"), SoleLead)


def test_an_engine_without_a_lead_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        leadership_for("mysql+pymysql://replica:hunter2@db.example/replica")
    assert "hunter2" not in str(refused.value)
    assert "db.example" in str(refused.value)
