"""The daemon's e2e tests (test_daemon.py) whose outcome rests on the catalog's transactions, again with the
deployment's catalog a PostgreSQL database: the shared, multi-node setup. Racing `run-due`s (the job lock's INSERT),
a killed daemon's run swept as abandoned, and a breach opened once (this variant found breaches that never alerted
on PostgreSQL). The daemon's other tests (its timetable, its signals) do not depend on the engine; the distributed
e2e tests (test_distributed.py, test_daemon_leadership.py) run daemons on PostgreSQL too. `--catalog=postgresql`
runs every test of test_daemon.py on PostgreSQL."""

from tests.e2e import test_daemon
from tests.support.catalogs import namespace_of

ON_THE_CATALOG = (
    "test_two_run_due_started_at_once_never_run_a_job_twice",
    "test_a_daemon_killed_mid_backup_leaves_an_abandoned_run_and_its_successor_runs_the_work_once",
    "test_a_job_past_its_rpo_raises_one_alert_and_one_report_and_the_breach_clears_when_backups_resume",
)

globals().update(
    {
        name: value
        for name, value in namespace_of(test_daemon).items()
        if not name.startswith("test_") or name in ON_THE_CATALOG
    }
)
CATALOG = "postgresql"
