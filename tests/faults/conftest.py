"""Fixtures of the fault suite: the e2e tier's moto server and deployment, and a fault-injecting proxy in front."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# The e2e tier's fixtures, shared as they are: a deployment per module, scanned for leaked secrets at teardown.
from tests.e2e.conftest import catalog_kind, deployment, s3_server
from tests.support.faultproxy import FaultProxy
from tests.support.s3server import S3Server

__all__ = ["catalog_kind", "deployment", "fault_proxy", "s3_server"]


@pytest.fixture(scope="module")
def fault_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's moto server, transparent until a test injects a fault;
    each test should `clear()` what it injected (a module's later tests then see a healthy endpoint)."""
    with FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy
