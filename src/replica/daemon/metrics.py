"""The daemon's Prometheus metrics and the small HTTP server that exposes them (`/metrics`, `/healthz`).

Two kinds of figures, kept apart on purpose:
- *Current state* (objectives, recovery points, job states, open breaches, liveness) is rendered at scrape time
  from the latest `replica status --json` document by a custom collector, so a job removed by a reload vanishes
  from the output, and a value the document does not know (null) is absent rather than a misleading 0.
- *Cumulative* figures (runs, durations, bytes added, alerts, scheduling lag) are ordinary counters and histograms.

Everything lives in the instance's own CollectorRegistry: several daemons in one process (tests, benchmarks) never
share or collide in prometheus_client's global registry.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from replica.actions.status import STATUS_FORMAT
from replica.errors import FALLBACK_STATE

logger = logging.getLogger(__name__)

JOB_STATES = ("ok", "at_risk", "breached", "failing")
# From a one-second no-op to a six-hour backup of a large store.
RUN_DURATION_BUCKETS_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800, 21600)
SCHEDULE_LAG_BUCKETS_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Outcomes of work that never ran (actions/scheduled.py's SKIPPED and NOT_DUE): their zero durations would drag
# the duration histogram down. Spelled out, not imported, so that metrics do not load every action.
NOT_RUN_OUTCOMES = frozenset({"skipped", "not due"})
SERVER_STOP_SECONDS = 5.0

K = TypeVar("K")

JOB_LABELS, DESTINATION_LABELS = ("job",), ("job", "destination")
# name: (help, label names) of every metric rendered from the current state.
STATE_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "replica_rpo_seconds": ("Age of the job's newest verified recovery point, at scrape time.", JOB_LABELS),
    "replica_rpo_objective_seconds": ("The job's recovery point objective.", JOB_LABELS),
    "replica_rto_seconds": ("Last measured time from restore start to verified data.", JOB_LABELS),
    "replica_rto_objective_seconds": ("The job's recovery time objective.", JOB_LABELS),
    "replica_rto_forecast_breach_timestamp_seconds": (
        "When the destination's RTO is forecast to exceed the objective at the current growth (absent: not within "
        "5 years or too few measured restores; the current time when the fit says it already does).",
        DESTINATION_LABELS,
    ),
    "replica_rto_forecast_warning": (
        "1 when a confident RTO forecast of the job exceeds the objective within the policy's horizon, else 0.",
        JOB_LABELS,
    ),
    "replica_newest_verified_recovery_point_timestamp_seconds": (
        "When the job's newest verified recovery point was taken (newest across destinations).",
        JOB_LABELS,
    ),
    "replica_last_backup_success_timestamp_seconds": ("When the job's last successful backup finished.", JOB_LABELS),
    "replica_job_state": (
        "1 for the job's current state (ok, at_risk, breached, failing), 0 for the others.",
        JOB_LABELS,
    ),
    "replica_data_loss_window_seconds": ("Age of the newest restored canary, at scrape time.", JOB_LABELS),
    "replica_abandoned_runs": ("Runs left running by a process that died.", JOB_LABELS),
    "replica_objective_breached": ("1 while the job's objective (rpo, rto) is breached, 0 once cleared.", JOB_LABELS),
    "replica_destination_rpo_seconds": ("Age of the destination's newest verified recovery point.", DESTINATION_LABELS),
    "replica_destination_newest_verified_recovery_point_timestamp_seconds": (
        "When the destination's newest verified recovery point was taken.",
        DESTINATION_LABELS,
    ),
    "replica_destination_data_loss_window_seconds": (
        "Age of the destination's newest restored canary.",
        DESTINATION_LABELS,
    ),
    "replica_destination_last_verify_success_timestamp_seconds": (
        "When the last successful verification of the destination finished.",
        DESTINATION_LABELS,
    ),
    "replica_last_backup_failure": (
        "1 while the job's last backup failed, labelled with its failure state (absent after a success).",
        JOB_LABELS,
    ),
    "replica_destination_last_verify_failure": (
        "1 while the destination's last verification failed, labelled with its failure state.",
        DESTINATION_LABELS,
    ),
    "replica_wal_lag_seconds": (
        "A physical PostgreSQL job's replication lag in the destination: an upper bound on the committed data a "
        "restore from it would lose now (last measurement, aged to scrape time).",
        DESTINATION_LABELS,
    ),
    "replica_broken_job_files": ("Job files disabled because they do not validate.", ()),
    "replica_daemon_up": ("1 while the daemon runs.", ()),
    "replica_daemon_start_time_seconds": ("When the daemon started.", ()),
    "replica_daemon_last_tick_timestamp_seconds": ("When the daemon's watchdog last ticked.", ()),
    "replica_daemon_running_runs": ("Runs in progress in the daemon.", ()),
    "replica_daemon_leader": ("1 while this daemon leads the scheduling, 0 while it stands by.", ()),
    "replica_scheduler_leader_info": (
        "1, labelled with the daemon that leads the scheduling (as the catalog names it) and its executor.",
        ("daemon", "executor"),
    ),
    "replica_last_run_worker_info": (
        "1, labelled with who ran the job's newest backup or verification (worker:NAME, daemon@host, user@host).",
        ("job", "kind", "worker"),
    ),
}
EXTRA_LABELS = {
    "replica_job_state": ("state",),
    "replica_objective_breached": ("objective",),
    "replica_last_backup_failure": ("failure",),
    "replica_destination_last_verify_failure": ("failure",),
}


def _timestamp(text: str | None) -> float | None:
    """Return the Unix time of an ISO 8601 text (naive means UTC), None for None; raises ValueError if malformed."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _succeeded_at(run: Mapping[str, Any] | None) -> float | None:
    return _timestamp(run.get("finished_at")) if run and run.get("status") == "succeeded" else None


