"""A stateful property test: hypothesis interleaves backups, verifies, prunes, corruptions at rest, crashes and
restores of one small directory job with two destinations (real restic, moto's S3 server, the real CLI) and checks,
after every step, what must always hold:

- every snapshot a backup recorded restores to exactly the content the source had when it was taken;
- no run stays `running` once the crashed process's runs were swept (`replica run-due`);
- `status --json` names, per destination, the newest *verified* snapshot the model expects, and its RPO is now minus
  that point's backup time;
- prune removes exactly what the retention rules decide and never the newest verified snapshot (catalog and bucket);
- damage at rest always fails the verification and writes a data-loss report; no other verification writes one.

Costs: each restic call spends ~0.5 s deriving its key, so the machine runs few, short examples (see SETTINGS). The
commands run in-process through `replica.cli.main.main` (the CLI's own code, without ~0.5 s of interpreter start-up
per call); crashes are real processes killed with SIGKILL. The primary destination is reached through the fault
suite's proxy (tests/support/faultproxy.py), transparent except in the `transient_fault` step, which flips a byte of
a pack on its way: a fault in transit, never reported as data loss.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from replica.cli.main import main
from tests.e2e.conftest import Deployment, catalog_rows, deployed
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.s3server import S3Server, start_s3_server

POLICY = "states"
KEEP_LAST = 1
RETENTION = {"keep_last": KEEP_LAST, "keep_hourly": 0, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}
DESTINATIONS = ("primary", "offsite")
# Each example is a new job over the same two repositories (creating repositories costs ~6 s); a step costs 1-4 s.
SETTINGS = settings(
    max_examples=2,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: each step runs restic; a failure prints its steps, which replay with the same seed.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
# How long after its run is recorded a crashed command is killed (a backup with its copy takes ~2.5 s, a verify
# ~1.5 s): from the probe to the catalog commit of the copy, or past the end.
CRASH_DELAYS_SECONDS = st.sampled_from([0.0, 0.4, 0.8, 1.2, 1.6, 2.2, 3.0])
CRASH_START_TIMEOUT_SECONDS = 20.0
RPO_TOLERANCE_SECONDS = 1.0

Content = dict[str, bytes]
Choice = TypeVar("Choice")


@dataclass(repr=False)
class Point:
    """One backup as the model knows it: the source's content when it ran, and its copy in each destination."""

    original_id: str
    content: Content
    started: datetime
    finished: datetime
    ids: dict[str, str] = field(default_factory=dict)  # destination -> snapshot id there
    # destination -> outcome of its latest finished verification (absent: never verified)
    verified: dict[str, bool] = field(default_factory=dict)
    pruned: set[str] = field(default_factory=set)
    restored: bool = False

    def __repr__(self) -> str:
        return f"Point({self.original_id}, {self.ids}, verified={self.verified}, pruned={sorted(self.pruned)})"

    def alive_in(self, destination: str) -> bool:
        return destination in self.ids and destination not in self.pruned


@dataclass
class Shared:
    """The deployment and the two repositories every example of the session uses."""

    deployment: Deployment
    destinations: list[dict[str, Any]]
    proxy: FaultProxy  # in front of the primary destination's endpoint
    # Pack keys written while a crashed command ran: maybe in no index, so `check` would never read them.
    suspect_packs: set[str] = field(default_factory=set)
    examples: int = 0


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    yield from start_s3_server()


@pytest.fixture(scope="module")
def shared(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory, catalog_kind: str) -> Iterator[Shared]:
    """A deployment with the tight-retention policy and two initialised repositories, the primary behind a fault
    proxy."""
    root = tmp_path_factory.mktemp("states")
    for folder in ("jobs", "policies", "sources", "restores"):
        (root / folder).mkdir()
    (root / "restic-password").write_text(secrets.token_urlsafe(24))
    with FaultProxy(s3_server.endpoint_url) as proxy, deployed(root, s3_server, catalog_kind) as deployment:
        yield _seeded(deployment, proxy)


