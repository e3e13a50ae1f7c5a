"""Store kinds: one module each behind the contract in `base.py`, looked up in `STORE_KINDS`."""

from __future__ import annotations

from collections.abc import Callable

from replica.config.models import (
    DirectoryStoreConfig,
    JobConfig,
    MariadbStoreConfig,
    PolicyConfig,
    PostgresqlStoreConfig,
    RedisStoreConfig,
    SqliteStoreConfig,
)
from replica.errors import ConfigError
from replica.execute import DEFAULT_STALL_SECONDS
from replica.stores.base import Store

# Each kind's module is imported when a job of that kind is used: a database driver costs start-up time for
# every command (`replica status` needs none of them).


def _directory(job: JobConfig, policy: PolicyConfig) -> Store:
    from replica.stores.directory import DirectoryStore

    assert isinstance(job.store, DirectoryStoreConfig)
    return DirectoryStore(job.store, sample_files=policy.verification.sample_files)


def _sqlite(job: JobConfig, policy: PolicyConfig) -> Store:
    from replica.stores.sqlite import SqliteStore

    assert isinstance(job.store, SqliteStoreConfig)
    return SqliteStore(job.store)


def _postgresql(job: JobConfig, policy: PolicyConfig) -> Store:
    assert isinstance(job.store, PostgresqlStoreConfig)
    if job.store.mode == "physical":
        from replica.stores.postgresql_physical import PhysicalPostgresqlStore

        return PhysicalPostgresqlStore(job.store, job.name, job.destinations)
    from replica.stores.postgresql import PostgresqlStore

    return PostgresqlStore(job.store)


def _mariadb(job: JobConfig, policy: PolicyConfig) -> Store:
    from replica.stores.mariadb import MariadbStore

    assert isinstance(job.store, MariadbStoreConfig)
    return MariadbStore(job.store)


def _redis(job: JobConfig, policy: PolicyConfig) -> Store:
    from replica.stores.redis import RedisStore

    assert isinstance(job.store, RedisStoreConfig)
    return RedisStore(job.store, sample_keys=policy.verification.sample_files)


STORE_KINDS: dict[str, Callable[[JobConfig, PolicyConfig], Store]] = {
    "directory": _directory,
    "sqlite": _sqlite,
    "postgresql": _postgresql,
    "mariadb": _mariadb,
    "redis": _redis,
}


def build_store(job: JobConfig, policy: PolicyConfig, *, stall_seconds: float | None = DEFAULT_STALL_SECONDS) -> Store:
    """Return the Store for a job, whose processes stop after `stall_seconds` without progress (None: never).

    Raises ConfigError listing the valid kinds when the kind is unknown.
    """
    factory = STORE_KINDS.get(job.store.kind)
    if factory is None:
        raise ConfigError(
            [
                f"job '{job.name}': at 'store.kind': unknown kind '{job.store.kind}' "
                f"(valid: {', '.join(sorted(STORE_KINDS))})"
            ]
        )
    store = factory(job, policy)
    store.stall_seconds = stall_seconds
    return store
