"""`replica status`: one row per job, from the catalog only (no restic call, so it is instant and safe)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from replica.actions.context import Context
from replica.catalog.facts import FAILED, RUNNING, LagRecord, LatestRecords, RunFacts, VerifiedPointFacts
from replica.config.durations import format_duration
from replica.config.load import JobOutline
from replica.config.models import PolicyConfig
from replica.policy.forecast import BYTES_PER_GIB, RtoFit, RtoForecast, forecast_breach, warns
from replica.policy.objectives import AT_RISK, STATE_ORDER, JobFacts, Objectives, Verdict, evaluate
from replica.processes import process_alive

# Nothing here imports SQLAlchemy: `replica status` reads cached facts without it (replica.catalog.summary_reader).
if TYPE_CHECKING:
    from replica.catalog.models import Run, SchedulerLeader
    from replica.catalog.summary_reader import LeaderFacts, SummaryReader

STATUS_FORMAT = 1
STATUS_CHUNK_JOBS = 1_000


def is_abandoned(run: Run) -> bool:
    """Return True for a run still marked `running` whose process on this host is gone."""
    return run.status == RUNNING and _abandoned(run.host, run.pid)


def _abandoned(host: str, pid: int) -> bool:
    """Return True when a `running` run of `host` and `pid` has lost its process (known only on this host)."""
    return host == socket.gethostname() and not process_alive(pid)


def run_state(run: Run) -> str:
    """Return a run's status as shown to people: `abandoned` for a dead `running` run."""
    return "abandoned" if is_abandoned(run) else run.status


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_status(context: Context, job_name: str, now: datetime) -> dict[str, Any]:
    """Return the status document of one valid job (see README, "replica status --json")."""
    job, policy = context.job(job_name)
    latest = context.catalog.latest_records([job.name])[job.name]
    wal_lags = context.catalog.wal_lags.latest([job.name]).get(job.name, {})
    return job_document(job_view(JobOutline.of(job), policy, latest, now, wal_lags=wal_lags), now)


class DestinationView(NamedTuple):
    """What status says of one destination of a job, before it is written as a document or a table cell."""

    name: str
    point: VerifiedPointFacts | None
    last_verify: RunFacts | None
    canary_at: datetime | None
    canary_window: float | None  # seconds since the canary's recovery point
    object_lock: RunFacts | None  # the run that recorded the bucket's Object Lock state
    fit: RtoFit | None
    forecast: RtoForecast | None
    warning: bool  # the forecast's breach falls within the policy's horizon
    wal_lag: LagRecord | None


class JobView(NamedTuple):
    """What status says of one job: its verdict with the forecasts' warnings added, and each destination."""

    job: JobOutline
    policy: PolicyConfig
    latest: LatestRecords
    verdict: Verdict
    state: str
    reasons: list[str]
    abandoned_runs: int
    destinations: list[DestinationView]
    window: float | None  # the smallest canary loss window of its destinations


