"""The daemon's metrics rendered from crafted `replica status --json` documents, parsed back with
prometheus_client's own parser: values present, nulls absent, ages at scrape time, counters and histograms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from replica.daemon.metrics import DaemonMetrics

GENERATED_AT = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
T0 = GENERATED_AT.timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def destination(name: str, *, verified_at: str | None, rpo: float | None, verify: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "primary": name == "primary",
        "newest_verified_snapshot": "4e06424e" if verified_at else None,
        "newest_verified_at": verified_at,
        "rpo_seconds": rpo,
        "canary_recovery_point": None,
        "data_loss_window_seconds": 70.0 if verified_at else None,
        "last_verify": {"run_id": 14, "status": verify, "finished_at": "2026-11-26T15:58:00+00:00"} if verify else None,
    }


def billing(*, backup_status: str = "succeeded", state: str = "at risk") -> dict[str, Any]:
    return {
        "job": "billing",
        "store": "postgresql",
        "policy": "critical",
        "state": state,
        "reasons": ["RPO at 80% of its objective"],
        "rpo_seconds": 60.0,
        "rpo_objective_seconds": 3600.0,
        "rto_seconds": 42.5,
        "rto_objective_seconds": 900.0,
        "last_backup": {
            "run_id": 12,
            "status": backup_status,
            "snapshot_id": "4e06424e",
            "finished_at": "2026-11-26T15:59:00+00:00",
            "error": None if backup_status == "succeeded" else "pg_dump: connection refused",
            "failure": None if backup_status == "succeeded" else "source_unreachable",
        },
        "destinations": [
            destination("primary", verified_at="2026-11-26T15:59:00+00:00", rpo=60.0, verify="succeeded"),
            destination("offsite", verified_at="2026-11-26T15:50:00+00:00", rpo=600.0, verify="failed"),
        ],
        "abandoned_runs": 0,
        "data_loss_window_seconds": 70.0,
    }


def never_verified() -> dict[str, Any]:
    return {
        "job": "uploads",
        "store": "directory",
        "policy": "standard",
        "state": "breached",
        "reasons": ["no verified recovery point"],
        "rpo_seconds": None,
        "rpo_objective_seconds": 86400.0,
        "rto_seconds": None,
        "rto_objective_seconds": 3600.0,
        "last_backup": None,
        "destinations": [destination("primary", verified_at=None, rpo=None, verify=None)],
        "abandoned_runs": 1,
        "data_loss_window_seconds": None,
    }


def document(*jobs: dict[str, Any], generated_at: datetime = GENERATED_AT, broken: int = 1) -> dict[str, Any]:
    return {
        "format": 1,
        "generated_at": generated_at.isoformat(),
        "jobs": list(jobs),
        "broken_jobs": [
            {"job": f"legacy{i}", "problems": ["jobs/legacy.yaml:3: at 'store': ..."]} for i in range(broken)
        ],
    }


def samples(metrics: DaemonMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Return every sample of the exposition as {(name, labels): value}."""
    text = metrics.render().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: DaemonMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def names(metrics: DaemonMetrics) -> set[str]:
    return {name for name, _ in samples(metrics)}


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def metrics(clock: Clock) -> DaemonMetrics:
    return DaemonMetrics(clock=clock)


def test_job_and_destination_values_are_exposed(metrics: DaemonMetrics) -> None:
    metrics.update_status(document(billing()))

    assert value(metrics, "replica_rpo_seconds", job="billing") == 60.0
    assert value(metrics, "replica_rpo_objective_seconds", job="billing") == 3600.0
    assert value(metrics, "replica_rto_seconds", job="billing") == 42.5
    assert value(metrics, "replica_rto_objective_seconds", job="billing") == 900.0
    assert value(metrics, "replica_data_loss_window_seconds", job="billing") == 70.0
    assert value(metrics, "replica_abandoned_runs", job="billing") == 0
    assert value(metrics, "replica_broken_job_files") == 1
    newest = datetime(2026, 11, 26, 15, 59, tzinfo=UTC).timestamp()
    assert value(metrics, "replica_newest_verified_recovery_point_timestamp_seconds", job="billing") == newest
    assert value(metrics, "replica_last_backup_success_timestamp_seconds", job="billing") == newest
    offsite = {"job": "billing", "destination": "offsite"}
    assert value(metrics, "replica_destination_rpo_seconds", **offsite) == 600.0
    assert value(metrics, "replica_destination_newest_verified_recovery_point_timestamp_seconds", **offsite) == (
        datetime(2026, 11, 26, 15, 50, tzinfo=UTC).timestamp()
    )
    primary = {"job": "billing", "destination": "primary"}
    assert value(metrics, "replica_destination_last_verify_success_timestamp_seconds", **primary) == (
        datetime(2026, 11, 26, 15, 58, tzinfo=UTC).timestamp()
    )
    # offsite's latest verification failed and no success was ever seen: unknown, not 0.
    assert value(metrics, "replica_destination_last_verify_success_timestamp_seconds", **offsite) is None


