"""The daemon: APScheduler runs every job's backup, verify and prune timetables in one process.

- One run per job at a time (the catalog's job lock; a trigger that finds its job busy is recorded `skipped`),
  in a bounded pool of worker threads so that one slow store cannot starve the others.
- On start and on every reload, each kind of work is placed from the catalog: work whose fire time passed while
  the daemon was down runs once at once, not once per missed time (APScheduler's coalescing covers the rest).
- A watchdog tick sweeps dead runs, judges every job's objectives and refreshes the metrics.
- SIGHUP or a changed job/policy file re-reads the configuration; running work keeps the configuration it
  started with. A broken job file disables that job only.
- SIGTERM/SIGINT: stop taking work, give running work the grace period, then interrupt its processes (SIGINT,
  then SIGKILL) and make sure no run of this process is left `running`.
- With the celery executor the daemon runs no work itself: each fire sends one task naming the work's slot (its
  fire time) to the job's queue, and `replica worker` processes run it (see replica.actions.dispatched).
- Several daemons may share one catalog: one leads (holds the lock of replica.daemon.leadership) and schedules,
  the others stand by, polling for the lead, with their metrics server up. A leader that loses its lock stops as
  on SIGTERM and exits with LeadLost (exit 75), for its supervisor to restart it as a standby.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from replica import execute
from replica.actions.configuration import record_configuration_changes
from replica.actions.context import Context
from replica.actions.due import DRILL, scheduled_work, work_for, work_key
from replica.actions.run_due import sweep_abandoned
from replica.actions.scheduled import INTERRUPTED, SKIPPED, WorkOutcome, run_work
from replica.actions.status import collect_status
from replica.actions.wal_lag import record_wal_lags
from replica.actions.watchdog import watch_objectives
from replica.catalog.actor import act_as
from replica.catalog.records import utc_now
from replica.daemon.files import ConfigurationWatcher, PidFile, pid_file_path
from replica.daemon.leadership import Leadership, leadership_for
from replica.daemon.metrics import DaemonMetrics, MetricsServer
from replica.errors import LeadLost, ReplicaError
from replica.schedule.specs import Schedule, jitter_offset

if TYPE_CHECKING:
    from replica.distributed.dispatch import Dispatcher

logger = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 5.0
UNWIND_SECONDS = 15.0
MAIN_LOOP_SECONDS = 0.2
SCHEDULER_EXECUTOR, WATCHDOG_EXECUTOR = "default", "watchdog"
LOCAL_EXECUTOR, CELERY_EXECUTOR = "local", "celery"
LAG_HISTORY = 100_000
FOLLOWER_DELAY = timedelta(seconds=5)
BRING_FORWARD_SECONDS = 10.0
TICK_YIELD_SECONDS = 0.002
# How often a standby tries to take the lead, and how often the leader makes sure it still holds it: a dead
# leader's work moves within about these seconds (plus, for a vanished host, the lead's keepalive time).
STANDBY_POLL_SECONDS = 1.0
LEAD_CHECK_SECONDS = 2.0

Work = Callable[[Context, str, str], WorkOutcome]


@dataclass(frozen=True)
class DaemonOptions:
    """How the daemon runs: pool size, grace period, watchdog and reload cadence, metrics address."""

    workers: int = 4
    grace_seconds: float = 30.0
    watchdog_interval_seconds: float = 60.0
    reload_check_seconds: float = 5.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    executor: str = LOCAL_EXECUTOR


class _ScheduleTrigger(BaseTrigger):  # type: ignore[misc]
    """An APScheduler trigger that fires exactly when `schedule.next_after` says, shifted by the work's stable
    jitter offset: the daemon, `run-due` and `replica schedule` share one timetable. (APScheduler's own jitter is
    random, and on intervals it accumulates from one fire time to the next.)"""

    def __init__(self, schedule: Schedule, offset: timedelta) -> None:
        self.schedule = schedule
        self.offset = offset

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        after = previous_fire_time if previous_fire_time is not None else now - timedelta(microseconds=1)
        return self.schedule.next_after(after, self.offset)


def _trigger(schedule: Schedule, key: str) -> _ScheduleTrigger:
    """Return the APScheduler trigger of one job's kind of work."""
    return _ScheduleTrigger(schedule, jitter_offset(schedule, key))