def job_view(
    job: JobOutline,
    policy: PolicyConfig,
    latest: LatestRecords,
    now: datetime,
    objectives: Objectives | None = None,
    wal_lags: Mapping[str, LagRecord] | None = None,
) -> JobView:
    """Return what status says of one job from its latest records (`objectives`: the policy's, when the caller built
    them once for many jobs; `wal_lags`: a physical job's recorded WAL lag per destination)."""
    last_backup = latest.last_backup
    points = latest.newest_points
    verifications = latest.latest_verifications
    newest_verified_at = max([point.taken_at for point in points.values()]) if points else None
    facts = JobFacts(
        newest_verified_at=newest_verified_at,
        last_rto_seconds=latest.last_rto_seconds,
        last_backup_failed=last_backup is not None and last_backup.status == FAILED,
        last_copy_failed=latest.last_backup_copy_failed,
        last_verify_failed=any([run.status == FAILED for run in verifications.values()]),
        abandoned_runs=sum(1 for host, pid in latest.running if _abandoned(host, pid)) if latest.running else 0,
        last_backup_failure=last_backup.failure if last_backup is not None else None,
        last_verify_failures=tuple(
            [run.failure for run in verifications.values() if run.status == FAILED and run.failure]
        ),
    )
    verdict = evaluate(facts, objectives or Objectives(policy.rpo, policy.rto, policy.at_risk_fraction), now)
    destinations = []
    window = None
    reasons, state = list(verdict.reasons), verdict.state
    for name in job.destinations:
        point = points.get(name)
        canary_at = _canary_at(point)
        canary_window = (now - canary_at).total_seconds() if canary_at else None
        if canary_window is not None and (window is None or canary_window < window):
            window = canary_window
        fit = latest.rto_fits.get(name)
        forecast, warning = _forecast(name, fit, policy, now, reasons) if fit is not None else (None, False)
        destinations.append(
            DestinationView(
                name,
                point,
                verifications.get(name),
                canary_at,
                canary_window,
                latest.object_locks.get(name),
                fit,
                forecast,
                warning,
                wal_lags.get(name) if wal_lags else None,
            )
        )
    if len(reasons) > len(verdict.reasons):  # a forecast warned: at risk, unless already worse
        state = max(state, AT_RISK, key=STATE_ORDER.index)
    return JobView(job, policy, latest, verdict, state, reasons, facts.abandoned_runs, destinations, window)


def job_document(view: JobView, now: datetime) -> dict[str, Any]:
    """Return the status document of one job (see README, "replica status --json") from what status says of it."""
    job, policy, last_backup, verdict = view.job, view.policy, view.latest.last_backup, view.verdict
    primary = job.destinations[0] if job.destinations else None
    destinations = []
    for destination in view.destinations:
        point, last_verify, canary_at = destination.point, destination.last_verify, destination.canary_at
        destinations.append(
            {
                "name": destination.name,
                "primary": destination.name == primary,
                "newest_verified_snapshot": point.snapshot_id if point else None,
                "newest_verified_at": point.taken_at.isoformat() if point else None,
                "rpo_seconds": (now - point.taken_at).total_seconds() if point else None,
                "canary_recovery_point": canary_at.isoformat() if canary_at else None,
                "data_loss_window_seconds": destination.canary_window,
                "last_verify": {
                    "run_id": last_verify.id,
                    "status": last_verify.status,
                    "failure": last_verify.failure,
                    "finished_at": _iso(last_verify.finished_at),
                    "actor": last_verify.actor,
                }
                if last_verify
                else None,
                "object_lock": _object_lock(destination.object_lock),
                "rto_forecast": _forecast_document(destination.fit, destination.forecast, destination.warning),
                "wal_lag": _wal_lag(destination.wal_lag, now),
            }
        )
    return {
        "job": job.name,
        "store": job.store_kind,
        "policy": policy.name,
        "state": view.state,
        "reasons": view.reasons,
        "rpo_seconds": verdict.rpo_seconds,
        "rpo_objective_seconds": policy.rpo.total_seconds(),
        "rto_seconds": verdict.rto_seconds,
        "rto_objective_seconds": policy.rto.total_seconds(),
        "rto_forecast_horizon_seconds": policy.rto_forecast_horizon.total_seconds(),
        "last_backup": {
            "run_id": last_backup.id,
            "status": last_backup.status,
            "snapshot_id": last_backup.snapshot_id,
            "finished_at": _iso(last_backup.finished_at),
            "error": last_backup.error,
            "failure": last_backup.failure,
            "actor": last_backup.actor,
        }
        if last_backup
        else None,
        "destinations": destinations,
        "abandoned_runs": view.abandoned_runs,
        "data_loss_window_seconds": view.window,
    }