def test_the_state_gauge_has_one_current_state(metrics: DaemonMetrics) -> None:
    metrics.update_status(document(billing(state="at risk")))
    states = {state: value(metrics, "replica_job_state", job="billing", state=state) for state in ("ok", "at_risk")}
    assert states == {"ok": 0.0, "at_risk": 1.0}
    assert value(metrics, "replica_job_state", job="billing", state="breached") == 0.0
    assert value(metrics, "replica_job_state", job="billing", state="failing") == 0.0


def test_nulls_are_absent_not_zero(metrics: DaemonMetrics) -> None:
    metrics.update_status(document(never_verified()))
    present = {name for (name, labels) in samples(metrics) if ("job", "uploads") in labels}

    assert present == {
        "replica_rpo_objective_seconds",
        "replica_rto_objective_seconds",
        "replica_abandoned_runs",
        "replica_job_state",
        "replica_rto_forecast_warning",  # 0: a gauge to alert on, present for every job
    }
    assert value(metrics, "replica_job_state", job="uploads", state="breached") == 1.0


def test_ages_grow_between_updates(metrics: DaemonMetrics, clock: Clock) -> None:
    metrics.update_status(document(billing()))
    clock.now = T0 + 30

    assert value(metrics, "replica_rpo_seconds", job="billing") == 90.0
    assert value(metrics, "replica_data_loss_window_seconds", job="billing") == 100.0
    assert value(metrics, "replica_destination_rpo_seconds", job="billing", destination="offsite") == 630.0
    assert value(metrics, "replica_rto_seconds", job="billing") == 42.5  # a measurement, not an age


def test_a_failed_backup_keeps_the_last_success_seen(metrics: DaemonMetrics) -> None:
    metrics.update_status(document(billing(backup_status="failed")))
    assert value(metrics, "replica_last_backup_success_timestamp_seconds", job="billing") is None

    metrics.update_status(document(billing()))
    success = value(metrics, "replica_last_backup_success_timestamp_seconds", job="billing")
    failed = billing(backup_status="failed")
    failed["last_backup"]["finished_at"] = "2026-11-26T16:10:00+00:00"
    metrics.update_status(document(failed))

    assert value(metrics, "replica_last_backup_success_timestamp_seconds", job="billing") == success


def test_failed_runs_are_exposed_with_their_failure_state(metrics: DaemonMetrics) -> None:
    # GIVEN a job whose last backup failed as source_unreachable and whose offsite verification failed
    failed = billing(backup_status="failed")
    failed["destinations"][1]["last_verify"]["failure"] = "corrupt"
    metrics.update_status(document(failed))

    # THEN each failure is one sample labelled with its state; a success has none
    assert value(metrics, "replica_last_backup_failure", job="billing", failure="source_unreachable") == 1.0
    offsite = {"job": "billing", "destination": "offsite"}
    assert value(metrics, "replica_destination_last_verify_failure", **offsite, failure="corrupt") == 1.0
    present = {(name, labels) for name, labels in samples(metrics) if name.endswith("_failure")}
    assert len(present) == 2

    # WHEN the next backup succeeds THEN its failure sample is gone
    metrics.update_status(document(billing()))
    assert not [name for name, _ in samples(metrics) if name == "replica_last_backup_failure"]


def test_a_job_removed_by_a_later_update_disappears(metrics: DaemonMetrics) -> None:
    metrics.update_status(document(billing(), never_verified()))
    metrics.observe_breach("uploads", "rpo", opened=True)
    assert value(metrics, "replica_objective_breached", job="uploads", objective="rpo") == 1.0

    metrics.update_status(document(billing(), broken=0))

    # Only the cumulative alert counter remembers the job (counters never go back).
    remaining = {name for (name, labels) in samples(metrics) if ("job", "uploads") in labels}
    assert remaining == {"replica_alerts_total", "replica_alerts_created"}
    assert value(metrics, "replica_rpo_seconds", job="billing") == 60.0
    assert value(metrics, "replica_broken_job_files") == 0


def test_runs_are_counted_and_timed(metrics: DaemonMetrics) -> None:
    metrics.observe_run("billing", "backup", "succeeded", 42.0, bytes_added=1_000)
    metrics.observe_run("billing", "backup", "succeeded", 3.0, bytes_added=500)
    metrics.observe_run("billing", "backup", "skipped", 0.0)
    metrics.observe_run("billing", "verify", "failed", 7.0)

    assert value(metrics, "replica_runs_total", job="billing", kind="backup", outcome="succeeded") == 2
    assert value(metrics, "replica_runs_total", job="billing", kind="backup", outcome="skipped") == 1
    assert value(metrics, "replica_runs_total", job="billing", kind="verify", outcome="failed") == 1
    assert value(metrics, "replica_backup_bytes_added_total", job="billing") == 1_500
    # The skipped run did no work: its zero duration is not a sample.
    assert value(metrics, "replica_run_duration_seconds_count", job="billing", kind="backup") == 2
    assert value(metrics, "replica_run_duration_seconds_sum", job="billing", kind="backup") == 45.0
    assert value(metrics, "replica_run_duration_seconds_bucket", job="billing", kind="backup", le="5.0") == 1
    assert value(metrics, "replica_run_duration_seconds_bucket", job="billing", kind="backup", le="21600.0") == 2


