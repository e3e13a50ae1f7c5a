"""Initialising the repositories of several jobs at once, for module fixtures that give each test its own job."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping, Sequence

from tests.e2e.conftest import Deployment, assert_ok


def init_side_by_side(
    deployment: Deployment, jobs: Sequence[str], environments: Mapping[str, dict[str, str]] | None = None
) -> None:
    """Run `replica init` for every job at the same time; fail with the CLI's output when one did not exit 0.

    `restic init` is seconds of CPU per repository, most of it calibrating and deriving the key: several jobs'
    inits run side by side take well under half the time they take one after the other on two cores (restic
    picks cheaper key parameters when it shares the CPU). `environments` gives a job's init its own environment.
    """
    if not deployment.catalog.has_schema():
        # The first command on a fresh state directory creates the catalog alone: commands that start together on
        # a missing catalog race to create its schema ("table runs already exists").
        assert_ok(deployment.replica("status"))
    chosen = environments or {}
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: deployment.replica("init", job, env=chosen.get(job)), jobs))
    for result in results:
        assert_ok(result)
