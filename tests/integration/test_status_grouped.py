"""`replica status` reads every job's facts with a few grouped queries (replica.catalog.latest): its documents must
equal what the per-job computation gives (every run of the job read, as status did before), on SQLite and on
PostgreSQL, for a catalog written through the catalog's own write path with runs in every state."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from replica.actions.context import Context
from replica.actions.recovery_points import latest_verifications, newest_point_per_destination, verified_points
from replica.actions.status import _forecast, _forecast_document, collect_status, job_status
from replica.catalog.actor import acting_as, current_actor
from replica.catalog.database import open_catalog
from replica.catalog.latest import DRILL_RESTORE_KIND, RTO_SAMPLE_KINDS
from replica.catalog.models import Run, Snapshot
from replica.catalog.records import FAILED, INTERRUPTED, RUNNING, SUCCEEDED, Catalog
from replica.config.models import PolicyConfig
from replica.policy.forecast import FIT_SAMPLES, RtoFit, RtoSample, SizeSample, fit_rto
from replica.policy.objectives import STATE_ORDER, JobFacts, Objectives, evaluate
from replica.processes import process_alive
from replica.settings import Settings

JOBS = ("alpha", "beta", "delta", "epsilon", "gamma", "omega")
START = datetime(2026, 11, 1, tzinfo=UTC)
VERIFIER = "worker:verifier"


def write_files(root: Path) -> None:
    (root / "jobs").mkdir()
    (root / "policies").mkdir()
    (root / "policies" / "standard.yaml").write_text("name: standard\nrpo: 24h\nrto: 30m\n")
    for name in JOBS:
        destinations = "".join(
            f"  - name: {destination}\n    bucket: bucket-{destination}\n    prefix: {name}\n"
            for destination in ("primary", "offsite")
        )
        (root / "jobs" / f"{name}.yaml").write_text(
            f"name: {name}\nstore:\n  kind: directory\n  path: /srv/{name}\ndestinations:\n{destinations}"
            "policy: standard\n"
        )


class History:
    """Writes runs and snapshots the way the actions do, through the catalog's write methods."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.counter = 0

    def backup(
        self,
        job: str,
        hours: float,
        *,
        succeeded: bool = True,
        copy: bool | None = True,
        locks: dict[str, dict[str, Any]] | None = None,
    ) -> int:
        """Record a backup (and its copy to the offsite), each with the Object Lock state `locks` gives for its
        destination; return the backup's run id."""
        catalog = self.catalog
        locks = locks or {}
        primary_lock = {"object_lock": locks["primary"]} if "primary" in locks else {}
        offsite_lock = {"object_lock": locks["offsite"]} if "offsite" in locks else {}
        run_id = catalog.start_run(job, "backup", phase="probe", destination="primary")
        if not succeeded:
            catalog.finish_run(
                run_id, succeeded=False, error="restic backup failed (exit 1)", failure="throttled", **primary_lock
            )
            return run_id
        self.counter += 1
        snapshot = f"{self.counter:08x}"
        taken_at = START + timedelta(hours=hours)
        self._snapshot(job, "primary", snapshot, snapshot, run_id, taken_at)
        catalog.finish_run(
            run_id, succeeded=True, snapshot_id=snapshot, bytes_processed=10, bytes_added=1, **primary_lock
        )
        if copy is not None:
            copy_id = catalog.start_run(job, "copy", phase="probe", destination="offsite", parent_run_id=run_id)
            if copy:
                copied = f"c{self.counter:07x}"
                self._snapshot(job, "offsite", copied, snapshot, run_id, taken_at)
                catalog.finish_run(
                    copy_id, succeeded=True, snapshot_id=copied, original_snapshot_id=snapshot, **offsite_lock
                )
            else:
                catalog.finish_run(copy_id, succeeded=False, error="restic copy failed (exit 1)", **offsite_lock)
        return run_id

    def _snapshot(self, job: str, destination: str, snapshot: str, original: str, run_id: int, taken: datetime) -> None:
        self.catalog.add_snapshot(
            job=job,
            destination=destination,
            snapshot_id=snapshot,
            original_id=original,
            backup_run_id=run_id,
            taken_at=taken,
            # Growing originals (for the RTO fits); a copy records no size, as in `replica backup`.
            bytes_processed=10 * self.counter if snapshot == original else 0,
            bytes_added=1,
            stored_name=f"/srv/{job}",
            fingerprint={"files": 1, "bytes": 10, "sample": {}},
        )

    def verify(
        self,
        job: str,
        destination: str | None,
        snapshot: str | None,
        *,
        status: str = SUCCEEDED,
        rto: float | None = 1.25,
        canary_at: datetime | None = None,
        kind: str = "verify",
    ) -> int:
        """Record a verification of `snapshot` (or, with kind `drill_restore`, a drill's restore of it) ending in
        `status`; return its run id."""
        # Verified by a worker, backed up by this process's user: status must show each run's own actor.
        with acting_as(VERIFIER):
            run_id = self.catalog.start_run(job, kind, phase="probe", destination=destination, snapshot_id=snapshot)
        details: dict[str, Any] = {"rto_seconds": rto if status == SUCCEEDED else None, "checks_total": 4}
        if canary_at is not None:
            details["canary_at"] = canary_at.isoformat()
        if status == RUNNING:
            return run_id
        self.catalog.finish_run(
            run_id,
            succeeded=status == SUCCEEDED,
            error=None if status == SUCCEEDED else "critical checks failed: fingerprint",
            status=status if status not in (SUCCEEDED, FAILED) else None,
            failure=None if status == SUCCEEDED else "verification_failed",
            **details,
        )
        return run_id

    def prune(self, job: str, destination: str, keep: int, lock: dict[str, Any] | None = None) -> None:
        """Mark all but the newest `keep` snapshots of a destination pruned, under a prune run (which recorded the
        Object Lock state `lock`, when given)."""
        rows = self.catalog.snapshots(job, destination)
        run_id = self.catalog.start_run(job, "prune", phase="decide", destination=destination)
        self.catalog.mark_pruned([row.id for row in rows[keep:]], run_id)
        details: dict[str, Any] = {"object_lock": lock} if lock is not None else {}
        self.catalog.finish_run(run_id, succeeded=True, kept=keep, removed=len(rows) - keep, **details)


