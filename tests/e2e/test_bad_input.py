"""Bad input gets one clear line, a distinct non-zero exit, a run recorded as failed, and nothing left behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.repositories import init_side_by_side
from tests.e2e.sources import SqliteSource, databases_like
from tests.support.s3server import SECRET_ACCESS_KEY, free_port


def error_lines(stderr: str) -> list[str]:
    """Return the error lines (progress lines also go to stderr); never a traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("replica: error: ")]


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory: pytest.TempPathFactory) -> SqliteSource:
    return SqliteSource(tmp_path_factory.mktemp("bad-input-source"))


@pytest.fixture(scope="module")
def initialised(deployment: Deployment, sqlite_source: SqliteSource) -> dict[str, list[dict[str, str]]]:
    """Destinations with initialised repositories, both pairs at once (init costs ~5 s a job): "failing" for
    `failing_destinations`, and "wrongpw", whose password comes from E2E_REPOSITORY_PASSWORD, here 'right'. The job
    files are removed again; each test writes its own."""
    failing = deployment.two_destinations("failing")
    deployment.write_job("failing-init", {"kind": "directory", "path": "/tmp"}, failing)
    wrong_password = deployment.two_destinations("wrongpw")
    for destination in wrong_password:
        destination["password_env"] = "E2E_REPOSITORY_PASSWORD"
    deployment.write_job("wrongpw", sqlite_source.store_config(), wrong_password)
    right = deployment.environment(E2E_REPOSITORY_PASSWORD="right")
    init_side_by_side(deployment, ["failing-init", "wrongpw"], {"wrongpw": right})
    for name in ("failing-init", "wrongpw"):
        (deployment.root / "jobs" / f"{name}.yaml").unlink()
    return {"failing": failing, "wrongpw": wrong_password}


@pytest.fixture(scope="module")
def failing_destinations(initialised: dict[str, list[dict[str, str]]]) -> list[dict[str, str]]:
    """Initialised destinations shared by the jobs whose backups must fail; since every backup into them fails,
    they must never hold a snapshot."""
    return initialised["failing"]


def assert_no_snapshot_stored(deployment: Deployment, destinations: list[dict[str, str]]) -> None:
    """Fail when any destination's repository holds a snapshot object."""
    client = deployment.s3.client()
    for destination in destinations:
        listed = client.list_objects_v2(Bucket=destination["bucket"], Prefix=f"{destination['prefix']}/snapshots/")
        assert listed.get("KeyCount", 0) == 0, f"snapshot left in {destination['name']}"


def last_failure(deployment: Deployment, job: str) -> str | None:
    """Return the failure state of the job's last run (see README, "Failure states")."""
    rows = catalog_rows(deployment, f"SELECT failure FROM runs WHERE job = '{job}' ORDER BY id DESC LIMIT 1")
    assert rows, f"no run recorded for {job}"
    return str(rows[0][0]) if rows[0][0] is not None else None


def last_run(deployment: Deployment, job: str) -> tuple[str, str, str, str]:
    rows = catalog_rows(
        deployment, f"SELECT kind, status, phase, error FROM runs WHERE job = '{job}' ORDER BY id DESC LIMIT 1"
    )
    assert rows, f"no run recorded for {job}"
    kind, status, phase, error = rows[0]
    return kind, status, phase, error


def test_malformed_job_file_is_reported_and_disables_only_that_job(
    deployment: Deployment, sqlite_source: SqliteSource
) -> None:
    # GIVEN one valid job and one job file with a duplicate key and one with broken YAML
    deployment.write_job("healthy", sqlite_source.store_config(), deployment.two_destinations("healthy"))
    (deployment.root / "jobs" / "duplicated.yaml").write_text(
        "name: duplicated\npolicy: e2e\npolicy: other\nstore: {kind: sqlite, path: /x.db}\n"
    )
    (deployment.root / "jobs" / "broken.yaml").write_text("name: broken\nstore: [unclosed\n")
    # WHEN the configuration is validated
    result = deployment.replica("config", "validate")
    # THEN every problem is reported at once with file and line, exit 2
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert any("duplicated.yaml:3: duplicate key 'policy' (first on line 2)" in line for line in lines), lines
    assert any(re.search(r"broken\.yaml:\d+: ", line) for line in lines), lines
    # AND the broken job refuses to run with one line naming its file
    backup = deployment.replica("backup", "broken")
    assert backup.returncode == 2
    assert len(error_lines(backup.stderr)) == 1 and "broken.yaml" in backup.stderr
    # AND the healthy job is unaffected; status lists the broken ones as disabled
    status = deployment.replica("status")
    assert_ok(status)
    assert "healthy" in status.stdout and "DISABLED broken" in status.stdout
    for name in ("duplicated", "broken"):
        (deployment.root / "jobs" / f"{name}.yaml").unlink()


