"""Jobs whose destinations share a restic repository: found from the configuration (cached outlines included),
and a prune of one holds the run locks of the others, so it never overlaps their backups."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from replica.actions.context import Context
from replica.actions.prune import run_prune
from replica.catalog.locks import JobLocks
from replica.config.load import load_configuration
from replica.errors import JobBusy
from replica.settings import Settings


def write_job(root: Path, name: str, destinations: list[dict[str, Any]]) -> None:
    (root / "jobs").mkdir(exist_ok=True)
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "p.yaml").write_text(yaml.safe_dump({"name": "p", "rpo": "1h", "rto": "15m"}))
    document = {"name": name, "store": {"kind": "directory", "path": str(root)}, "destinations": destinations}
    (root / "jobs" / f"{name}.yaml").write_text(yaml.safe_dump({**document, "policy": "p"}))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    # billing and crm share their offsite repository (spelt differently: restic joins `restic//crm/` and
    # `restic/crm` alike); uploads uses the same bucket under another prefix, and another endpoint.
    write_job(
        tmp_path,
        "billing",
        [{"name": "primary", "bucket": "main", "prefix": "billing"}, {"name": "off", "bucket": "off", "prefix": "crm"}],
    )
    write_job(
        tmp_path,
        "crm",
        [{"name": "primary", "bucket": "main", "prefix": "crm"}, {"name": "off", "bucket": "off", "prefix": "crm//"}],
    )
    write_job(
        tmp_path,
        "uploads",
        [
            {"name": "primary", "bucket": "main", "prefix": "uploads"},
            {"name": "off", "bucket": "off", "prefix": "crm", "endpoint_url": "https://s3.example.net"},
        ],
    )
    return tmp_path


def test_jobs_sharing_a_repository_are_found_also_from_the_cache(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import replica.config.load

    monkeypatch.setattr(replica.config.load, "RACY_SECONDS", -1.0)  # the files just written count as settled
    cache = root / "state" / "configuration-cache.json"
    for _ in range(2):  # the first load fills the cache, the second reads the outlines from it
        configuration = load_configuration(root / "jobs", root / "policies", cache)
        assert configuration.sharing_repositories("billing") == ["crm"]
        assert configuration.sharing_repositories("crm") == ["billing"]
        assert configuration.sharing_repositories("uploads") == []
        assert configuration.sharing_repositories("nonexistent") == []
    outlines = [entry["outline"] for entry in json.loads(cache.read_text())["files"].values()]
    assert len(outlines) == 3 and all(len(outline[4]) == 2 for outline in outlines)  # a repository per destination


def test_a_prune_is_refused_while_a_job_sharing_its_repository_holds_its_lock(root: Path) -> None:
    # GIVEN a backup of crm running (its run lock held by a live process of this host)
    context = Context(Settings(state_dir=root / "state", jobs_dir=root / "jobs", policies_dir=root / "policies"))
    locks = JobLocks(context.catalog.sessions)
    token = locks.acquire("crm", "backup", host=socket.gethostname(), pid=os.getpid(), is_alive=lambda pid: True)

    # WHEN billing, whose offsite repository crm shares, is pruned, THEN it is refused before any run or restic call,
    # naming the busy job, and releases the locks it took
    with pytest.raises(JobBusy, match=r"job 'crm' is busy: backup"):
        run_prune(context, "billing", dry_run=False)
    assert context.catalog.runs(job="billing") == []
    assert locks.holder("billing") is None

    # AND once crm's backup is over, the prune holds both jobs while it runs (and nothing is left held after)
    locks.release("crm", token)
    outcome = run_prune(context, "billing", dry_run=False)
    assert outcome.succeeded  # nothing recorded yet, so nothing to remove: no restic call
    assert locks.holder("billing") is None and locks.holder("crm") is None