def _forecast(
    destination: str, fit: RtoFit, policy: PolicyConfig, now: datetime, reasons: list[str]
) -> tuple[RtoForecast, bool]:
    """Return a destination's RTO forecast and whether it warns, appending to `reasons` the warning of a confident
    forecast whose breach is within the policy's horizon."""
    objective = policy.rto.total_seconds()
    forecast = forecast_breach(fit, objective, now)
    warning = warns(fit, forecast, now, policy.rto_forecast_horizon)
    if warning and forecast.already:
        reasons.append(
            f"RTO of '{destination}' forecast to exceed {format_duration(objective)} already at the current size "
            f"(predicted {format_duration(forecast.predicted_rto_seconds)})"
        )
    elif warning and forecast.breach_at is not None:
        days = (forecast.breach_at - now).total_seconds() / 86_400
        reasons.append(
            f"RTO of '{destination}' forecast to exceed {format_duration(objective)} on "
            f"{forecast.breach_at.date().isoformat()} (in {days:.0f} days) at the current growth"
        )
    return forecast, warning


def _forecast_document(fit: RtoFit | None, forecast: RtoForecast | None, warning: bool) -> dict[str, Any] | None:
    """Return the `rto_forecast` of a destination's document (None without a fit)."""
    if fit is None or forecast is None:
        return None
    return {
        "breach_at": _iso(forecast.breach_at),
        "already": forecast.already,
        "warning": warning,
        "predicted_rto_seconds": forecast.predicted_rto_seconds,
        "samples": fit.samples,
        "confidence": fit.confidence,
        "intercept_seconds": fit.intercept_seconds,
        "slope_seconds_per_gib": fit.slope_seconds_per_byte * BYTES_PER_GIB,
        "residual_seconds": fit.residual_seconds,
        "growth_bytes_per_day": fit.growth_bytes_per_second * 86_400,
    }


def _wal_lag(record: LagRecord | None, now: datetime) -> dict[str, Any] | None:
    """Return a destination's recorded WAL lag, aged to `now` (None: never measured; a job that ships no WAL)."""
    if record is None:
        return None
    return {
        "lag_seconds": record.seconds_at(now),
        "measured_lag_seconds": record.lag_seconds,
        "lag_is_lower_bound": record.lower_bound,
        "measured_at": record.measured_at.isoformat(),
        "newest_segment": record.newest_segment,
        "newest_stored_at": _iso(record.newest_stored_at),
    }


def _object_lock(run: RunFacts | None) -> dict[str, Any] | None:
    """Return a destination's Object Lock state as its newest backup, copy or prune recorded it (None: never)."""
    if run is None:
        return None
    return {**run.details["object_lock"], "checked_at": _iso(run.finished_at), "run_id": run.id}


def _canary_at(point: VerifiedPointFacts | None) -> datetime | None:
    value = point.verification.details.get("canary_at") if point else None
    return datetime.fromisoformat(value) if value else None


def scheduler_document(context: Context) -> dict[str, Any]:
    """Return who leads the scheduling, as the leading daemon last recorded it: `leader` (`daemon@host:pid`),
    `executor`, `since` and `heartbeat_at`; all None when no daemon ever led."""
    return _scheduler_document(context.catalog.leaders.leader())


def _scheduler_document(leader: SchedulerLeader | LeaderFacts | None) -> dict[str, Any]:
    if leader is None:
        return {"leader": None, "executor": None, "since": None, "heartbeat_at": None}
    return {
        "leader": leader.daemon,
        "executor": leader.executor,
        "since": _iso(leader.since),
        "heartbeat_at": _iso(leader.heartbeat_at),
    }


class _CatalogFacts:
    """The facts of status read through the catalog (SQLAlchemy)."""

    def __init__(self, context: Context) -> None:
        self._catalog = context.catalog

    def latest_records(self, jobs: Sequence[str]) -> dict[str, LatestRecords]:
        return self._catalog.latest_records(jobs)

    def wal_lags(self, jobs: Sequence[str]) -> dict[str, dict[str, LagRecord]]:
        return self._catalog.wal_lags.latest(jobs)

    def scheduler(self) -> dict[str, Any]:
        return _scheduler_document(self._catalog.leaders.leader())