class Daemon:
    """One daemon process. `run()` blocks until SIGTERM/SIGINT (or `stop()`) and returns the exit code."""

    def __init__(
        self, context: Context, options: DaemonOptions, work: Work = run_work, leadership: Leadership | None = None
    ) -> None:
        self._context = context
        self._options = options
        self._work = work
        self._leadership = leadership or leadership_for(context.settings.catalog_url)
        self._leading = False
        self.name = f"daemon@{socket.gethostname()}:{os.getpid()}"
        self._metrics = DaemonMetrics()
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={
                SCHEDULER_EXECUTOR: ThreadPoolExecutor(options.workers),
                WATCHDOG_EXECUTOR: ThreadPoolExecutor(1),
            },
            # Coalesce: a trigger missed many times while the pool was full runs once. No misfire limit: late
            # work still runs (a backup an hour late is better than none).
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler.add_listener(self._on_trigger_while_running, EVENT_JOB_MAX_INSTANCES)
        self._scheduler.add_listener(self._on_work_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        # Start time of the run in progress of each kind of work (at most one: max_instances=1), and the lag
        # between due time and start of recent runs (for the benchmark and the lag histogram).
        self._started_at: dict[str, datetime] = {}
        self._brought_forward_at: dict[str, datetime] = {}
        self.recent_lags: deque[tuple[datetime, float]] = deque(maxlen=LAG_HISTORY)
        self._placed: dict[str, Schedule] = {}
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()
        self._active = 0
        self._active_lock = threading.Lock()
        self._last_tick = time.monotonic()
        self._watcher = ConfigurationWatcher(
            context.settings.jobs_dir, context.settings.policies_dir, context.settings.drills_dir
        )
        self._server: MetricsServer | None = None
        self._dispatcher: Dispatcher | None = None
        if options.executor == CELERY_EXECUTOR:
            from replica.distributed.dispatch import Dispatcher  # deferred: Celery's imports cost ~0.3 s

            self._dispatcher = Dispatcher(context.settings)

    @property
    def metrics(self) -> DaemonMetrics:
        """Return the daemon's metrics (for tests and benchmarks)."""
        return self._metrics

    @property
    def leading(self) -> bool:
        """Return True while this daemon holds the scheduling lead (False while standing by or stopped)."""
        return self._leading

    def request_reload(self) -> None:
        """Ask for the configuration to be re-read (what SIGHUP does)."""
        self._reload_requested.set()

    def stop(self) -> None:
        """Ask the daemon to stop (what SIGTERM does). Safe in a signal handler: it only sets an event."""
        self._stopping.set()

    def run(self) -> int:
        """Stand by until this daemon holds the lead, then schedule until asked to stop; return 0 after a clean
        stop (also when stopped while standing by).

        Raises LeadLost after stopping as on SIGTERM when the lead was lost while scheduling.
        """
        act_as(f"daemon@{socket.gethostname()}")
        pid_file = PidFile(pid_file_path(self._context.settings.state_dir))
        pid_file.claim()
        self._install_signal_handlers()
        try:
            # Before the lead: a standby's /healthz and /metrics answer too.
            self._start_metrics_server()
            if not self._stand_by():
                logger.info("stopped while standing by")
                return 0
            try:
                self._lead()
            finally:
                self._leading = False
                self._metrics.set_leader(False)
                self._leadership.release()
        finally:
            if self._server is not None:
                self._server.stop()
            pid_file.release()
        return 0

    def _stand_by(self) -> bool:
        """Wait until this daemon holds the lead; return False when asked to stop first."""
        attempts = 0
        while not self._stopping.is_set():
            if self._leadership.try_acquire():
                return True
            attempts += 1
            # Named after a second refusal: the leader records itself just after it takes the lock, and a row read
            # in between would name the previous leader (or none).
            if attempts == 2:
                logger.info("standby: %s leads", self._leader_name())
            self._stopping.wait(STANDBY_POLL_SECONDS)
        return False

    def _leader_name(self) -> str:
        """Return the leader as its row in the catalog names it (it may not have written it yet)."""
        try:
            leader = self._context.catalog.leaders.leader()
        except Exception:  # only the log line needs it; the lock, not the row, decides who leads
            logger.exception("reading the leader's record failed")
            return "another daemon"
        return leader.daemon if leader is not None else "another daemon"

    def _lead(self) -> None:
        """Schedule while this daemon holds the lead, until asked to stop; raises LeadLost (after stopping as on
        SIGTERM) when the lead is lost."""
        self._context.catalog.leaders.took_lead(self.name, self._options.executor)
        self._leading = True
        self._last_tick = time.monotonic()  # a long standby is no overdue watchdog
        self._metrics.set_leader(True)
        logger.info("%s took the scheduling lead (%s executor)", self.name, self._options.executor)
        if self._watcher.changed():  # files changed while standing by: schedule from what they say now
            self._context = self._context.reloaded()
        for run in sweep_abandoned(self._context):
            logger.warning(
                "run %s (%s of '%s') was left running by a dead process: abandoned", run.id, run.kind, run.job
            )
        record_configuration_changes(self._context)
        self._place_work(self._context)
        self._scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=self._options.watchdog_interval_seconds, timezone=UTC),
            id="watchdog",
            executor=WATCHDOG_EXECUTOR,
            next_run_time=utc_now(),
        )
        self._scheduler.start()
        logger.info("daemon started: %d kinds of work scheduled, %d workers", len(self._placed), self._options.workers)
        lead_lost = False
        next_file_check = time.monotonic() + self._options.reload_check_seconds
        next_lead_check = time.monotonic() + LEAD_CHECK_SECONDS
        while not self._stopping.wait(MAIN_LOOP_SECONDS):
            if time.monotonic() >= next_lead_check:
                next_lead_check = time.monotonic() + LEAD_CHECK_SECONDS
                if not self._leadership.still_held():
                    logger.error("%s lost the scheduling lead: stopping, a standby takes over", self.name)
                    lead_lost = True
                    break
            # Looking at the files costs a stat per job file: every reload_check_seconds, not every loop.
            if time.monotonic() >= next_file_check:
                next_file_check = time.monotonic() + self._options.reload_check_seconds
                if self._watcher.changed():
                    self._reload_requested.set()
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload()
        if not lead_lost:
            self._shut_down()
            return
        self._stopping.set()  # no new work from here on, as on SIGTERM
        try:
            self._shut_down()
        except Exception:  # the catalog may be what took the lead away: the exit code must still say so
            logger.exception("stopping after the lost lead failed")
        raise LeadLost(self.name)

    # Scheduling ----------------------------------------------------------------------------------------------

    def _place_work(self, context: Context) -> None:
        """Make the scheduler's jobs match the configuration: add, move or remove, keeping unchanged ones."""
        configuration = context.configuration
        for name, problems in sorted(configuration.broken_jobs.items()):
            logger.error("job '%s' disabled, its file is broken: %s", name, "; ".join(problems))
        now = utc_now()
        desired = {work.key: work for work in scheduled_work(context, now)}
        # Before any job is added: a new job may fire at once and must find the configuration that defines it.
        self._context = context
        for key in set(self._placed) - set(desired):
            self._scheduler.remove_job(key)
            del self._placed[key]
        due_kinds_of_job: dict[str, int] = {}
        for key, work in desired.items():
            if self._placed.get(key) == work.schedule:
                continue
            next_run_time = work.next_run
            if next_run_time <= now:
                # A job's due kinds start in order (backup, verify, prune), a few seconds apart, so that the
                # verify does not take the job before the backup it should verify; one that still finds the job
                # busy is skipped and runs when the other ends (see _bring_forward).
                order = due_kinds_of_job.get(work.job, 0)
                due_kinds_of_job[work.job] = order + 1
                # Workers retry work that finds its job busy, and a late send could name a later slot: all at once.
                next_run_time = now + FOLLOWER_DELAY * order if self._dispatcher is None else now
            self._scheduler.add_job(
                self._run,
                _trigger(work.schedule, key),
                args=(work.job, work.kind),
                id=key,
                name=key,
                executor=SCHEDULER_EXECUTOR,
                next_run_time=next_run_time,
                replace_existing=True,
            )
            self._placed[key] = work.schedule

    def _reload(self) -> None:
        logger.info("re-reading jobs and policies")
        try:
            fresh = self._context.reloaded()
            record_configuration_changes(fresh)
            self._place_work(fresh)
        except Exception:  # a reload must never take the daemon down; the old timetable stays
            logger.exception("reload failed; keeping the previous configuration")

    def _bring_forward(self, job: str, just_ran: str) -> None:
        """Start now the first other kind of `job` that the catalog says is due (it may have been skipped while
        `just_ran` held the job).

        A kind is brought forward at most once per BRING_FORWARD_SECONDS: work that fails before it is recorded
        (a missing repository password) stays due, and two such kinds must not bring each other forward in a
        loop.
        """
        now = utc_now()
        for kind in ("backup", "verify", "prune"):
            key = work_key(job, kind)
            if kind == just_ran or key not in self._placed:
                continue
            if work_for(self._context, job, kind, self._placed[key], now).next_run > now:
                continue
            last = self._brought_forward_at.get(key)
            if last is not None and (now - last).total_seconds() < BRING_FORWARD_SECONDS:
                return
            scheduled = self._scheduler.get_job(key)
            if scheduled is not None and scheduled.next_run_time and scheduled.next_run_time > now:
                self._brought_forward_at[key] = now
                scheduled.modify(next_run_time=now)
            return

    def _run(self, job: str, kind: str) -> None:
        # A drill exercises several jobs' recovery together under its plan's name: the leading daemon runs it itself.
        if self._dispatcher is not None and kind != DRILL:
            self._dispatch(self._dispatcher, job, kind)
            return
        self._started_at[work_key(job, kind)] = utc_now()
        with self._active_lock:
            # Checked and counted under one lock: shutdown's wait must see every run that got past this point.
            if self._stopping.is_set():
                return
            self._active += 1
            self._metrics.set_running(self._active)
        context = self._context
        try:
            outcome = self._work(context, job, kind)
            self._metrics.observe_run(job, kind, outcome.outcome, outcome.duration_seconds, outcome.bytes_added)
        except Exception:
            logger.exception("%s of '%s' failed unexpectedly", kind, job)
            self._metrics.observe_run(job, kind, "failed", 0.0)
            return
        finally:
            with self._active_lock:
                self._active -= 1
                self._metrics.set_running(self._active)
        if outcome.outcome not in (INTERRUPTED, SKIPPED) and not self._stopping.is_set():
            self._bring_forward(job, kind)

    def _dispatch(self, dispatcher: Dispatcher, job: str, kind: str) -> None:
        """Send the work's current slot to the job's queue, retrying while the broker refuses it (see Dispatcher)."""
        key = work_key(job, kind)
        schedule = self._placed.get(key)
        if schedule is None:
            return  # removed by a reload since it fired
        offset = jitter_offset(schedule, key)
        try:
            queue = self._context.job(job)[0].queue
        except ReplicaError as error:
            logger.error("%s of '%s' not sent: %s", kind, job, error)
            return
        dispatcher.send_until_taken(
            job,
            kind,
            queue,
            lambda: schedule.latest_fire(utc_now(), offset),
            self._stopping,
            lambda outcome: self._metrics.observe_dispatch(job, kind, outcome),
        )

    def _on_work_done(self, event: JobExecutionEvent) -> None:
        started = self._started_at.pop(str(event.job_id), None)
        if started is not None and event.scheduled_run_time is not None:
            lag = max((started - event.scheduled_run_time).total_seconds(), 0.0)
            self.recent_lags.append((event.scheduled_run_time, lag))
            self._metrics.observe_schedule_lag(lag)

    def _on_trigger_while_running(self, event: JobSubmissionEvent) -> None:
        job, _, kind = str(event.job_id).partition(":")
        # With the celery executor the running instance is a send the broker has not taken yet: nothing ran.
        if kind and not self._stopping.is_set() and (self._dispatcher is None or kind == DRILL):
            reason = f"job '{job}' is busy: the previous {kind} is still running (trigger coalesced)"
            self._context.catalog.record_skipped(job, kind, reason)
            self._metrics.observe_run(job, kind, SKIPPED, 0.0)

    # Watchdog ------------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        context = self._context
        try:
            context.catalog.leaders.heartbeat(self.name)
            sweep_abandoned(context)
            # Before status is read: the watchdog and the metrics judge the lag measured now.
            record_wal_lags(context)
            # A short sleep after each job hands the interpreter to the scheduler and the workers: with thousands of
            # jobs the tick is seconds of Python, and would otherwise delay every run due meanwhile.
            document = collect_status(context, between_jobs=lambda: time.sleep(TICK_YIELD_SECONDS))
            statuses = {job["job"]: job for job in document["jobs"]}
            now = datetime.fromisoformat(document["generated_at"])
            for event in watch_objectives(context, now, statuses):
                self._metrics.observe_breach(event.job, event.objective, event.kind == "opened")
            self._metrics.update_status(document)
        except Exception:  # the next tick tries again; the daemon keeps running its schedules
            logger.exception("watchdog tick failed")
        self._last_tick = time.monotonic()
        self._metrics.tick()

    def healthy(self) -> bool:
        """Return True while standing by, or while the scheduler runs and the watchdog ticked recently."""
        if not self._leading:
            return not self._stopping.is_set()
        overdue = time.monotonic() - self._last_tick > 3 * self._options.watchdog_interval_seconds + 30
        return self._scheduler.running and not self._stopping.is_set() and not overdue

    def _start_metrics_server(self) -> None:
        if self._options.metrics_port is None:
            return
        self._server = MetricsServer(
            self._metrics, self._options.metrics_host, self._options.metrics_port, self.healthy
        )
        self._server.start()
        logger.info("metrics on http://%s:%d/metrics", self._options.metrics_host, self._server.port)

    # Stopping ------------------------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded (tests, benchmarks): the caller stops the daemon with stop()
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def _shut_down(self) -> None:
        logger.info("stopping: no new work; %d run(s) in progress get %.0fs", self._active, self._options.grace_seconds)
        self._scheduler.shutdown(wait=False)
        if not self._wait_for_runs(self._options.grace_seconds):
            killed = execute.stop_processes(KILL_GRACE_SECONDS)
            logger.warning("grace period over: interrupted the running processes (%d killed)", killed)
            self._wait_for_runs(UNWIND_SECONDS)
        left = self._context.catalog.interrupt_running(
            host=socket.gethostname(), pid=os.getpid(), reason="interrupted: the daemon stopped"
        )
        for run in left:
            logger.warning("run %s (%s of '%s') marked interrupted", run.id, run.kind, run.job)
        if self._active:
            # A thread stuck outside any process (a hung database call) must not keep the daemon alive forever;
            # its run is already recorded as interrupted.
            logger.error("%d run(s) did not unwind; exiting anyway", self._active)
            os._exit(1)

    def _wait_for_runs(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._active_lock:
                if self._active == 0:
                    return True
            time.sleep(0.05)
        with self._active_lock:
            return self._active == 0