def test_unknown_store_kind_lists_the_valid_ones(deployment: Deployment) -> None:
    deployment.write_job("mongo", {"kind": "mongodb", "uri": "mongodb://x"}, deployment.two_destinations("mongo"))
    result = deployment.replica("config", "validate")
    assert result.returncode == 2
    (line,) = [line for line in error_lines(result.stderr) if "mongo.yaml" in line]
    assert "at 'store'" in line and "'directory', 'sqlite', 'postgresql'" in line
    (deployment.root / "jobs" / "mongo.yaml").unlink()


def test_missing_bucket_fails_fast_and_is_not_created(deployment: Deployment, sqlite_source: SqliteSource) -> None:
    destinations = deployment.two_destinations("nobucket")
    destinations[0]["bucket"] = "e2e-this-bucket-does-not-exist"
    deployment.write_job("nobucket", sqlite_source.store_config(), destinations)
    result = deployment.replica("backup", "nobucket")
    assert result.returncode == 4, result.stderr
    (line,) = error_lines(result.stderr)
    assert "e2e-this-bucket-does-not-exist" in line and "does not exist" in line
    assert last_run(deployment, "nobucket")[:3] == ("backup", "failed", "probe")
    assert last_failure(deployment, "nobucket") == "repository_missing"
    buckets = {bucket["Name"] for bucket in deployment.s3.client().list_buckets()["Buckets"]}
    assert "e2e-this-bucket-does-not-exist" not in buckets


def test_bucket_without_repository_asks_for_init(deployment: Deployment, sqlite_source: SqliteSource) -> None:
    deployment.write_job("noinit", sqlite_source.store_config(), deployment.two_destinations("noinit"))
    result = deployment.replica("backup", "noinit")
    assert result.returncode == 4, result.stderr
    (line,) = error_lines(result.stderr)
    assert "destination 'primary'" in line and "replica init" in line
    assert last_run(deployment, "noinit")[:3] == ("backup", "failed", "backup")
    assert last_failure(deployment, "noinit") == "repository_missing"


def test_wrong_repository_password(
    deployment: Deployment, sqlite_source: SqliteSource, initialised: dict[str, list[dict[str, str]]]
) -> None:
    # GIVEN a job whose repositories were initialised with the password 'right' from E2E_REPOSITORY_PASSWORD
    deployment.write_job("wrongpw", sqlite_source.store_config(), initialised["wrongpw"])
    secret = "Hunter2-NotTheRightOne"
    result = deployment.replica("backup", "wrongpw", env=deployment.environment(E2E_REPOSITORY_PASSWORD=secret))
    assert result.returncode == 5, result.stderr
    (line,) = error_lines(result.stderr)
    assert "wrong repository password" in line and "'primary'" in line
    assert last_run(deployment, "wrongpw")[:2] == ("backup", "failed")
    assert last_failure(deployment, "wrongpw") == "wrong_password"
    # the password itself shows nowhere: not in the output, not in the catalog
    assert secret not in result.stderr + result.stdout and secret not in deployment.catalog.dump()
    # not even in the debug log, which shows every command replica starts (environment by name only)
    debug = deployment.replica(
        "--debug", "backup", "wrongpw", env=deployment.environment(E2E_REPOSITORY_PASSWORD=secret)
    )
    assert debug.returncode != 0 and "RESTIC_PASSWORD=***" in debug.stderr
    assert secret not in debug.stderr + debug.stdout
    assert SECRET_ACCESS_KEY not in debug.stderr + debug.stdout  # nor the S3 secret key


def test_unreachable_postgresql_fails_cleanly(
    deployment: Deployment, failing_destinations: list[dict[str, str]]
) -> None:
    port = free_port()
    store = {"kind": "postgresql", "host": "127.0.0.1", "port": port, "user": "postgres", "database": "nothere"}
    deployment.write_job("pgdown", store, failing_destinations)
    # Only this job's names: other tests (or another pytest worker) may create scratch databases meanwhile.
    before = set(databases_like("replica_%pgdown%"))
    result = deployment.replica("backup", "pgdown")
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert f"127.0.0.1:{port}" in line and "cannot connect" in line
    assert last_run(deployment, "pgdown")[:3] == ("backup", "failed", "prepare")
    assert last_failure(deployment, "pgdown") == "source_unreachable"
    assert set(databases_like("replica_%pgdown%")) == before
    assert catalog_rows(deployment, "SELECT count(*) FROM snapshots WHERE job = 'pgdown'") == [(0,)]