@dataclass
class _State:
    """Everything rendered at scrape time; replaced or mutated only under DaemonMetrics' lock."""

    started_at: float
    last_tick: float | None = None
    running_runs: int = 0
    leading: bool = False
    # The status document's `scheduler` (leader, executor) when a daemon ever led.
    scheduler_leader: tuple[str, str] | None = None
    generated_at: float | None = None
    jobs: tuple[Mapping[str, Any], ...] = ()
    broken_jobs: int | None = None
    # Remembered across documents: a document only holds the latest backup (and verification), and a failed
    # one would otherwise erase when the last success happened.
    backup_successes: dict[str, float] = field(default_factory=dict)
    verify_successes: dict[tuple[str, str], float] = field(default_factory=dict)
    verified_points: dict[tuple[str, str], float | None] = field(default_factory=dict)
    breaches: dict[tuple[str, str], bool] = field(default_factory=dict)


class DaemonMetrics:
    """The daemon's metrics; every method is thread-safe. `clock` returns Unix time (tests pass their own)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _State(started_at=clock())
        self.registry = CollectorRegistry()
        self._runs = Counter(
            "replica_runs_total", "Runs by job, kind and outcome.", ("job", "kind", "outcome"), registry=self.registry
        )
        self._durations = Histogram(
            "replica_run_duration_seconds",
            "Duration of runs that did work (not skipped).",
            ("job", "kind"),
            buckets=RUN_DURATION_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self._bytes_added = Counter(
            "replica_backup_bytes_added_total",
            "Bytes added to the repository by backups.",
            JOB_LABELS,
            registry=self.registry,
        )
        self._alerts = Counter(
            "replica_alerts_total",
            "Breaches opened, by job and objective.",
            ("job", "objective"),
            registry=self.registry,
        )
        self._dispatched = Counter(
            "replica_daemon_dispatched_total",
            "Tasks the daemon sent to the workers (celery executor), by job, kind and outcome (sent, failed).",
            ("job", "kind", "outcome"),
            registry=self.registry,
        )
        self._schedule_lag = Histogram(
            "replica_schedule_lag_seconds",
            "Delay between a run's due time and its start.",
            buckets=SCHEDULE_LAG_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(self._state_families))

    def update_status(self, document: Mapping[str, Any]) -> None:
        """Make `document` (`replica status --json`) the current state; jobs absent from it leave the output.

        Raises ValueError for a document of another format or with a malformed timestamp (the state is unchanged).
        """
        if document.get("format") != STATUS_FORMAT:
            raise ValueError(f"status document of format {document.get('format')!r}, expected {STATUS_FORMAT}")
        generated_at = _timestamp(document["generated_at"])
        jobs = tuple(document["jobs"])
        backups = {job["job"]: _succeeded_at(job.get("last_backup")) for job in jobs}
        verifications = {
            (job["job"], destination["name"]): _succeeded_at(destination.get("last_verify"))
            for job in jobs
            for destination in job["destinations"]
        }
        # Parsed here, not at scrape time: a malformed timestamp fails this call once, not every scrape.
        verified_points = {
            (job["job"], destination["name"]): _timestamp(destination.get("newest_verified_at"))
            for job in jobs
            for destination in job["destinations"]
        }
        scheduler = document.get("scheduler") or {}
        leader = (str(scheduler["leader"]), str(scheduler["executor"])) if scheduler.get("leader") else None
        with self._lock:
            state = self._state
            state.generated_at, state.jobs, state.broken_jobs = generated_at, jobs, len(document["broken_jobs"])
            state.scheduler_leader = leader
            state.backup_successes = _remember(state.backup_successes, backups)
            state.verify_successes = _remember(state.verify_successes, verifications)
            state.verified_points = verified_points
            state.breaches = {key: opened for key, opened in state.breaches.items() if key[0] in backups}

    def observe_run(
        self, job: str, kind: str, outcome: str, duration_seconds: float, bytes_added: int | None = None
    ) -> None:
        """Count one run of `kind` for `job`; its duration too unless it did not run; bytes only when known."""
        self._runs.labels(job, kind, outcome).inc()
        if outcome not in NOT_RUN_OUTCOMES:
            self._durations.labels(job, kind).observe(max(duration_seconds, 0.0))
        if bytes_added:
            self._bytes_added.labels(job).inc(max(bytes_added, 0))

    def observe_dispatch(self, job: str, kind: str, outcome: str) -> None:
        """Count one attempt to send a task of `kind` for `job` to the workers (`sent` or `failed`)."""
        self._dispatched.labels(job, kind, outcome).inc()

    def observe_breach(self, job: str, objective: str, opened: bool) -> None:
        """Record that the breach of `objective` ("rpo", "rto") of `job` opened (counted as an alert) or cleared."""
        with self._lock:
            self._state.breaches[(job, objective)] = opened
        if opened:
            self._alerts.labels(job, objective).inc()

    def observe_schedule_lag(self, lag_seconds: float) -> None:
        """Record the delay between a run's due time and its start."""
        self._schedule_lag.observe(max(lag_seconds, 0.0))

    def tick(self) -> None:
        """Record that the watchdog ticked now."""
        with self._lock:
            self._state.last_tick = self._clock()

    def set_running(self, count: int) -> None:
        """Record how many runs are in progress."""
        with self._lock:
            self._state.running_runs = count

    def set_leader(self, leading: bool) -> None:
        """Record whether this daemon leads the scheduling (True) or stands by."""
        with self._lock:
            self._state.leading = leading

    def render(self) -> bytes:
        """Return every metric in Prometheus' text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)

    def _state_families(self) -> Iterator[Metric]:
        """Yield the current-state metrics that have samples, ages counted up to now."""
        with self._lock:
            # Dicts that update_status replaces are safe to share; breaches is changed in place, so copy it.
            state = replace(self._state, breaches=dict(self._state.breaches))
        return _render_state(state, self._clock())


def _render_state(state: _State, now: float) -> Iterator[Metric]:
    families = {name: _family(name) for name in STATE_METRICS}

    def add(name: str, labels: list[str], value: float | None) -> None:
        if value is not None:
            families[name].add_metric(labels, float(value))

    add("replica_daemon_up", [], 1)
    add("replica_daemon_start_time_seconds", [], state.started_at)
    add("replica_daemon_last_tick_timestamp_seconds", [], state.last_tick)
    add("replica_daemon_running_runs", [], state.running_runs)
    add("replica_broken_job_files", [], state.broken_jobs)
    add("replica_daemon_leader", [], 1 if state.leading else 0)
    if state.scheduler_leader is not None:
        add("replica_scheduler_leader_info", list(state.scheduler_leader), 1)
    # The document was right when generated; between two updates, ages keep growing.
    age = max(now - state.generated_at, 0.0) if state.generated_at is not None else 0.0
    for job in state.jobs:
        name = job["job"]
        add("replica_rpo_seconds", [name], _aged(job.get("rpo_seconds"), age))
        add("replica_rpo_objective_seconds", [name], job.get("rpo_objective_seconds"))
        add("replica_rto_seconds", [name], job.get("rto_seconds"))
        add("replica_rto_objective_seconds", [name], job.get("rto_objective_seconds"))
        add("replica_data_loss_window_seconds", [name], _aged(job.get("data_loss_window_seconds"), age))
        add("replica_abandoned_runs", [name], job.get("abandoned_runs"))
        add("replica_last_backup_success_timestamp_seconds", [name], state.backup_successes.get(name))
        last_backup = job.get("last_backup")
        if last_backup and last_backup.get("status") == "failed":
            add("replica_last_backup_failure", [name, last_backup.get("failure") or FALLBACK_STATE], 1)
        current = str(job["state"]).replace(" ", "_")
        for each in (*JOB_STATES, *([current] if current not in JOB_STATES else [])):
            add("replica_job_state", [name, each], 1 if each == current else 0)
        newest: list[float] = []
        warning = 0
        for destination in job["destinations"]:
            labels = [name, destination["name"]]
            forecast = destination.get("rto_forecast")
            if forecast:
                warning |= forecast["warning"]
                add("replica_rto_forecast_breach_timestamp_seconds", labels, _timestamp(forecast["breach_at"]))
            taken_at = state.verified_points.get((name, destination["name"]))
            if taken_at is not None:
                newest.append(taken_at)
            add("replica_destination_rpo_seconds", labels, _aged(destination.get("rpo_seconds"), age))
            wal_lag = destination.get("wal_lag")
            if wal_lag:
                add("replica_wal_lag_seconds", labels, _aged(wal_lag["lag_seconds"], age))
            add("replica_destination_newest_verified_recovery_point_timestamp_seconds", labels, taken_at)
            window = _aged(destination.get("data_loss_window_seconds"), age)
            add("replica_destination_data_loss_window_seconds", labels, window)
            verified_at = state.verify_successes.get((name, destination["name"]))
            add("replica_destination_last_verify_success_timestamp_seconds", labels, verified_at)
            last_verify = destination.get("last_verify")
            if last_verify and last_verify.get("status") == "failed":
                failure = last_verify.get("failure") or FALLBACK_STATE
                add("replica_destination_last_verify_failure", [*labels, failure], 1)
        add("replica_newest_verified_recovery_point_timestamp_seconds", [name], max(newest, default=None))
        for kind, run in _newest_runs(job).items():
            add("replica_last_run_worker_info", [name, kind, run["actor"]], 1)
        add("replica_rto_forecast_warning", [name], warning)
    for (name, objective), breached in sorted(state.breaches.items()):
        add("replica_objective_breached", [name, objective], 1 if breached else 0)
    return (family for family in families.values() if family.samples)


def _newest_runs(job: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Return the job's newest backup and newest verification (of any destination) that name who ran them."""
    verifications = [d["last_verify"] for d in job["destinations"] if d.get("last_verify")]
    candidates = {
        "backup": job.get("last_backup"),
        "verify": max(verifications, key=lambda run: run["run_id"], default=None),
    }
    return {kind: run for kind, run in candidates.items() if run and run.get("actor")}