def snapshot_ids(catalog: Catalog, job: str, destination: str) -> list[str]:
    return [row.snapshot_id for row in catalog.snapshots(job, destination, include_pruned=True)]


# Object Lock states as S3Storage.object_lock gives them.
LOCKED = {"enabled": True, "mode": "GOVERNANCE", "retention_days": 1, "retention_years": None}
COMPLIANCE = {"enabled": True, "mode": "COMPLIANCE", "retention_days": None, "retention_years": 7}
UNLOCKED = {"enabled": False, "mode": None, "retention_days": None, "retention_years": None}
UNKNOWN = {**UNLOCKED, "enabled": None, "detail": "Object Lock state not readable (AccessDenied)"}


def write_history(catalog: Catalog) -> None:
    history = History(catalog)
    # alpha: healthy, then a newer verification of an older snapshot; the newest offsite verification failed.
    # Object Lock: the states of the fifth backup and its copy (the sixth, of an older replica, recorded none),
    # then a prune of the primary that recorded a newer one.
    for hour in range(6):
        history.backup("alpha", hour, locks={"primary": LOCKED, "offsite": UNLOCKED} if hour == 4 else None)
    primary = snapshot_ids(catalog, "alpha", "primary")
    offsite = snapshot_ids(catalog, "alpha", "offsite")
    history.verify("alpha", "primary", primary[0], rto=2.5, canary_at=START + timedelta(hours=5, minutes=1))
    history.verify("alpha", "primary", primary[3], rto=3.75)
    history.verify("alpha", "offsite", offsite[1])
    history.verify("alpha", "offsite", offsite[0], status=FAILED)
    history.prune("alpha", "primary", keep=4, lock=COMPLIANCE)
    # alpha: two drills restored primary snapshots (their RTOs feed the forecast; nothing else in status moves)
    history.verify("alpha", "primary", primary[1], rto=4.5, kind=DRILL_RESTORE_KIND)
    history.verify("alpha", "primary", primary[0], rto=2.75, kind=DRILL_RESTORE_KIND)
    # beta: the newest verified snapshot failed a later verification; the last backup failed; a copy failed before.
    # Object Lock: known from the first backup; the failed copy and the failed backup recorded other states.
    history.backup("beta", 1, locks={"primary": LOCKED, "offsite": LOCKED})
    history.backup("beta", 2, copy=False, locks={"offsite": UNKNOWN})
    beta = snapshot_ids(catalog, "beta", "primary")
    history.verify("beta", "primary", beta[1])
    history.verify("beta", "primary", beta[0])
    history.verify("beta", "primary", beta[0], status=FAILED)
    history.backup("beta", 3, succeeded=False, locks={"primary": UNLOCKED})
    # delta: a state that could not be read is shown as such.
    history.backup("delta", 0, locks={"primary": UNKNOWN, "offsite": UNLOCKED})
    # delta: a copy of the last backup failed; runs still running (alive, and dead on this host), interrupted,
    # skipped; a scheduled verification that found nothing to verify (no destination); an unusable snapshot.
    history.backup("delta", 1)
    delta = snapshot_ids(catalog, "delta", "primary")
    history.verify("delta", "primary", delta[0], rto=None)
    history.backup("delta", 2)
    newest_delta = snapshot_ids(catalog, "delta", "primary")[0]
    history.verify("delta", "primary", newest_delta)
    with catalog.sessions.begin() as session:
        session.execute(update(Snapshot).where(Snapshot.snapshot_id == newest_delta).values(usable=False))
    history.backup("delta", 3, copy=False)
    catalog.start_run("delta", "backup", phase="backup", destination="primary")  # this process: alive
    dead = catalog.start_run("delta", "backup", phase="backup", destination="primary")
    with catalog.sessions.begin() as session:
        session.execute(update(Run).where(Run.id == dead).values(pid=_dead_pid()))
    history.verify("delta", "offsite", snapshot_ids(catalog, "delta", "offsite")[0], status=INTERRUPTED)
    catalog.record_skipped("delta", "verify", "job 'delta' is busy: the previous backup is still running")
    failed = catalog.start_run("delta", "verify", phase="start")
    catalog.finish_run(failed, succeeded=False, error="job 'delta' has no recorded snapshot in destination 'x'")
    # epsilon: verified points in a destination its file no longer names, newer than the configured ones.
    history.backup("epsilon", 1)
    history.verify("epsilon", "primary", snapshot_ids(catalog, "epsilon", "primary")[0])
    history._snapshot("epsilon", "old-site", "0ld00001", "0ld00001", history.backup("epsilon", 2), START)
    history._snapshot("epsilon", "old-site", "0ld00002", "0ld00002", history.backup("epsilon", 9), START)
    with catalog.sessions.begin() as session:
        session.execute(
            update(Snapshot).where(Snapshot.snapshot_id == "0ld00002").values(taken_at=START + timedelta(hours=9))
        )
    history.verify("epsilon", "old-site", "0ld00001")
    history.verify("epsilon", "old-site", "0ld00002", status=FAILED)
    history.verify("epsilon", "old-site", "0ld00002")
    # omega: only an init; gamma: nothing at all.
    init = catalog.start_run("omega", "init", phase="init", destination="primary")
    catalog.finish_run(init, succeeded=True, created=True)