@pytest.fixture
def failing_pg_dump(tmp_path: Path) -> Path:
    """A pg_dump that writes half a dump and dies, as when the server goes away mid-dump."""
    return fake_tool(
        tmp_path / "bin", "pg_dump", "head -c 20000 /dev/urandom\necho 'pg_dump: error: connection lost' >&2\nexit 1\n"
    )


def test_failed_dump_never_becomes_a_recovery_point(
    deployment: Deployment, failing_pg_dump: Path, failing_destinations: list[dict[str, str]]
) -> None:
    # GIVEN a PostgreSQL job whose pg_dump fails half-way (restic 0.14 would still save a snapshot)
    store = {"kind": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "postgres"}
    deployment.write_job("dumpfails", store, failing_destinations)
    environment = deployment.environment(PATH=f"{failing_pg_dump}:{os.environ['PATH']}")
    # WHEN it is backed up
    result = deployment.replica("backup", "dumpfails", env=environment)
    # THEN the run fails naming pg_dump, and neither the catalog nor the repository keeps the snapshot
    assert result.returncode == 1
    assert "pg_dump" in error_lines(result.stderr)[-1] and "connection lost" in result.stderr
    assert last_run(deployment, "dumpfails")[:3] == ("backup", "failed", "backup")
    assert last_failure(deployment, "dumpfails") == "source_dump_failed"
    assert catalog_rows(deployment, "SELECT count(*) FROM snapshots WHERE job = 'dumpfails'") == [(0,)]
    restic = deployment.replica_json("snapshots", "dumpfails")
    assert restic == []
    assert_no_snapshot_stored(deployment, failing_destinations)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_silent_endpoint_fails_in_seconds_instead_of_hanging(
    deployment: Deployment, sqlite_source: SqliteSource, silent_endpoint: str
) -> None:
    destinations = [
        {"name": "primary", "bucket": "silent-bucket", "endpoint_url": silent_endpoint},
        {"name": "offsite", "bucket": "silent-bucket-2", "endpoint_url": silent_endpoint},
    ]
    deployment.write_job("silent", sqlite_source.store_config(), destinations)
    # The endpoint never answers, so any deadline proves it; a short one spares seconds of waiting.
    environment = deployment.environment(REPLICA_S3_PROBE_TIMEOUT_SECONDS="1")
    started = time.monotonic()
    result = deployment.replica("backup", "silent", env=environment, timeout=120)
    assert time.monotonic() - started < 60
    assert result.returncode == 3, result.stderr
    (line,) = error_lines(result.stderr)
    assert "silent-bucket" in line and "no answer" in line
    # The probe runs beside the dump: restic, already hanging on the endpoint, was stopped by the probe's failure.
    assert last_run(deployment, "silent")[:3] == ("backup", "failed", "probe")
    assert last_failure(deployment, "silent") == "storage_unreachable"
    leftovers = subprocess.run(["pgrep", "-f", "replica-job=silent"], capture_output=True, text=True, check=False)
    assert leftovers.stdout == ""


@pytest.fixture
def endless_pg_dump(tmp_path: Path) -> Path:
    """A pg_dump that trickles output for a long time, so replica can be stopped mid-backup."""
    return fake_tool(
        tmp_path / "slow-bin", "pg_dump", "for i in $(seq 600); do head -c 1000 /dev/urandom; sleep 0.1; done\n"
    )