def _seeded(deployment: Deployment, proxy: FaultProxy) -> Shared:
    """Return the shared state of `deployment`: its policy written, its two repositories initialised."""
    policy = {"rpo": "1h", "rto": "10m", "retention": RETENTION, "verification": {"read_data_subset": "100%"}}
    deployment.write_policy(POLICY, **policy)
    destinations = deployment.two_destinations("states")
    destinations[0]["endpoint_url"] = proxy.endpoint_url
    seed = deployment.root / "sources" / "seed"
    seed.mkdir()
    deployment.write_job("states-seed", {"kind": "directory", "path": str(seed)}, destinations, policy=POLICY)
    result = deployment.replica("init", "states-seed")
    assert result.returncode == 0, result.stderr
    (deployment.root / "jobs" / "states-seed.yaml").unlink()
    return Shared(deployment, destinations, proxy)


@contextlib.contextmanager
def environment_of(deployment: Deployment) -> Iterator[None]:
    """Run the block with exactly the deployment's environment (what its CLI processes get)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(deployment.environment())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pick(data: st.DataObject, items: Sequence[Choice], label: str) -> Choice:
    """Return one of `items`, drawn as an index of fixed range: the lists come from the repositories and the
    catalog, which a replay of a failing example (over the same shared repositories) may find different, and
    hypothesis refuses draws whose shape changes between runs. Index 0, the simplest, is the first item."""
    choice = items[data.draw(st.integers(0, 255), label=f"{label} (index)") % len(items)]
    note(f"{label}: {choice}")
    return choice


def read_tree(root: Path) -> Content:
    """Return every file under `root` by relative path."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