def _dead_pid() -> int:
    pid = 4_000_000
    while process_alive(pid):
        pid -= 1
    return pid


def reference_fits(catalog: Catalog, job: str, runs: list[Run]) -> dict[str, RtoFit]:
    """The RTO fit of each destination from every run and snapshot of the job: of each kind that measures an RTO
    (verifications, drills' restores), the newest FIT_SAMPLES successful runs of a snapshot; of those that measured
    one, sized by their original snapshot, the newest FIT_SAMPLES of both kinds together."""
    snapshots = {(s.destination, s.snapshot_id): s for s in catalog.snapshots(job)}
    originals = {s.snapshot_id: s for s in snapshots.values() if s.snapshot_id == s.original_id}
    samples: dict[str, list[RtoSample]] = {}
    sizes: dict[str, SizeSample] = {}
    ranked: dict[tuple[str, str], int] = {}
    for run in sorted(runs, key=lambda r: r.id, reverse=True):
        if run.kind not in RTO_SAMPLE_KINDS or run.status != SUCCEEDED or not run.destination or not run.snapshot_id:
            continue
        key = (run.kind, run.destination)
        ranked[key] = ranked.get(key, 0) + 1
        if ranked[key] > FIT_SAMPLES:
            continue
        snapshot = snapshots.get((run.destination, run.snapshot_id))
        original = originals.get(snapshot.original_id) if snapshot else None
        if snapshot is None or original is None or run.details.get("rto_seconds") is None or run.finished_at is None:
            continue  # ranked, but not a sample
        samples.setdefault(run.destination, []).append(
            RtoSample(run.finished_at, float(original.bytes_processed), float(run.details["rto_seconds"]))
        )
        sizes[original.snapshot_id] = SizeSample(snapshot.taken_at, float(original.bytes_processed))
    fits = {
        name: fit_rto(sorted(kept, key=lambda sample: sample.measured_at)[-FIT_SAMPLES:], list(sizes.values()))
        for name, kept in samples.items()
    }
    return {name: fit for name, fit in fits.items() if fit is not None}