def test_breaches_open_and_clear_and_count_alerts(metrics: DaemonMetrics) -> None:
    metrics.observe_breach("billing", "rpo", opened=True)
    metrics.observe_breach("billing", "rpo", opened=False)
    metrics.observe_breach("billing", "rpo", opened=True)

    assert value(metrics, "replica_objective_breached", job="billing", objective="rpo") == 1.0
    assert value(metrics, "replica_alerts_total", job="billing", objective="rpo") == 2


def test_daemon_liveness(metrics: DaemonMetrics, clock: Clock) -> None:
    assert value(metrics, "replica_daemon_up") == 1.0
    assert value(metrics, "replica_daemon_start_time_seconds") == T0
    assert value(metrics, "replica_daemon_last_tick_timestamp_seconds") is None  # never ticked yet

    clock.now = T0 + 60
    metrics.tick()
    metrics.set_running(3)
    metrics.observe_schedule_lag(0.2)

    assert value(metrics, "replica_daemon_last_tick_timestamp_seconds") == T0 + 60
    assert value(metrics, "replica_daemon_running_runs") == 3
    assert value(metrics, "replica_schedule_lag_seconds_count") == 1


def test_every_metric_has_help_and_conventional_names(metrics: DaemonMetrics) -> None:
    metrics.update_status(document(billing()))
    metrics.observe_run("billing", "backup", "succeeded", 1.0, bytes_added=1)
    metrics.observe_breach("billing", "rto", opened=True)
    families = list(text_string_to_metric_families(metrics.render().decode()))

    assert all(family.documentation for family in families)
    for family in families:
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if "timestamp" in family.name or family.name.endswith("time"):
            assert family.name.endswith("_seconds")


def test_each_instance_has_its_own_registry(clock: Clock) -> None:
    first, second = DaemonMetrics(clock=clock), DaemonMetrics(clock=clock)
    first.observe_run("billing", "backup", "succeeded", 1.0)

    assert value(second, "replica_runs_total", job="billing", kind="backup", outcome="succeeded") is None


def test_a_document_of_another_format_is_refused(metrics: DaemonMetrics) -> None:
    metrics.update_status(document(billing()))
    with pytest.raises(ValueError, match="format"):
        metrics.update_status({**document(), "format": 2})
    assert value(metrics, "replica_rpo_seconds", job="billing") == 60.0


def test_wal_lag_per_destination_is_a_gauge_aged_at_scrape_time_and_absent_when_never_measured() -> None:
    clock = Clock(T0 + 30)
    metrics = DaemonMetrics(clock)
    job = billing()
    job["destinations"][0]["wal_lag"] = {"lag_seconds": 4.0, "measured_lag_seconds": 0.0}
    job["destinations"][1]["wal_lag"] = None
    metrics.update_status(document(job))

    assert value(metrics, "replica_wal_lag_seconds", job="billing", destination="primary") == 34.0
    assert value(metrics, "replica_wal_lag_seconds", job="billing", destination="offsite") is None


def test_the_lead_and_who_ran_each_jobs_newest_runs_are_exposed(metrics: DaemonMetrics) -> None:
    # GIVEN a standby daemon THEN it says it does not lead, and names no leader before it read a status document
    assert value(metrics, "replica_daemon_leader") == 0
    assert "replica_scheduler_leader_info" not in names(metrics)
    # WHEN it leads and reads a document naming the leader and who ran each run (offsite's verification newest)
    metrics.set_leader(True)
    job = billing()
    job["last_backup"]["actor"] = "worker:alpha"
    primary, offsite = job["destinations"]
    primary["last_verify"].update(run_id=14, actor="daemon@a")
    offsite["last_verify"].update(run_id=15, actor="worker:beta")
    leader = {"leader": "daemon@a:41", "executor": "celery", "since": "...", "heartbeat_at": "..."}
    metrics.update_status({**document(job), "scheduler": leader})
    # THEN the gauge, the leader's labels and the newest backup's and verification's runners are exposed
    assert value(metrics, "replica_daemon_leader") == 1
    assert value(metrics, "replica_scheduler_leader_info", daemon="daemon@a:41", executor="celery") == 1
    assert value(metrics, "replica_last_run_worker_info", job="billing", kind="backup", worker="worker:alpha") == 1
    assert value(metrics, "replica_last_run_worker_info", job="billing", kind="verify", worker="worker:beta") == 1
    workers = [labels for name, labels in samples(metrics) if name == "replica_last_run_worker_info"]
    assert len(workers) == 2
    # WHEN a later document says no daemon ever led THEN no leader is named
    metrics.update_status({**document(job), "scheduler": {key: None for key in leader}})
    assert "replica_scheduler_leader_info" not in names(metrics)