def _family(name: str) -> GaugeMetricFamily:
    help_text, labels = STATE_METRICS[name]
    return GaugeMetricFamily(name, help_text, labels=(*labels, *EXTRA_LABELS.get(name, ())))


def _aged(seconds: float | None, age_seconds: float) -> float | None:
    return None if seconds is None else float(seconds) + age_seconds


def _remember(known: Mapping[K, float], latest: Mapping[K, float | None]) -> dict[K, float]:
    """Return the newest success time of every key in `latest`: its own, else the one remembered (if any)."""
    remembered: dict[K, float] = {}
    for key, succeeded_at in latest.items():
        candidates = [value for value in (succeeded_at, known.get(key)) if value is not None]
        if candidates:
            remembered[key] = max(candidates)
    return remembered


class _StateCollector:
    """Adapter so the registry renders DaemonMetrics' current state on every scrape."""

    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return self._families()

    def describe(self) -> Iterator[Metric]:
        # Every name, samples or not, so that the registry can refuse a duplicate name at registration.
        return iter([_family(name) for name in STATE_METRICS])


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsHTTPServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            try:
                body = self.server.metrics.render()
            except Exception:  # answer the scrape (Prometheus records it failed) rather than drop the connection
                logger.exception("rendering the metrics failed")
                self._answer(500, b"error rendering the metrics", "text/plain; charset=utf-8")
                return
            self._answer(200, body, CONTENT_TYPE_PLAIN_0_0_4)
        elif path == "/healthz":
            try:
                healthy = self.server.is_healthy()
            except Exception:  # a health check that cannot answer is an unhealthy daemon, not a dead server
                healthy = False
            self._answer(200 if healthy else 503, b"ok" if healthy else b"unhealthy", "text/plain; charset=utf-8")
        else:
            self._answer(404, b"not found", "text/plain; charset=utf-8")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s would flood the daemon's stderr


class _MetricsHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, metrics: DaemonMetrics, is_healthy: Callable[[], bool]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.metrics = metrics
        self.is_healthy = is_healthy
        super().__init__((host, port), _Handler)


class MetricsServer:
    """Serves `/metrics` and `/healthz` from a daemon thread."""

    def __init__(self, metrics: DaemonMetrics, host: str, port: int, is_healthy: Callable[[], bool]) -> None:
        self._metrics, self._host, self._port, self._is_healthy = metrics, host, port, is_healthy
        self._server: _MetricsHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Return the bound port (the free one picked for port 0); raises RuntimeError before start()."""
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and start serving; raises OSError when the address cannot be bound (in use, not local)."""
        self._server = _MetricsHTTPServer(self._host, self._port, self._metrics, self._is_healthy)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port; does nothing if not started."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(SERVER_STOP_SECONDS)
        self._server, self._thread = None, None