def per_job_document(context: Context, job_name: str, now: datetime) -> dict[str, Any]:
    """The status document as replica computed it before the grouped queries: from every run of the job."""
    job, policy = context.job(job_name)
    catalog = context.catalog
    runs = catalog.runs(job=job.name, limit=10_000)
    finished = [r for r in runs if r.status in (SUCCEEDED, FAILED)]
    last_backup = next((r for r in finished if r.kind == "backup"), None)
    copies_of_last = [r for r in runs if r.kind == "copy" and last_backup and r.parent_run_id == last_backup.id]
    verifications = latest_verifications([r for r in finished if r.kind == "verify"])
    latest_verify_per_destination: dict[str, Run] = {}
    for run in sorted(verifications.values(), key=lambda r: r.id, reverse=True):
        latest_verify_per_destination.setdefault(run.destination or "", run)
    points = verified_points(catalog, job.name)
    newest = newest_point_per_destination(points)
    last_rto_run = next(
        (
            r
            for r in finished
            if r.kind == "verify" and r.status == SUCCEEDED and r.details.get("rto_seconds") is not None
        ),
        None,
    )

    def object_lock(destination: str) -> dict[str, Any] | None:
        recorded = next(
            (
                r
                for r in runs
                if r.kind in ("backup", "copy", "prune")
                and r.destination == destination
                and r.status == SUCCEEDED
                and "object_lock" in r.details
            ),
            None,
        )
        if recorded is None:
            return None
        finished_at = recorded.finished_at.isoformat() if recorded.finished_at else None
        return {**recorded.details["object_lock"], "checked_at": finished_at, "run_id": recorded.id}

    def abandoned(run: Run) -> bool:
        return run.status == RUNNING and run.host == socket.gethostname() and not process_alive(run.pid)

    facts = JobFacts(
        newest_verified_at=points[0].snapshot.taken_at if points else None,
        last_rto_seconds=float(last_rto_run.details["rto_seconds"]) if last_rto_run else None,
        last_backup_failed=bool(last_backup and last_backup.status == FAILED),
        last_copy_failed=any(r.status == FAILED for r in copies_of_last),
        last_verify_failed=any(r.status == FAILED for r in latest_verify_per_destination.values()),
        abandoned_runs=sum(1 for r in runs if abandoned(r)),
        last_backup_failure=last_backup.failure if last_backup else None,
        last_verify_failures=tuple(
            r.failure for r in latest_verify_per_destination.values() if r.status == FAILED and r.failure
        ),
    )
    verdict = evaluate(facts, Objectives(policy.rpo, policy.rto, policy.at_risk_fraction), now)
    fits = reference_fits(catalog, job.name, runs)
    destinations = []
    reasons = list(verdict.reasons)
    windows: list[float | None] = []
    for destination in job.destinations:
        point = newest.get(destination.name)
        last_verify = latest_verify_per_destination.get(destination.name)
        canary_at = point.canary_at if point else None
        windows.append((now - canary_at).total_seconds() if canary_at else None)
        destinations.append(
            {
                "name": destination.name,
                "primary": destination.name == job.primary.name,
                "newest_verified_snapshot": point.snapshot.snapshot_id if point else None,
                "newest_verified_at": point.snapshot.taken_at.isoformat() if point else None,
                "rpo_seconds": (now - point.snapshot.taken_at).total_seconds() if point else None,
                "canary_recovery_point": canary_at.isoformat() if canary_at else None,
                "data_loss_window_seconds": (now - canary_at).total_seconds() if canary_at else None,
                "last_verify": {
                    "run_id": last_verify.id,
                    "status": last_verify.status,
                    "failure": last_verify.failure,
                    "finished_at": last_verify.finished_at.isoformat() if last_verify.finished_at else None,
                    "actor": last_verify.actor,
                }
                if last_verify
                else None,
                "object_lock": object_lock(destination.name),
                "rto_forecast": rto_forecast(destination.name, fits.get(destination.name), policy, now, reasons),
                "wal_lag": None,  # no job here ships WAL (its lag is tested in test_wal_lags and test_wal_chain)
            }
        )
    return {
        "job": job.name,
        "store": job.store.kind,
        "policy": policy.name,
        "state": verdict.state if reasons == verdict.reasons else max(verdict.state, "at risk", key=STATE_ORDER.index),
        "reasons": reasons,
        "rpo_seconds": verdict.rpo_seconds,
        "rpo_objective_seconds": policy.rpo.total_seconds(),
        "rto_seconds": verdict.rto_seconds,
        "rto_objective_seconds": policy.rto.total_seconds(),
        "rto_forecast_horizon_seconds": policy.rto_forecast_horizon.total_seconds(),
        "last_backup": {
            "run_id": last_backup.id,
            "status": last_backup.status,
            "snapshot_id": last_backup.snapshot_id,
            "finished_at": last_backup.finished_at.isoformat() if last_backup.finished_at else None,
            "error": last_backup.error,
            "failure": last_backup.failure,
            "actor": last_backup.actor,
        }
        if last_backup
        else None,
        "destinations": destinations,
        "abandoned_runs": facts.abandoned_runs,
        "data_loss_window_seconds": min((w for w in windows if w is not None), default=None),
    }