class _DirectFacts:
    """The facts of status read by the plain reader; the jobs whose cached facts are stale go through the catalog,
    which recomputes and stores them."""

    def __init__(self, reader: SummaryReader, context: Context) -> None:
        self._reader = reader
        self._context = context

    def latest_records(self, jobs: Sequence[str]) -> dict[str, LatestRecords]:
        cached, stale = self._reader.cached_latest(jobs)
        if stale:
            cached.update(self._context.catalog.latest_records(stale))
        return cached

    def wal_lags(self, jobs: Sequence[str]) -> dict[str, dict[str, LagRecord]]:
        return self._reader.wal_lags(jobs)

    def scheduler(self) -> dict[str, Any]:
        return _scheduler_document(self._reader.leader())


@contextlib.contextmanager
def _status_facts(context: Context, read_directly: bool) -> Iterator[_CatalogFacts | _DirectFacts]:
    """Yield where status reads its facts: the plain reader when asked and it reads this catalog, else the
    catalog."""
    if not read_directly:
        yield _CatalogFacts(context)
        return
    from replica.catalog.summary_reader import open_summary_reader

    with open_summary_reader(context.settings.catalog_url) as reader:
        yield _CatalogFacts(context) if reader is None else _DirectFacts(reader, context)


Job = TypeVar("Job")


class Collected(NamedTuple, Generic[Job]):
    """What status says of every job (as views or documents), with the time it was said at."""

    now: datetime
    jobs: list[Job]
    broken_jobs: list[tuple[str, list[str]]]  # sorted by name
    scheduler: dict[str, Any]  # see scheduler_document


# What `replica status` shows, before it is written as the JSON document or the table.
StatusViews = Collected[JobView]


def collect_status(
    context: Context, between_jobs: Callable[[], None] | None = None, *, read_directly: bool = False
) -> dict[str, Any]:
    """Return the status document of every job; broken job files are listed with their problems.

    `between_jobs` is called after each job (the daemon yields there, so that its scheduler is not starved while
    thousands of jobs are read). `read_directly`: read the cached facts without SQLAlchemy where the catalog allows
    (a one-shot command, which then never imports it unless a job's facts must be recomputed); the document is the
    same. Raises CatalogError when the catalog cannot be used.
    """
    status = _collect(context, job_document, between_jobs, read_directly)
    return {
        "format": STATUS_FORMAT,
        "generated_at": status.now.isoformat(),
        "scheduler": status.scheduler,
        "jobs": status.jobs,
        "broken_jobs": [{"job": name, "problems": problems} for name, problems in status.broken_jobs],
    }


def collect_views(context: Context, *, read_directly: bool = False) -> StatusViews:
    """Return what `collect_status` writes as its document, for a table written straight from it (the documents of
    10,000 jobs cost ~0.15 s that the table does not need). Raises CatalogError when the catalog cannot be used."""
    return _collect(context, lambda view, now: view, None, read_directly)


def _collect(
    context: Context,
    make: Callable[[JobView, datetime], Job],
    between_jobs: Callable[[], None] | None,
    read_directly: bool,
) -> Collected[Job]:
    """Return `make` of what status says of every job, with the time it was said at, the broken job files and the
    scheduler's leader (see collect_status)."""
    now = datetime.now(UTC)
    configuration = context.configuration
    jobs = []
    names = sorted(configuration.jobs)
    objectives = {
        name: Objectives(policy.rpo, policy.rto, policy.at_risk_fraction)
        for name, policy in configuration.policies.items()
    }
    with _status_facts(context, read_directly) as facts:
        # A chunk of jobs per round of catalog queries (a few grouped queries, not a few per job).
        for start in range(0, len(names), STATUS_CHUNK_JOBS):
            chunk = names[start : start + STATUS_CHUNK_JOBS]
            latest = facts.latest_records(chunk)
            wal_lags = facts.wal_lags(chunk)
            for name in chunk:
                outline = configuration.outlines[name]
                policy = outline.policy
                view = job_view(
                    outline, configuration.policies[policy], latest[name], now, objectives[policy], wal_lags.get(name)
                )
                jobs.append(make(view, now))
                if between_jobs is not None:
                    between_jobs()
        scheduler = facts.scheduler()
    return Collected(now, jobs, sorted(configuration.broken_jobs.items()), scheduler)