class ReplicaStates(RuleBasedStateMachine):
    """One job of the shared deployment, driven step by step, beside a model of what must be true."""

    shared: Shared  # set by the test before the machine runs
    points = Bundle("points")

    def __init__(self) -> None:
        super().__init__()
        self.deployment = self.shared.deployment
        self.shared.examples += 1
        self.job = f"states-{self.shared.examples}-{secrets.token_hex(2)}"
        self.source = self.deployment.root / "sources" / self.job
        (self.source / "nested").mkdir(parents=True)
        self.written = 0
        for number in range(1, 4):
            self._write_file(number)
        self.deployment.write_job(
            self.job, {"kind": "directory", "path": str(self.source)}, self.shared.destinations, policy=POLICY
        )
        self.history: list[Point] = []  # oldest first
        self.done_since_backup: set[str] = set()
        self.pruned_state: tuple[Any, ...] | None = None
        self.reports = 0
        self.steps: list[str] = []

    # -- running replica ------------------------------------------------------------------------------------------

    def replica(self, *arguments: str) -> tuple[int, str, str]:
        """Run a CLI command in this process; return its exit code, stdout and stderr."""
        stdout, stderr = io.StringIO(), io.StringIO()
        with environment_of(self.deployment), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(list(arguments))
        self.deployment.outputs.append(f"$ replica {' '.join(arguments)}\n{stdout.getvalue()}\n{stderr.getvalue()}")
        return code, stdout.getvalue(), stderr.getvalue()

    def replica_ok(self, *arguments: str) -> str:
        code, stdout, stderr = self.replica(*arguments)
        assert code == 0, f"replica {' '.join(arguments)}: exit {code}\n{stdout}\n{stderr}\nsteps: {self.steps}"
        return stdout

    def rows(self, query: str, **parameters: Any) -> list[tuple[Any, ...]]:
        return catalog_rows(self.deployment, query, **parameters)

    def bucket_keys(self, destination: str, folder: str) -> set[str]:
        """Return the object keys under one folder (`snapshots`, `data`, `locks`) of a destination's repository."""
        where = self.destination_config(destination)
        paginator = self.deployment.s3.client().get_paginator("list_objects_v2")
        keys: set[str] = set()
        for page in paginator.paginate(Bucket=where["bucket"], Prefix=f"{where['prefix']}/{folder}/"):
            keys.update(item["Key"] for item in page.get("Contents", []))
        return keys

    def destination_config(self, destination: str) -> dict[str, Any]:
        return next(d for d in self.shared.destinations if d["name"] == destination)

    # -- the source -----------------------------------------------------------------------------------------------

    def _write_file(self, number: int) -> None:
        """Write file `number` (a new one, or new content for the newest)."""
        self.written = max(self.written, number)
        path = self.source / "nested" / f"file-{number:03d}.txt"
        path.write_bytes(f"{self.job} file {number}\n".encode() * (1 + number % 7) + os.urandom(64))

    # -- reading back what replica recorded -----------------------------------------------------------------------

    def learn_snapshots(self, started: datetime, finished: datetime) -> list[Point]:
        """Add the catalog's snapshots of this job the model does not know yet (all from one backup, whose source
        was the current content); return the new points."""
        known = {point.original_id: point for point in self.history}
        new: list[Point] = []
        for destination, snapshot_id, original_id in self.rows(
            # Usable ones only: an orphan a crash left is adopted unusable, never a recovery point to restore.
            "SELECT destination, snapshot_id, original_id FROM snapshots WHERE job = :job AND usable ORDER BY id",
            job=self.job,
        ):
            point = known.get(original_id)
            if point is None:
                point = Point(original_id, read_tree(self.source), started, finished)
                known[original_id] = point
                self.history.append(point)
                new.append(point)
            point.ids.setdefault(destination, snapshot_id)
        return new

    def reports_of_job(self) -> list[tuple[int, int, dict[str, Any]]]:
        return [
            (report_id, run_id, json.loads(body))
            for report_id, run_id, body in self.rows(
                "SELECT id, run_id, body FROM reports WHERE job = :job ORDER BY id", job=self.job
            )
        ]

    def alive(self, destination: str) -> list[Point]:
        """Return the points still in a destination, newest first."""
        return [point for point in reversed(self.history) if point.alive_in(destination)]

    def newest_verified(self, destination: str) -> Point | None:
        return next((point for point in self.alive(destination) if point.verified.get(destination)), None)

    # -- rules ----------------------------------------------------------------------------------------------------

    # Backups go to the `points` bundle. Besides naming what they make, that puts the rule last in hypothesis's
    # order of rules, so the simplest example (always the first one tried) verifies, corrupts, restores and
    # crashes between its backups instead of backing up at every step.
    @rule(target=points, change=st.sampled_from(["add", "modify", "none"]))
    def backup(self, change: str) -> Point:
        """Change the source (or not), back it up: one new snapshot in both destinations, recorded as succeeded."""
        self.steps.append(f"backup ({change})")
        if change == "add":
            self._write_file(self.written + 1)
        elif change == "modify":
            self._write_file(self.written)
        started = datetime.now(UTC)
        self.replica_ok("backup", self.job)
        (point,) = self.learn_snapshots(started, datetime.now(UTC))
        assert set(point.ids) == set(DESTINATIONS), point.ids
        ((status,),) = self.rows(
            "SELECT status FROM runs WHERE kind = 'backup' AND snapshot_id = :snapshot", snapshot=point.original_id
        )
        assert status == "succeeded"
        self.done_since_backup = set()
        return point

    def unverified(self) -> list[tuple[str, Point]]:
        return [
            (destination, point)
            for point in reversed(self.history)
            for destination in DESTINATIONS
            if point.alive_in(destination) and not point.verified.get(destination)
        ]

    @precondition(lambda self: "verify" not in self.done_since_backup and bool(self.unverified()))
    @rule(data=st.data())
    def verify(self, data: st.DataObject) -> None:
        """Verify a snapshot not (successfully) verified yet, in one destination or, for a point in both, in every
        destination: with nothing damaged, it passes and reports nothing."""
        self.done_since_backup.add("verify")
        destination, point = pick(data, self.unverified(), "destination and snapshot")
        everywhere = all(point.alive_in(d) for d in DESTINATIONS) and data.draw(st.booleans(), label="everywhere")
        if everywhere:
            self.steps.append(f"verify everywhere {point.original_id}")
            stdout = self.replica_ok("verify", self.job, "--all-destinations", "--snapshot", point.original_id)
            assert "the copies are equivalent" in stdout, stdout
        else:
            self.steps.append(f"verify {destination} {point.original_id}")
            stdout = self.replica_ok(
                "verify", self.job, "--destination", destination, "--snapshot", point.ids[destination]
            )
        assert "PASSED" in stdout and "data-loss report" not in stdout, stdout
        for verified in DESTINATIONS if everywhere else [destination]:
            point.verified[verified] = True

    @precondition(lambda self: bool(self.history) and "corrupt" not in self.done_since_backup)
    @rule(destination=st.sampled_from(DESTINATIONS[::-1]), data=st.data())
    def corrupt_at_rest(self, destination: str, data: st.DataObject) -> None:
        """Flip bytes in a pack of one destination: the next verification there (of any snapshot: the check reads
        every pack) fails and writes a data-loss report naming that destination. The pack is then put back, so
        later steps meet clean repositories."""
        assert self.alive(destination), f"retention left nothing in '{destination}'"
        packs = sorted(self.bucket_keys(destination, "data") - self.shared.suspect_packs)
        key = pick(data, packs, "pack")
        # Oldest first: the simplest example keeps its newest snapshot verified, so that its prune has work.
        point = pick(data, self.alive(destination)[::-1], "snapshot verified")
        self.steps.append(f"corrupt {destination} {key.rsplit('/', 1)[1][:8]}, verify {point.original_id}")
        self.done_since_backup.add("corrupt")
        client = self.deployment.s3.client()
        bucket = self.destination_config(destination)["bucket"]
        original = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        damaged = bytearray(original)
        middle = len(damaged) // 2
        damaged[middle : middle + 16] = bytes(byte ^ 0xFF for byte in damaged[middle : middle + 16])
        client.put_object(Bucket=bucket, Key=key, Body=bytes(damaged))
        try:
            reports_before = len(self.reports_of_job())
            code, stdout, stderr = self.replica(
                "verify", self.job, "--destination", destination, "--snapshot", point.ids[destination]
            )
        finally:
            client.put_object(Bucket=bucket, Key=key, Body=original)
        assert code == 1, f"damage at rest passed verification: exit {code}\n{stdout}\n{stderr}"
        point.verified[destination] = False
        reports = self.reports_of_job()
        assert len(reports) == reports_before + 1, f"no data-loss report for damage at rest\n{stdout}\n{stderr}"
        _, run_id, body = reports[-1]
        ((run_status, failed_snapshot),) = self.rows("SELECT status, snapshot_id FROM runs WHERE id = :run", run=run_id)
        assert (run_status, failed_snapshot) == ("failed", point.ids[destination])
        assert body["destination"] == destination and body["snapshot_id"] == point.ids[destination]
        assert {check["name"] for check in body["failed_checks"]} & {"repository", "restore"}, body["failed_checks"]
        self.reports += 1

    def model_state(self) -> tuple[Any, ...]:
        """Return what retention decides from: every snapshot where it is, and how its last verification went."""
        return tuple(
            (point.original_id, tuple(sorted(point.ids)), tuple(sorted(point.verified.items())), tuple(point.pruned))
            for point in self.history
        )

    def prunable(self) -> bool:
        """Return True when a destination holds more than `keep_last` snapshots and something changed since the
        last prune (the same decision again proves nothing new)."""
        return self.model_state() != self.pruned_state and any(len(self.alive(d)) > KEEP_LAST for d in DESTINATIONS)

    @precondition(lambda self: self.prunable())
    @rule(only=st.sampled_from([None, *DESTINATIONS]))
    def prune(self, only: str | None) -> None:
        """Apply retention (in every destination, or `only` one): exactly the snapshots the rules leave
        unprotected go, from the catalog and the bucket; the newest verified one never does."""
        self.steps.append(f"prune {only or 'everywhere'}")
        expected = {destination: self.expected_removals(destination) for destination in DESTINATIONS}
        stale_locks = {destination: bool(self.bucket_keys(destination, "locks")) for destination in DESTINATIONS}
        code, stdout, stderr = self.replica("prune", self.job, "--json", *(["--destination", only] if only else []))
        document = json.loads(stdout)
        pruned_in = [entry["destination"] for entry in document["destinations"]]
        assert pruned_in == ([only] if only else list(DESTINATIONS)), pruned_in
        for entry in document["destinations"]:
            destination = entry["destination"]
            removed = {row[0] for row in self.rows(
                "SELECT snapshot_id FROM snapshots WHERE job = :job AND destination = :destination "
                "AND prune_run_id = :run",
                job=self.job, destination=destination, run=entry["run_id"],
            )}  # fmt: skip
            if entry["error"] is not None:
                # A crash left a restic lock behind and prune takes the exclusive lock. restic 0.14 passes over a
                # same-host lock whose process is gone, but not one whose restic is an unreaped zombie (a container
                # whose PID 1 does not reap): until replica unlocks stale locks itself, a refused prune is accepted
                # when a lock is there, and it must have removed nothing.
                assert stale_locks[destination] and "locked" in entry["error"], (entry, stderr)
                assert removed == set(), removed
                self.steps.append(f"  (prune refused in '{destination}': a crash's restic lock)")
                continue
            assert removed == {point.ids[destination] for point in expected[destination]}, (
                destination,
                entry["snapshots"],
                self.steps,
            )
            for point in expected[destination]:
                point.pruned.add(destination)
        assert code == (0 if all(entry["error"] is None for entry in document["destinations"]) else 1), stderr
        self.pruned_state = self.model_state()

    def expected_removals(self, destination: str) -> list[Point]:
        """Return what retention must remove from a destination: nothing while nothing there is verified; else
        all but the `keep_last` newest and the newest verified (every snapshot here is within the RPO window)."""
        alive = self.alive(destination)
        newest_verified = self.newest_verified(destination)
        if newest_verified is None:
            return []
        keep = {id(point) for point in alive[:KEEP_LAST]} | {id(newest_verified)}
        return [point for point in alive if id(point) not in keep]

    @precondition(
        lambda self: "restore" not in self.done_since_backup and any(not p.restored and p.ids for p in self.history)
    )
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        """Restore a recorded snapshot into a new directory: exactly the content the source had at its backup."""
        candidates = [
            (destination, point)
            for point in self.history
            if not point.restored
            for destination in DESTINATIONS
            if point.alive_in(destination)
        ]
        if not candidates:  # every unrestored point was pruned everywhere: nothing left to prove
            return
        destination, point = pick(data, candidates, "destination and snapshot")
        self.steps.append(f"restore {destination} {point.original_id}")
        self.done_since_backup.add("restore")
        target = self.deployment.root / "restores" / f"{self.job}-{point.original_id}-{destination}"
        self.replica_ok(
            "restore", self.job, "--to", str(target), "--snapshot", point.ids[destination], "--destination", destination
        )
        restored = read_tree(target)
        assert restored == point.content, (sorted(restored), sorted(point.content), self.steps)
        point.restored = True

    @precondition(lambda self: bool(self.history) and "crash" not in self.done_since_backup)
    @rule(kind=st.sampled_from(["backup", "verify"]), delay=CRASH_DELAYS_SECONDS)
    def crash(self, kind: str, delay: float) -> None:
        """Kill a backup or a verification (and its restic) with SIGKILL at some point, then sweep: nothing stays
        running, whatever the crash left in the catalog is consistent, and no report blames the data."""
        self.steps.append(f"crash {kind} after {delay}s")
        self.done_since_backup.add("crash")
        packs_before = {d: self.bucket_keys(d, "data") for d in DESTINATIONS}
        reports_before = len(self.reports_of_job())
        ((last_run,),) = self.rows("SELECT coalesce(max(id), 0) FROM runs")
        arguments = ["backup", self.job] if kind == "backup" else ["verify", self.job]
        started = datetime.now(UTC)
        process = subprocess.Popen(
            [sys.executable, "-m", "replica", *arguments],
            env=self.deployment.environment(),
            cwd=self.deployment.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: restic dies with it, as in a power cut
        )
        self.wait_for_run_of(process)
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        finished = datetime.now(UTC)
        for destination in DESTINATIONS:
            self.shared.suspect_packs |= self.bucket_keys(destination, "data") - packs_before[destination]
        # The restart: the sweep marks what the dead process left running.
        code, stdout, stderr = self.replica("run-due")
        assert code == 0, (stdout, stderr)
        swept = self.rows("SELECT kind, phase FROM runs WHERE id > :last AND status = 'abandoned'", last=last_run)
        self.steps.append(f"  (swept: {', '.join(f'{kind} in {phase}' for kind, phase in swept) or 'nothing'})")
        assert self.rows("SELECT id, kind, phase FROM runs WHERE status = 'running'") == []
        # A backup that got as far as recording its snapshot made a recovery point of the unchanged source.
        if kind == "backup":
            for point in self.learn_snapshots(started, finished):
                self.steps.append(f"  (the crashed backup recorded {point.original_id} in {sorted(point.ids)})")
        else:
            # A verification that finished before the kill passed (nothing is damaged); one killed proves nothing.
            for destination, snapshot_id, status in self.rows(
                "SELECT destination, snapshot_id, status FROM runs WHERE job = :job AND kind = 'verify' AND "
                "id > :last AND status IN ('succeeded', 'failed')",
                job=self.job,
                last=last_run,
            ):
                assert status == "succeeded", (destination, snapshot_id)
                point = next(p for p in self.history if p.ids.get(destination) == snapshot_id)
                point.verified[destination] = True
        assert len(self.reports_of_job()) == reports_before, "a crash produced a data-loss report"

    @precondition(lambda self: "transient" not in self.done_since_backup and bool(self.alive("primary")))
    @rule(data=st.data())
    def transient_fault(self, data: st.DataObject) -> None:
        """Flip a byte of the next pack downloaded from the primary, on its way (the stored pack stays intact), and
        verify there: restic sees a damaged pack, replica finds it intact at rest and verifies again, which passes;
        no report blames the data."""
        self.done_since_backup.add("transient")
        point = pick(data, self.alive("primary"), "snapshot verified through a flaky endpoint")
        self.steps.append(f"flip in transit, verify primary {point.original_id}")
        fault = self.shared.proxy.inject(Fault.flip(key_contains="/data/", first=1))
        try:
            stdout = self.replica_ok("verify", self.job, "--destination", "primary", "--snapshot", point.ids["primary"])
        finally:
            self.shared.proxy.clear()
        assert fault.served == 1, "no pack was read through the proxy"
        assert "PASSED" in stdout and "data-loss report" not in stdout, stdout
        ((details,),) = self.rows(
            "SELECT details FROM runs WHERE job = :job AND kind = 'verify' ORDER BY id DESC LIMIT 1", job=self.job
        )
        assert json.loads(details)["inconclusive_attempts"] == 1, details
        point.verified["primary"] = True

    def wait_for_run_of(self, process: subprocess.Popen[bytes]) -> None:
        """Return once `process` recorded a run (or exited)."""
        deadline = time.monotonic() + CRASH_START_TIMEOUT_SECONDS
        while process.poll() is None and not self.rows("SELECT id FROM runs WHERE pid = :pid", pid=process.pid):
            assert time.monotonic() < deadline, "the crashed command never recorded a run"
            time.sleep(0.02)

    # -- invariants -----------------------------------------------------------------------------------------------

    @invariant()
    def nothing_is_left_running(self) -> None:
        assert self.rows("SELECT id, job, kind, phase FROM runs WHERE status = 'running'") == []

    @invariant()
    def catalog_and_buckets_hold_what_the_model_expects(self) -> None:
        for destination in DESTINATIONS:
            recorded = {
                row[0]
                for row in self.rows(
                    "SELECT snapshot_id FROM snapshots WHERE job = :job AND destination = :destination "
                    "AND pruned_at IS NULL AND usable",
                    job=self.job,
                    destination=destination,
                )
            }
            alive = {point.ids[destination] for point in self.alive(destination)}
            assert recorded == alive, (destination, recorded, alive, self.steps)
            stored = {key.rsplit("/", 1)[1] for key in self.bucket_keys(destination, "snapshots")}
            for point in self.history:
                if destination not in point.ids:
                    continue
                present = any(full.startswith(point.ids[destination]) for full in stored)
                assert present == point.alive_in(destination), (destination, point, self.steps)

    @invariant()
    def only_damage_at_rest_is_reported(self) -> None:
        assert len(self.reports_of_job()) == self.reports, self.steps

    @invariant()
    def status_measures_rpo_from_the_newest_verified_point(self) -> None:
        before = datetime.now(UTC)
        document = json.loads(self.replica_ok("status", "--json"))
        after = datetime.now(UTC)
        (job,) = [job for job in document["jobs"] if job["job"] == self.job]
        assert job["abandoned_runs"] == 0
        newest: Point | None = None
        for entry in job["destinations"]:
            point = self.newest_verified(entry["name"])
            expected = point.ids[entry["name"]] if point else None
            assert entry["newest_verified_snapshot"] == expected, (entry, self.steps)
            if point is not None and (newest is None or self.history.index(point) > self.history.index(newest)):
                newest = point
        if newest is None:
            assert job["rpo_seconds"] is None
            return
        # The point's backup ran between `started` and `finished`: the RPO lies between these bounds.
        lowest = (before - newest.finished).total_seconds() - RPO_TOLERANCE_SECONDS
        highest = (after - newest.started).total_seconds() + RPO_TOLERANCE_SECONDS
        assert lowest <= job["rpo_seconds"] <= highest, (job["rpo_seconds"], lowest, highest, self.steps)

    def teardown(self) -> None:
        print(f"{self.job}: {'; '.join(self.steps) or 'no step'}")  # shown by pytest -s, and beside a failure
        # A crash may have left restic locks: clear them (plain `unlock` removes only those of dead processes on
        # this host), so that the next example's prunes start from clean repositories.
        for destination in DESTINATIONS:
            if self.bucket_keys(destination, "locks"):
                unlock_stale(self.deployment, self.destination_config(destination))
        (self.deployment.root / "jobs" / f"{self.job}.yaml").unlink(missing_ok=True)


def unlock_stale(deployment: Deployment, destination: dict[str, Any]) -> None:
    """Run plain `restic unlock` on a destination's repository (removes stale locks only)."""
    environment = {
        **deployment.environment(),
        "RESTIC_REPOSITORY": f"s3:{deployment.s3.endpoint_url}/{destination['bucket']}/{destination['prefix']}",
        "RESTIC_PASSWORD_FILE": str(deployment.password_file),
    }
    subprocess.run(["restic", "unlock"], env=environment, capture_output=True, check=True, timeout=60)


@pytest.mark.e2e
def test_interleaved_backups_verifies_prunes_corruptions_and_crashes_keep_every_invariant(shared: Shared) -> None:
    # GIVEN two shared repositories; WHEN hypothesis runs sequences of steps on a new job each time; THEN every
    # invariant of the machine holds after every step (see the module's docstring)
    ReplicaStates.shared = shared
    run_state_machine_as_test(ReplicaStates, settings=SETTINGS)
