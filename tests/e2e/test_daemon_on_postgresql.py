"""The daemon's e2e tests (test_daemon.py) again, the deployment's catalog a PostgreSQL database: the shared,
multi-node setup, where scheduling, job locks and the running-run sweep go through PostgreSQL's transactions."""

from tests.e2e import test_daemon
from tests.support.catalogs import namespace_of

globals().update(namespace_of(test_daemon))
CATALOG = "postgresql"
