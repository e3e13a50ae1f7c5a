"""e2e: `replica drill` over a service made of the machine's real PostgreSQL, Redis and a directory, with checks
across the stores; the exercise report, its review, and nothing left behind."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.repositories import init_side_by_side
from tests.e2e.sources import (
    PG_PASSWORD_VARIABLE,
    POSTGRES,
    REDIS_TEST_DB,
    databases_like,
    drop_database,
    postgres_connect,
)
from tests.support.catalogs import DeploymentCatalog, deployment_catalog

PLAN = "shop-drill"
DATABASE_JOB, CACHE_JOB, FILES_JOB = "drill-db", "drill-cache", "drill-files"
ATTACHMENTS = ["invoices/2026/a-1.pdf", "invoices/2026/a-2.pdf", "avatars/ada.png", "avatars/bob.png"]
USERS = [1, 2, 3]


@dataclass
class Service:
    """The three stores of the service and what the tests change in them."""

    database: str
    redis_prefix: str
    uploads: Path
    scratch_tmp: Path  # the replica processes' TMPDIR: a scratch redis-server's work folder lands here


@pytest.fixture(scope="module")
def service(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """GIVEN a PostgreSQL database (users, attachments), Redis sessions naming users, an uploads directory holding
    every attachment, a job for each with its repository, and a drill plan with two cross-store checks."""
    database = f"replica_e2e_drill_{secrets.token_hex(4)}"
    prefix = f"e2e:drill:{secrets.token_hex(3)}:"
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_TEST_DB)
    uploads = tmp_path_factory.mktemp("uploads")
    scratch_tmp = deployment.root / "tmp"
    scratch_tmp.mkdir()
    try:
        with postgres_connect("postgres") as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        with postgres_connect(database) as connection:
            connection.execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
            connection.execute("CREATE TABLE attachments (id serial PRIMARY KEY, path text NOT NULL)")
            for user in USERS:
                connection.execute("INSERT INTO users VALUES (%s, %s)", (user, f"user {user}"))
            for path in ATTACHMENTS:
                connection.execute("INSERT INTO attachments (path) VALUES (%s)", (path,))
        for path in ATTACHMENTS:
            (uploads / path).parent.mkdir(parents=True, exist_ok=True)
            (uploads / path).write_bytes(secrets.token_bytes(512))
        for user in USERS:
            client.set(f"{prefix}session:{user}", f"token-{user}", ex=3600)
        buckets = {"primary": deployment.new_bucket("drill-p"), "offsite": deployment.new_bucket("drill-o")}

        def destinations(folder: str) -> list[dict[str, str]]:
            # The offsite copy names its endpoint itself, the primary takes the settings': the clean-room test takes
            # the primary away by pointing the settings at a closed port.
            return [
                {"name": name, "bucket": bucket, "prefix": f"restic/{folder}"}
                | ({"endpoint_url": deployment.s3.endpoint_url} if name == "offsite" else {})
                for name, bucket in buckets.items()
            ]

        deployment.write_job(
            DATABASE_JOB,
            {"kind": "postgresql", **POSTGRES, "database": database, "password_env": PG_PASSWORD_VARIABLE},
            destinations("db"),
        )
        deployment.write_job(CACHE_JOB, {"kind": "redis", "host": "127.0.0.1", "port": 6379}, destinations("cache"))
        deployment.write_job(FILES_JOB, {"kind": "directory", "path": str(uploads)}, destinations("files"))
        (deployment.root / "drills").mkdir()
        plan = {
            "name": PLAN,
            "jobs": [DATABASE_JOB, CACHE_JOB, FILES_JOB],
            "checks": [
                {
                    "name": "every attachment is an uploaded file",
                    "values": {"job": DATABASE_JOB, "sql": "SELECT path FROM attachments"},
                    "exist_in": {"job": FILES_JOB, "files": "**/*"},
                },
                {
                    "name": "every session names a user",
                    "values": {"job": CACHE_JOB, "keys": f"{prefix}session:*", "extract": r"session:([0-9]+)$"},
                    "exist_in": {"job": DATABASE_JOB, "sql": "SELECT id::text FROM users"},
                },
            ],
            "rto": "10m",
            "owners": ["dba@example.com"],
        }
        (deployment.root / "drills" / f"{PLAN}.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
        deployment.environment_extra.update(REPLICA_DRILLS_DIR=str(deployment.root / "drills"), TMPDIR=str(scratch_tmp))
        init_side_by_side(deployment, [DATABASE_JOB, CACHE_JOB, FILES_JOB])
        for job in (DATABASE_JOB, CACHE_JOB, FILES_JOB):
            assert_ok(deployment.replica("backup", job))
        yield Service(database, prefix, uploads, scratch_tmp)
    finally:
        drop_database(database)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def _drill(deployment: Deployment, *arguments: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = deployment.replica("drill", PLAN, *arguments, "--json")
    assert result.returncode in (0, 1), result.stderr
    return result, json.loads(result.stdout)


def _assert_nothing_left(deployment: Deployment, service: Service) -> None:
    # No scratch database, directory or RDB, and no scratch redis-server (its work folder would be in TMPDIR).
    for job in (DATABASE_JOB, CACHE_JOB, FILES_JOB):
        assert databases_like(f"replica_verify_{job.replace('-', '_')}%") == []
    scratch = deployment.state_dir / "scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []
    assert list(service.scratch_tmp.iterdir()) == []
    servers = subprocess.run(["pgrep", "-f", str(service.scratch_tmp)], capture_output=True, text=True, check=False)
    assert servers.stdout == ""


def test_a_drill_restores_every_store_to_one_moment_and_checks_them_together(
    deployment: Deployment, service: Service
) -> None:
    # WHEN the plan is drilled
    started = time.monotonic()
    result, report = _drill(deployment)
    elapsed = time.monotonic() - started

    # THEN it passes, every store restored with its own checks and an RTO within its objective
    assert result.returncode == 0, report["failures"]
    assert report["passed"] is True and report["failures"] == []
    assert [store["job"] for store in report["stores"]] == [DATABASE_JOB, CACHE_JOB, FILES_JOB]
    for store in report["stores"]:
        assert store["passed"] and store["rto_met"]
        assert 0 < store["rto_seconds"] < elapsed
        assert {"restore", "integrity", "fingerprint"} <= {check["name"] for check in store["checks"]}
    # AND the cross-store checks compared the real restored values
    checks = {check["name"]: check for check in report["cross_checks"]}
    attachments = checks["every attachment is an uploaded file"]
    assert attachments["passed"] and attachments["values_count"] == len(ATTACHMENTS)
    assert attachments["exist_in_count"] == len(ATTACHMENTS)
    sessions = checks["every session names a user"]
    assert sessions["passed"] and sessions["values_count"] == len(USERS) == sessions["exist_in_count"]
    # AND the service time covers every store, within the plan's objective
    assert report["service"]["met"] and report["service"]["seconds"] >= max(s["rto_seconds"] for s in report["stores"])
    # AND the report exists in three formats, with an empty review section, and its path is printed
    for path in report["reports"].values():
        assert Path(path).is_file()
    markdown = Path(report["reports"]["markdown"]).read_text()
    assert "## Review" in markdown and "Not reviewed yet" in markdown
    assert "every session names a user" in Path(report["reports"]["html"]).read_text()
    # AND the verification log holds one drill event with the figures
    rows = catalog_rows(deployment, f"SELECT outcome, figures FROM events WHERE kind = 'drill' AND job = '{PLAN}'")
    assert [row[0] for row in rows] == ["succeeded"]
    figures = json.loads(rows[0][1])
    assert [store["job"] for store in figures["stores"]] == [DATABASE_JOB, CACHE_JOB, FILES_JOB]
    assert figures["checks_failed"] == 0 and figures["service_seconds"] > 0
    # AND each store's restore is a run of its own job, child of the drill's, with the RTO measured (the forecast
    # reads it beside the verifications')
    for store in report["stores"]:
        restores = [
            run for run in deployment.replica_json("runs", "--job", store["job"]) if run["kind"] == "drill_restore"
        ]
        assert [(run["status"], run["snapshot_id"], run["destination"]) for run in restores] == [
            ("succeeded", store["snapshot"], "primary")
        ]
        assert restores[0]["details"]["rto_seconds"] == pytest.approx(store["rto_seconds"], abs=0.01)
    # AND nothing is left behind
    _assert_nothing_left(deployment, service)


@pytest.fixture
def clean_room_catalog(deployment: Deployment, tmp_path: Path) -> Iterator[DeploymentCatalog]:
    """A new catalog of the deployment's kind for the state folder `clean-room-state` (deleted afterwards)."""
    with deployment_catalog(deployment.catalog.kind, tmp_path / "clean-room-state") as catalog:
        yield catalog