def test_sigterm_mid_backup_records_an_interrupted_run_and_leaves_no_process(
    deployment: Deployment, endless_pg_dump: Path, failing_destinations: list[dict[str, str]]
) -> None:
    # GIVEN a backup under way
    store = {"kind": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "postgres"}
    deployment.write_job("stopped", store, failing_destinations)
    environment = deployment.environment(PATH=f"{endless_pg_dump}:{os.environ['PATH']}")
    process = subprocess.Popen(
        [sys.executable, "-m", "replica", "backup", "stopped"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=deployment.root,
    )
    assert process.stderr is not None
    assert "backing up" in process.stderr.readline()
    time.sleep(2)
    # WHEN it is terminated
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    # THEN it stops, records the run as interrupted (never left running), and leaves no child behind
    assert process.returncode == 130, stderr
    assert last_run(deployment, "stopped") == ("backup", "interrupted", "backup", "interrupted")
    assert last_failure(deployment, "stopped") == "interrupted"
    leftovers = subprocess.run(["pgrep", "-f", str(endless_pg_dump)], capture_output=True, text=True, check=False)
    assert leftovers.stdout == ""
    assert catalog_rows(deployment, "SELECT count(*) FROM snapshots WHERE job = 'stopped'") == [(0,)]
    assert_no_snapshot_stored(deployment, failing_destinations)


@pytest.fixture
def restic_with_unreadable_files(tmp_path: Path) -> tuple[Path, Path]:
    """A fake restic: backup saves a snapshot but exits 3 (files unreadable), as real restic does; root can read
    everything here, so real restic cannot be made to produce this. Every call is logged."""
    log = tmp_path / "restic-calls.log"
    script = tmp_path / "fake-restic"
    summary = (
        '{"message_type":"summary","total_files_processed":3,"total_bytes_processed":10,"data_added":10,'
        '"total_duration":0.1,"snapshot_id":"0badc0de"}'
    )
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case " $* " in\n'
        f"  *' backup '*) echo '{summary}'; echo 'error: open secret.txt: permission denied' >&2; exit 3;;\n"
        "  *' forget '*) exit 0;;\n"
        "esac\n"
        "exit 1\n"
    )
    script.chmod(0o755)
    return script, log


def test_partially_read_tree_is_discarded(
    deployment: Deployment, tmp_path: Path, restic_with_unreadable_files: tuple[Path, Path]
) -> None:
    script, log = restic_with_unreadable_files
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "secret.txt").write_text("x")
    deployment.write_job("partial", {"kind": "directory", "path": str(tree)}, deployment.two_destinations("partial"))
    result = deployment.replica("backup", "partial", env=deployment.environment(REPLICA_RESTIC_BINARY=str(script)))
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "permission denied" in line and "partial snapshot was discarded" in line
    calls = log.read_text().splitlines()
    assert any(" forget 0badc0de" in call for call in calls), calls
    assert last_run(deployment, "partial")[:3] == ("backup", "failed", "backup")
    assert last_failure(deployment, "partial") == "partial_source_read"
    assert catalog_rows(deployment, "SELECT count(*) FROM snapshots WHERE job = 'partial'") == [(0,)]


