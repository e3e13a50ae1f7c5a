"""The status table (replica.cli.render) is laid out exactly as before its rows were built for speed: the expected
text below was printed by the previous renderer from the same document."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from replica.cli.render import status_table, table

DOCUMENT: dict[str, Any] = {
    "format": 1,
    "generated_at": "2026-11-27T10:00:00+00:00",
    "jobs": [
        {
            "job": "alpha",
            "store": "directory",
            "policy": "standard",
            "state": "ok",
            "reasons": [],
            "rpo_seconds": 3725.5,
            "rpo_objective_seconds": 86400.0,
            "rto_seconds": 75.25,
            "rto_objective_seconds": 1800.0,
            "last_backup": {
                "run_id": 7,
                "status": "succeeded",
                "snapshot_id": "4e06424e",
                "finished_at": "2026-11-27T09:58:30+00:00",
                "error": None,
            },
            "destinations": [
                {
                    "name": "primary",
                    "primary": True,
                    "newest_verified_snapshot": "4e06424e",
                    "newest_verified_at": "2026-11-27T08:57:54.500000+00:00",
                    "rpo_seconds": 3725.5,
                    "canary_recovery_point": "2026-11-27T08:59:00+00:00",
                    "data_loss_window_seconds": 3660.0,
                    "last_verify": {"run_id": 9, "status": "succeeded", "finished_at": "2026-11-27T09:10:00+00:00"},
                },
                {
                    "name": "offsite",
                    "primary": False,
                    "newest_verified_snapshot": None,
                    "newest_verified_at": None,
                    "rpo_seconds": None,
                    "canary_recovery_point": None,
                    "data_loss_window_seconds": None,
                    "last_verify": None,
                },
            ],
            "abandoned_runs": 0,
            "data_loss_window_seconds": 3660.0,
        },
        {
            "job": "beta-with-a-longer-name",
            "store": "postgresql",
            "policy": "strict",
            "state": "failing",
            "reasons": ["RPO 3d04h exceeds objective 4h00m", "last backup failed", "1 run(s) abandoned while running"],
            "rpo_seconds": 273600.0,
            "rpo_objective_seconds": 14400.0,
            "rto_seconds": None,
            "rto_objective_seconds": 900.0,
            "last_backup": {
                "run_id": 12,
                "status": "failed",
                "snapshot_id": None,
                "finished_at": "2026-11-20T10:00:00+00:00",
                "error": "restic backup failed (exit 1)",
            },
            "destinations": [
                {
                    "name": "primary",
                    "primary": True,
                    "newest_verified_snapshot": "00ab",
                    "newest_verified_at": "2026-11-24T06:00:00+00:00",
                    "rpo_seconds": 273600.0,
                    "canary_recovery_point": None,
                    "data_loss_window_seconds": None,
                    "last_verify": {"run_id": 11, "status": "failed", "finished_at": None},
                },
            ],
            "abandoned_runs": 1,
            "data_loss_window_seconds": None,
        },
        {
            "job": "gamma",
            "store": "redis",
            "policy": "standard",
            "state": "breached",
            "reasons": ["no verified recovery point"],
            "rpo_seconds": None,
            "rpo_objective_seconds": 86400.0,
            "rto_seconds": 5.0,
            "rto_objective_seconds": 1800.0,
            "last_backup": None,
            "destinations": [],
            "abandoned_runs": 0,
            "data_loss_window_seconds": None,
        },
    ],
    "broken_jobs": [{"job": "delta", "problems": ["jobs/delta.yaml: policy 'missing' not found", "second problem"]}],
}

# Lines as wide as the table's widest cells: the long ones split in two literals to fit the source's width.
EXPECTED = "\n".join(
    [
        "JOB                      STATE     LAST BACKUP          NEWEST VERIFIED POINT PE"
        "R DESTINATION         RPO / OBJ      RTO / OBJ       CANARY LOSS WINDOW",
        "alpha                    ok        succeeded 1m30s ago  primary: 4e06424e (1h02m"
        " ago); offsite: none  1h02m / 1d00h  1m15s / 30m00s  1h01m",
        "beta-with-a-longer-name  FAILING   failed 7d00h ago     primary: 00ab (3d04h ago"
        ")                     3d04h / 4h00m  - / 15m00s      -",
        "gamma                    BREACHED  never                                        "
        "                      - / 1d00h      5.0s / 30m00s   -",
        "",
        "reasons:",
        "  beta-with-a-longer-name: RPO 3d04h exceeds objective 4h00m; last backup failed"
        "; 1 run(s) abandoned while running",
        "  gamma: no verified recovery point",
        "",
        "DISABLED delta: jobs/delta.yaml: policy 'missing' not found",
        "  second problem",
    ]
)


def test_status_table_is_laid_out_as_before() -> None:
    assert status_table(DOCUMENT) == EXPECTED


def test_table_pads_every_column_to_its_widest_cell_and_keeps_braces_as_text() -> None:
    assert table(["A", "", "C"], [["x{}", "", ""], ["long {0} cell", "y", "z"]]) == (
        "A                 C\nx{}\nlong {0} cell  y  z"
    )
    assert table(["ONE", "TWO"], []) == "ONE  TWO"


def test_status_table_marks_each_destination_with_its_object_lock_state() -> None:
    # GIVEN alpha's destinations with recorded Object Lock states: a locked offsite, an unlocked primary; and a
    # destination whose state could not be read
    document = copy.deepcopy(DOCUMENT)
    unlocked = {"enabled": False, "mode": None, "retention_days": None, "retention_years": None}
    primary, offsite = document["jobs"][0]["destinations"]
    primary["object_lock"] = {**unlocked, "checked_at": "2026-11-27T09:58:30+00:00", "run_id": 7}
    offsite["object_lock"] = {**unlocked, "enabled": True, "mode": "COMPLIANCE", "retention_years": 7}
    document["jobs"][1]["destinations"][0]["object_lock"] = {**unlocked, "enabled": None, "detail": "AccessDenied"}

    # WHEN the table is rendered THEN each destination's cell says so; destinations never checked say nothing
    lines = status_table(document).splitlines()
    assert "primary: 4e06424e (1h02m ago) [not locked]; offsite: none [locked COMPLIANCE 7y]" in lines[1]
    assert "primary: 00ab (3d04h ago) [lock unknown]" in lines[2]
    assert "[" not in status_table(DOCUMENT).splitlines()[1]


def test_a_physical_jobs_destinations_show_their_wal_lag() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["jobs"][0]["destinations"][0]["wal_lag"] = {"lag_seconds": 4.2, "measured_lag_seconds": 0.0}

    text = status_table(document)

    assert "primary: 4e06424e (1h02m ago) WAL lag 4.2s; offsite: none" in text


def test_the_daemon_that_leads_is_named_once_one_ever_led() -> None:
    # GIVEN a leader that last beat 12 s before the document was generated
    document = copy.deepcopy(DOCUMENT)
    document["scheduler"] = {
        "leader": "daemon@host-b:123",
        "executor": "celery",
        "since": "2026-11-27T08:00:00+00:00",
        "heartbeat_at": (datetime.fromisoformat(document["generated_at"]) - timedelta(seconds=12)).isoformat(),
    }

    # WHEN rendered THEN one line names it, its executor, since when it leads and how old its heartbeat is
    assert status_table(document).splitlines()[-1] == (
        "scheduler: daemon@host-b:123 leads (celery executor) since 2026-11-27T08:00:00+00:00, last heartbeat 12s ago"
    )
    # AND with no daemon ever (cron's run-due) the table is as before
    document["scheduler"] = {"leader": None, "executor": None, "since": None, "heartbeat_at": None}
    assert status_table(document) == EXPECTED
