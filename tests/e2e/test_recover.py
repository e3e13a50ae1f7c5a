"""`replica recover PLAN --to ENVIRONMENT`: a dry run prints the plan and changes nothing; a target holding data
refuses the whole recovery before anything is restored; a recovery into fresh targets restores every store of the
plan identically, records a `recover` event and drafts one notice per client with the four parts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.repositories import init_side_by_side
from tests.e2e.sources import DirectorySource, PostgresqlSource, databases_like

PLAN = "shop"
HEADINGS = ("Assessment of the potential loss", "Planned measures", "Estimated impact", "Expected recovery time")


@dataclass(frozen=True)
class Shop:
    """The plan's two stores, both backed up and verified."""

    database: PostgresqlSource
    uploads: DirectorySource


@pytest.fixture(scope="module")
def shop(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """GIVEN a plan over a PostgreSQL job (with a canary) and a directory job, each backed up and verified through
    the CLI; ACME Retail uses both stores, Globex only the database."""
    database = PostgresqlSource(tmp_path_factory.mktemp("recover-pg"))
    try:
        uploads = DirectorySource(tmp_path_factory.mktemp("recover-files"))
        deployment.write_job(
            "shop-db",
            database.store_config(),
            deployment.two_destinations("shopdb"),
            description="Orders and customers",
            clients=["ACME Retail", "Globex"],
            canary=True,
        )
        deployment.write_job(
            "shop-files", uploads.store_config(), deployment.two_destinations("shopfiles"), clients=["ACME Retail"]
        )
        drills = deployment.root / "drills"
        drills.mkdir()
        plan = {"name": PLAN, "description": "the ACME shop", "jobs": ["shop-db", "shop-files"], "rto": "1h"}
        (drills / f"{PLAN}.yaml").write_text(yaml.safe_dump(plan))
        deployment.environment_extra["REPLICA_DRILLS_DIR"] = str(drills)
        init_side_by_side(deployment, ["shop-db", "shop-files"])
        for job in ("shop-db", "shop-files"):
            assert_ok(deployment.replica("backup", job))
            assert_ok(deployment.replica("verify", job))
        yield Shop(database, uploads)
    finally:
        database.cleanup()


def _environment(deployment: Deployment, name: str, database: str, directory: Path) -> Path:
    folder = deployment.root / "environments"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    targets = {"shop-db": {"to": database}, "shop-files": {"to": str(directory)}}
    path.write_text(yaml.safe_dump({"name": name, "targets": targets}))
    return path


def _counts(deployment: Deployment) -> tuple[int, int]:
    """Return how many runs and how many `recover` events the catalog holds."""
    runs = catalog_rows(deployment, "SELECT count(*) FROM runs")[0][0]
    events = catalog_rows(deployment, "SELECT count(*) FROM events WHERE kind = 'recover'")[0][0]
    return runs, events


def test_dry_run_prints_the_plan_and_touches_nothing(deployment: Deployment, shop: Shop, tmp_path: Path) -> None:
    # GIVEN fresh targets for both stores
    database, directory = shop.database.restore_target(tmp_path), tmp_path / "dr-uploads"
    environment = _environment(deployment, "dry", database, directory)
    before = _counts(deployment)
    # WHEN the recovery is dry-run
    result = deployment.replica("recover", PLAN, "--to", str(environment), "--dry-run")
    # THEN every job's plan is printed: verified point, destination, target, outcome
    assert_ok(result)
    assert "dry run, nothing changed" in result.stdout
    assert result.stdout.count("verified:    yes") == 2 and result.stdout.count("will be created") == 2
    assert f"postgresql database '{database}'" in result.stdout and str(directory) in result.stdout
    assert "destination: primary" in result.stdout and "ACME Retail, Globex" in result.stdout
    # AND nothing was created, run or recorded
    assert databases_like(database) == [] and not directory.exists()
    assert _counts(deployment) == before
    assert not (deployment.state_dir / "reports" / "notices").exists()
    # AND the JSON plan carries the canary time and a forecast notice per client
    document = json.loads(deployment.replica("recover", PLAN, "--to", str(environment), "--dry-run", "--json").stdout)
    assert [step["job"] for step in document["steps"]] == ["shop-db", "shop-files"]
    assert document["steps"][0]["canary_at"] is not None and document["refused"] == []
    assert sorted(document["notices"]) == ["ACME Retail", "Globex"]


def test_a_target_holding_data_refuses_the_whole_recovery(deployment: Deployment, shop: Shop, tmp_path: Path) -> None:
    # GIVEN a fresh database target and a directory target that holds data (restored second)
    database, directory = shop.database.restore_target(tmp_path), tmp_path / "in-use"
    directory.mkdir()
    (directory / "precious.txt").write_text("live data")
    environment = _environment(deployment, "busy", database, directory)
    before = _counts(deployment)
    # WHEN the recovery runs without --force
    result = deployment.replica("recover", PLAN, "--to", str(environment))
    # THEN it is refused naming the target, and nothing was restored anywhere (not even the first job)
    assert result.returncode == 2, result.stderr
    assert "refusing the whole recovery" in result.stderr and str(directory) in result.stderr
    assert databases_like(database) == []
    assert [path.name for path in directory.iterdir()] == ["precious.txt"]
    assert _counts(deployment) == before


def test_recover_restores_identical_data_and_drafts_a_notice_per_client(
    deployment: Deployment, shop: Shop, tmp_path: Path
) -> None:
    # GIVEN fresh targets for both stores
    database, directory = shop.database.restore_target(tmp_path), tmp_path / "dr-uploads"
    environment = _environment(deployment, "standby", database, directory)
    # WHEN the plan is recovered into them
    result = deployment.replica("recover", PLAN, "--to", str(environment), "--incident-at", "2030-01-01T00:00:00Z")
    # THEN both stores hold exactly the backed-up data
    assert_ok(result)
    assert shop.database.contents(database) == shop.database.contents()
    assert shop.uploads.contents(str(directory)) == shop.uploads.contents()
    # AND one notice per client, each a draft with the four parts about that client's stores only
    notices = [Path(line.split(": ", 1)[1]) for line in result.stdout.splitlines() if line.startswith("client notice")]
    assert sorted(path.name for path in notices) == ["acme-retail.md", "globex.md"]
    for path in notices:
        text = path.read_text()
        assert "DRAFT" in text and all(f"## {heading}" in text for heading in HEADINGS), text
        assert "canary written into the store" in text and "2030-01-01T00:00:00+00:00" in text
        assert "Recovered in" in text and "passed: restore, integrity, fingerprint" in text
        body = json.loads(path.with_suffix(".json").read_text())
        assert body["completed"] is True and body["recovery_time"]["seconds"] > 0
    acme, globex = (json.loads(path.with_suffix(".json").read_text()) for path in sorted(notices))
    assert [s["job"] for s in acme["measures"]["steps"]] == ["shop-db", "shop-files"]
    assert [s["job"] for s in globex["measures"]["steps"]] == ["shop-db"]
    assert globex["assessment"]["worst_window_seconds"] > 3600 * 24  # up to the incident, years ahead
    # AND the recovery is in the verification log with each store's snapshot, destination and time
    events = deployment.replica_json("audit", "log", "--kind", "recover")
    assert len(events) == 1 and events[0]["outcome"] == "succeeded"
    figures = events[0]["figures"]
    assert figures["plan"] == PLAN and [job["job"] for job in figures["jobs"]] == ["shop-db", "shop-files"]
    assert all(job["destination"] == "primary" and job["seconds"] > 0 for job in figures["jobs"])