def context_with_history(catalog_url: str, tmp_path: Path) -> Context:
    """Return a context over `write_files`' six jobs and a catalog holding `write_history`'s varied histories."""
    write_files(tmp_path)
    settings = Settings(
        state_dir=tmp_path / "state",
        jobs_dir=tmp_path / "jobs",
        policies_dir=tmp_path / "policies",
        catalog_url=catalog_url,
    )
    context = Context(settings)
    write_history(context.catalog)
    return context


def test_grouped_status_equals_the_per_job_computation(catalog_url: str, tmp_path: Path) -> None:
    # GIVEN six jobs with runs in every state, two destinations each (one job with a third, removed one)
    context = context_with_history(catalog_url, tmp_path)
    try:
        # WHEN status reads them with its grouped queries
        document = collect_status(context)

        # THEN every job's document is the one the per-job computation gives, also through the one-job path
        now = datetime.fromisoformat(document["generated_at"])
        expected = [per_job_document(context, name, now) for name in sorted(JOBS)]
        assert document["jobs"] == expected
        assert [job_status(context, name, now) for name in sorted(JOBS)] == expected
        # and the history covers what the queries must tell apart
        by_name = {job["job"]: job for job in document["jobs"]}
        assert by_name["alpha"]["destinations"][0]["newest_verified_snapshot"] is not None
        assert by_name["alpha"]["destinations"][0]["canary_recovery_point"] is not None
        assert "last verification failed (verification_failed)" in by_name["beta"]["reasons"]
        assert by_name["delta"]["abandoned_runs"] == 1
        assert by_name["gamma"]["last_backup"] is None
        alpha_primary, alpha_offsite = by_name["alpha"]["destinations"]
        assert (alpha_primary["object_lock"]["mode"], alpha_offsite["object_lock"]["enabled"]) == ("COMPLIANCE", False)
        assert [d["object_lock"]["mode"] for d in by_name["beta"]["destinations"]] == ["GOVERNANCE", "GOVERNANCE"]
        assert by_name["delta"]["destinations"][0]["object_lock"]["enabled"] is None
        assert by_name["gamma"]["destinations"][0]["object_lock"] is None
        assert by_name["epsilon"]["rpo_seconds"] == (now - (START + timedelta(hours=9))).total_seconds()
        # each run names who ran it: the backup this process's user, the verification the worker
        assert by_name["alpha"]["last_backup"]["actor"] == current_actor() != VERIFIER
        assert alpha_primary["last_verify"]["actor"] == VERIFIER
    finally:
        context.catalog.sessions.kw["bind"].dispose()


def test_grouped_status_reads_jobs_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a catalog of several jobs read two jobs per round of queries
    import replica.catalog.latest

    monkeypatch.setattr(replica.catalog.latest, "JOBS_PER_QUERY", 2)
    catalog = Catalog(open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}"))
    write_history(catalog)

    # WHEN the latest records of every job (and of one unknown job) are read
    chunked = catalog.compute_latest_records([*JOBS, "unknown"])

    # THEN each equals what a read of that job alone gives
    assert chunked == {name: catalog.compute_latest_records([name])[name] for name in [*JOBS, "unknown"]}
    assert os.getpid() in [pid for _, pid in chunked["delta"].running]


def test_grouped_status_without_materialized_ids_gives_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a catalog, and a SQLite older than 3.35 (no `AS MATERIALIZED`)
    import replica.catalog.latest

    catalog = Catalog(open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}"))
    write_history(catalog)
    expected = catalog.compute_latest_records(JOBS)
    monkeypatch.setattr(replica.catalog.latest, "_materialized", lambda connection: False)

    # WHEN the latest records are read without it THEN they are the same
    assert catalog.compute_latest_records(JOBS) == expected


def rto_forecast(
    destination: str, fit: RtoFit | None, policy: PolicyConfig, now: datetime, reasons: list[str]
) -> dict[str, Any] | None:
    """Return a destination's `rto_forecast` as status writes it, appending its warning to `reasons`."""
    return _forecast_document(fit, *_forecast(destination, fit, policy, now, reasons)) if fit is not None else None