def test_a_tree_fingerprint_failing_beside_restic_discards_the_snapshot(
    deployment: Deployment,
    failing_destinations: list[dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GIVEN a directory job whose walk fails (a disk error on a sampled file: root reads everything else here, so
    the walk is replaced in process) WHEN it is backed up THEN the walk ran while real restic was storing the tree,
    and the snapshot restic saved is forgotten, the run failed with the walk's error, nothing recorded."""
    from replica.cli.main import main
    from replica.errors import StoreError
    from replica.stores import directory

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "file.txt").write_text("x" * 100_000)
    deployment.write_job("walkfails", {"kind": "directory", "path": str(tree)}, failing_destinations)
    seen_restic: list[bool] = []

    def failing_walk(root: Path, *arguments: object, **keywords: object) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not seen_restic:
            pattern = "restic.*backup.*replica-job=walkfails"
            probe = subprocess.run(["pgrep", "-f", pattern], capture_output=True, check=False)
            if probe.returncode == 0:
                seen_restic.append(True)
            time.sleep(0.01)
        raise StoreError(f"cannot read {root}/file.txt: Input/output error")

    for name, value in deployment.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(directory, "fingerprint_tree", failing_walk)

    code = main(["backup", "walkfails"])

    (line,) = error_lines(capsys.readouterr().err)
    assert code == 1
    assert seen_restic == [True], "the walk did not run while restic was backing up"
    assert "Input/output error" in line
    assert last_run(deployment, "walkfails")[:3] == ("backup", "failed", "backup")
    assert last_failure(deployment, "walkfails") == "source_dump_failed"
    assert catalog_rows(deployment, "SELECT count(*) FROM snapshots WHERE job = 'walkfails'") == [(0,)]
    assert_no_snapshot_stored(deployment, failing_destinations)


def fake_tool(folder: Path, name: str, body: str) -> Path:
    """Write an executable fake of `name` into `folder` (put first on PATH) and return the folder."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    ("kind", "tool", "body", "named"),
    [
        (
            "redis",
            "redis-cli",
            'for a in "$@"; do [ "$prev" = --rdb ] && head -c 5000 /dev/urandom > "$a"; prev=$a; done\n'
            "echo 'Error: Server closed the connection' >&2\nexit 1\n",
            "redis on 127.0.0.1:6379",
        ),
        (
            "mariadb",
            "mariadb-dump",
            "head -c 20000 /dev/urandom\necho 'mariadb-dump: Error 2013: Lost connection to server during query' >&2\n"
            "exit 2\n",
            "mariadb database",
        ),
    ],
)
def test_store_going_down_mid_dump_leaves_no_recovery_point(
    deployment: Deployment,
    failing_destinations: list[dict[str, str]],
    tmp_path: Path,
    kind: str,
    tool: str,
    body: str,
    named: str,
) -> None:
    # GIVEN a job whose dump tool loses its server half-way
    store = {"kind": kind, "host": "127.0.0.1", "port": 6379 if kind == "redis" else 3306}
    if kind == "mariadb":
        store.update(user="root", database="mysql")
    job = f"down-{kind}"
    deployment.write_job(job, store, failing_destinations)
    # A temporary directory of its own: a scratch server this run left would show in its command line there (and
    # only this run's would: other tests, or another pytest worker, may run scratch servers meanwhile).
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environment = deployment.environment(
        PATH=f"{fake_tool(tmp_path / 'bin', tool, body)}:{os.environ['PATH']}", TMPDIR=str(temporary)
    )
    # WHEN it is backed up
    result = deployment.replica("backup", job, env=environment)
    # THEN the run fails naming the store, no snapshot is kept anywhere, and no scratch server or database is left
    assert result.returncode == 1, result.stderr
    (line,) = error_lines(result.stderr)
    assert named in line
    assert last_run(deployment, job)[:2] == ("backup", "failed")
    assert last_failure(deployment, job) == "source_dump_failed"
    assert catalog_rows(deployment, f"SELECT count(*) FROM snapshots WHERE job = '{job}'") == [(0,)]
    assert deployment.replica_json("snapshots", job) == []
    assert_no_snapshot_stored(deployment, failing_destinations)
    leftovers = subprocess.run(["pgrep", "-f", str(temporary)], capture_output=True, text=True, check=False)
    assert leftovers.stdout == ""
    scratch = deployment.state_dir / "scratch"
    assert not scratch.exists() or not [path for path in scratch.iterdir() if path.name.startswith(f"backup-{job}")]


def test_a_verify_kept_from_running_by_a_transient_fault_reports_no_data_loss_but_an_unreadable_repository_does(
    deployment: Deployment, sqlite_source: SqliteSource, initialised: dict[str, list[dict[str, str]]]
) -> None:
    # GIVEN a job with a snapshot, in repositories whose password is 'right'
    destinations = initialised["wrongpw"]
    right = deployment.environment(E2E_REPOSITORY_PASSWORD="right")
    deployment.write_job("verifyfault", sqlite_source.store_config(), destinations)
    assert_ok(deployment.replica("backup", "verifyfault", env=right))
    reports = "SELECT count(*) FROM reports WHERE job = 'verifyfault'"
    assert catalog_rows(deployment, reports) == [(0,)]

    # WHEN the primary's endpoint refuses connections during a verify
    refused = [{**destinations[0], "endpoint_url": f"http://127.0.0.1:{free_port()}"}, destinations[1]]
    deployment.write_job("verifyfault", sqlite_source.store_config(), refused)
    result = deployment.replica("verify", "verifyfault", env=right)

    # THEN it fails as storage_unreachable (exit 3) and writes no data-loss report: the fault says nothing of the data
    assert result.returncode == 3, result.stderr
    failure = "SELECT failure FROM runs WHERE job = 'verifyfault' AND kind = 'verify' ORDER BY id DESC LIMIT 1"
    assert catalog_rows(deployment, failure) == [("storage_unreachable",)]
    assert catalog_rows(deployment, reports) == [(0,)]

    # WHEN the repository cannot be opened at all (a wrong password) THEN nothing could be restored from it: a report
    deployment.write_job("verifyfault", sqlite_source.store_config(), destinations)
    result = deployment.replica("verify", "verifyfault", env=deployment.environment(E2E_REPOSITORY_PASSWORD="wrong"))
    assert result.returncode == 5, result.stderr
    assert catalog_rows(deployment, failure) == [("wrong_password",)]
    assert catalog_rows(deployment, reports) == [(1,)]