def test_a_clean_room_drill_needs_only_the_copy_and_its_keys(
    deployment: Deployment, service: Service, tmp_path: Path, clean_room_catalog: DeploymentCatalog
) -> None:
    # GIVEN a state folder with an empty catalog (nothing is known of the backups), the primaries out of reach (the
    # settings' S3 endpoint is a closed port; only the offsite copies name their own), and two password files
    empty_state = tmp_path / "clean-room-state"
    environment = deployment.environment(
        REPLICA_STATE_DIR=str(empty_state),
        REPLICA_S3_ENDPOINT_URL="http://127.0.0.1:9",
        **clean_room_catalog.environment(),
    )
    wrong_password = tmp_path / "wrong-password"
    wrong_password.write_text("not the repository password\n")

    def clean_room(password_file: Path) -> subprocess.CompletedProcess[str]:
        arguments = ["drill", PLAN, "--clean-room", "--destination", "offsite", "--password-file", str(password_file)]
        return deployment.replica(*arguments, "--json", env=environment)

    # WHEN the plan is drilled in the clean room from the offsite copies, with the right password file
    result = clean_room(deployment.password_file)

    # THEN it passes from the copies alone: every store restored from 'offsite' and checked, the cross-store
    # checks hold
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True, report["failures"]
    assert {store["destination"] for store in report["stores"]} == {"offsite"}
    assert all(check["passed"] for check in report["cross_checks"])

    # WHEN the wrong password file is given
    refused = clean_room(wrong_password)

    # THEN it fails at once with one line naming the password (exit 5), and no drill ran
    assert refused.returncode == 5, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("replica: error:")]
    assert len(errors) == 1 and "wrong repository password" in errors[0] and "'offsite'" in errors[0], refused.stderr
    assert clean_room_catalog.rows("SELECT status FROM runs WHERE kind = 'drill'") == [("succeeded",)]
    scratch = empty_state / "scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []


def test_a_missing_referenced_file_fails_the_drill_naming_it_and_a_review_is_recorded(
    deployment: Deployment, service: Service
) -> None:
    # GIVEN one referenced upload deleted, and the directory backed up again after a known moment
    before_deletion = datetime.now(UTC)
    time.sleep(1.1)  # snapshot times have second precision in places: keep the cut clearly before
    (service.uploads / ATTACHMENTS[1]).unlink()
    assert_ok(deployment.replica("backup", FILES_JOB))

    # WHEN the plan is drilled now
    result, report = _drill(deployment)

    # THEN it fails on the cross-store check, which names the missing path, in the output and every report
    assert result.returncode == 1
    check = next(c for c in report["cross_checks"] if c["name"] == "every attachment is an uploaded file")
    assert not check["passed"] and check["missing"] == [ATTACHMENTS[1]] and check["missing_count"] == 1
    assert all(store["passed"] for store in report["stores"])  # each store alone is fine
    assert any(ATTACHMENTS[1] in failure for failure in report["failures"])
    for path in report["reports"].values():
        assert ATTACHMENTS[1] in Path(path).read_text()
    run_id = report["run_id"]
    assert catalog_rows(deployment, f"SELECT status FROM runs WHERE id = {run_id}") == [("failed",)]

    # WHEN the drill is reviewed
    note = "restore the upload from the CDN cache; add a delete guard (ticket OPS-42)"
    assert_ok(deployment.replica("drill", "review", str(run_id), "--note", note))

    # THEN every format of the report carries the dated note, and the log a `reviewed` event
    for path in report["reports"].values():
        assert note in Path(path).read_text()
    assert "Not reviewed yet" not in Path(report["reports"]["markdown"]).read_text()
    rows = catalog_rows(deployment, f"SELECT outcome FROM events WHERE kind = 'drill' AND run_id = {run_id}")
    assert sorted(row[0] for row in rows) == ["failed", "reviewed"]

    # WHEN the plan is drilled at a cut time before the deletion
    result, earlier = _drill(deployment, "--at", before_deletion.isoformat())

    # THEN the older snapshot of the directory is chosen, and the drill passes
    assert result.returncode == 0, earlier["failures"]
    files = next(store for store in earlier["stores"] if store["job"] == FILES_JOB)
    assert files["snapshot"] != next(s for s in report["stores"] if s["job"] == FILES_JOB)["snapshot"]
    # AND `drill list` shows the plan with its last drill; nothing is left behind
    listed = deployment.replica_json("drill", "list")
    assert listed[0]["plan"] == PLAN and listed[0]["last_run"]["run_id"] == earlier["run_id"]
    _assert_nothing_left(deployment, service)


def test_a_scheduled_plan_is_drilled_by_run_due_once_per_period(deployment: Deployment, service: Service) -> None:
    # GIVEN a second plan over the same jobs that has a schedule and was never drilled (the jobs' policy schedules
    # nothing, so a drill is all that can be due)
    scheduled = "shop-drill-daily"
    plan = {"name": scheduled, "jobs": [DATABASE_JOB, CACHE_JOB, FILES_JOB], "rto": "10m", "schedule": "every 1d"}
    (deployment.root / "drills" / f"{scheduled}.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    backups_before = [run for run in deployment.replica_json("runs", "--limit", "1000") if run["kind"] == "backup"]

    # WHEN `replica run-due` runs twice
    assert_ok(deployment.replica("run-due"))
    assert_ok(deployment.replica("run-due"))

    # THEN the plan was drilled once (due at once when never drilled, then not again within its day), by run-due
    # like any scheduled work, and nothing else was started
    drills = [run for run in deployment.replica_json("runs", "--job", scheduled) if run["kind"] == "drill"]
    assert [run["status"] for run in drills] == ["succeeded"]
    backups_after = [run for run in deployment.replica_json("runs", "--limit", "1000") if run["kind"] == "backup"]
    assert backups_after == backups_before
    _assert_nothing_left(deployment, service)


def test_a_store_that_cannot_be_restored_fails_the_drill_and_the_others_still_run_and_are_removed(
    deployment: Deployment, service: Service
) -> None:
    # GIVEN every blob of the uploads' offsite copy damaged at rest (whichever the newest snapshot needs; the other
    # drills of the module use the primary, or ran before)
    job_file = yaml.safe_load((deployment.root / "jobs" / f"{FILES_JOB}.yaml").read_text())
    offsite = next(destination for destination in job_file["destinations"] if destination["name"] == "offsite")
    client = deployment.s3.client()
    packs = client.list_objects_v2(Bucket=offsite["bucket"], Prefix=f"{offsite['prefix']}/data/")["Contents"]
    for pack in packs:
        body = bytearray(client.get_object(Bucket=offsite["bucket"], Key=pack["Key"])["Body"].read())
        for offset in range(0, len(body), 64):  # a byte in every 64: every blob of the pack is damaged
            body[offset] ^= 0xFF
        client.put_object(Bucket=offsite["bucket"], Key=pack["Key"], Body=bytes(body))

    # WHEN the plan is drilled from the offsite copies
    result, report = _drill(deployment, "--destination", "offsite")

    # THEN the drill fails on that store, whose restore is a failed run of its job with the reason; the other stores
    # were restored and checked all the same; the check that needed the uploads says they were not restored
    assert result.returncode == 1
    stores = {store["job"]: store for store in report["stores"]}
    assert not stores[FILES_JOB]["passed"] and stores[FILES_JOB]["rto_seconds"] is None
    assert stores[DATABASE_JOB]["passed"] and stores[CACHE_JOB]["passed"]
    attachments = next(c for c in report["cross_checks"] if c["name"] == "every attachment is an uploaded file")
    assert not attachments["passed"] and "was not restored" in attachments["detail"]
    restores = [run for run in deployment.replica_json("runs", "--job", FILES_JOB) if run["kind"] == "drill_restore"]
    assert restores[0]["status"] == "failed" and restores[0]["destination"] == "offsite" and restores[0]["error"]
    # AND every scratch target, the failed one's too, is gone
    _assert_nothing_left(deployment, service)


def test_sigterm_mid_drill_stops_it_records_it_interrupted_and_removes_every_target(
    deployment: Deployment, service: Service, tmp_path: Path
) -> None:
    # GIVEN a restic that hangs when asked for a snapshot's data (a slow destination), so the drill is caught with
    # its first scratch database made
    marker = tmp_path / "restoring"
    real = shutil.which("restic")
    slow = tmp_path / "restic"
    slow.write_text(
        "#!/bin/sh\n"
        'for argument in "$@"; do\n'
        f'  case "$argument" in dump|restore) echo $$ > {marker}; exec sleep 300;; esac\n'
        "done\n"
        f'exec {real} "$@"\n'
    )
    slow.chmod(0o755)
    drill = subprocess.Popen(
        [sys.executable, "-m", "replica", "drill", PLAN],
        env=deployment.environment(REPLICA_RESTIC_BINARY=str(slow)),
        cwd=deployment.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert drill.poll() is None and time.monotonic() < deadline, drill.communicate()
        time.sleep(0.1)

    # WHEN it gets SIGTERM
    drill.send_signal(signal.SIGTERM)
    _, stderr = drill.communicate(timeout=60)
    deployment.outputs.append(stderr)

    # THEN it stops as interrupted (exit 130), its run and the store's restore are recorded so, the hung restic is
    # gone, and so is every scratch target
    assert drill.returncode == 130, stderr
    drills = [run for run in deployment.replica_json("runs", "--job", PLAN) if run["kind"] == "drill"]
    assert drills[0]["status"] == "interrupted"
    restores = [run for run in deployment.replica_json("runs", "--job", DATABASE_JOB) if run["kind"] == "drill_restore"]
    assert restores[0]["status"] == "interrupted"
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)
    _assert_nothing_left(deployment, service)
