"""The RTO forecast (replica.policy.forecast) on synthetic histories, and how status, the status table and the
metrics show it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from replica.actions.status import Collected, job_document, job_view
from replica.catalog.latest import LatestRecords
from replica.cli.render import forecast_note, status_table, status_table_of
from replica.config.load import JobOutline
from replica.config.models import PolicyConfig
from replica.daemon.metrics import DaemonMetrics
from replica.policy.forecast import (
    BYTES_PER_GIB,
    HIGH,
    LOW,
    RtoFit,
    RtoSample,
    SizeSample,
    fit_rto,
    forecast_breach,
    theil_sen,
    warns,
)
from replica.report.dataloss import ForecastFacts, expected_recovery_document, expected_recovery_lines

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
OBJECTIVE_SECONDS = 600.0  # 10m


def history(
    days: int,
    size_gib: float,
    growth_gib_per_day: float,
    seconds_per_gib: float = 10.0,
    base_seconds: float = 20.0,
    noise: float = 0.0,
    seed: int = 7,
) -> tuple[list[RtoSample], list[SizeSample]]:
    """Return one verification a day for `days` days: the size grows linearly, the RTO is linear in the size, times
    a random factor within ±`noise`."""
    generator = random.Random(seed)
    samples, sizes = [], []
    for day in range(days):
        at = START + day * DAY
        size = (size_gib + growth_gib_per_day * day) * BYTES_PER_GIB
        rto = (base_seconds + seconds_per_gib * size / BYTES_PER_GIB) * (1 + generator.uniform(-noise, noise))
        samples.append(RtoSample(at + timedelta(minutes=30), size, rto))
        sizes.append(SizeSample(at, size))
    return samples, sizes


def expected_breach(size_gib: float, growth_gib_per_day: float, base: float = 20.0, per_gib: float = 10.0) -> datetime:
    """Return when the noiseless history of `history` reaches OBJECTIVE_SECONDS."""
    return START + DAY * ((OBJECTIVE_SECONDS - base) / per_gib - size_gib) / growth_gib_per_day


def fitted(samples: list[RtoSample], sizes: list[SizeSample]) -> RtoFit:
    """Return the fit of a history that has enough samples for one."""
    fit = fit_rto(samples, sizes)
    assert fit is not None
    return fit


def test_linear_growth_gives_the_breach_date() -> None:
    # GIVEN 20 daily restores of a store growing 1 GiB a day from 20 GiB, 10 s per GiB (objective at 58 GiB)
    samples, sizes = history(20, 20, 1)
    now = START + 20 * DAY
    # WHEN fitted and forecast
    fit = fitted(samples, sizes)
    forecast = forecast_breach(fit, OBJECTIVE_SECONDS, now)
    # THEN the date is the true one (within an hour), confidently, with the slope in seconds per GiB
    assert forecast.breach_at is not None and not forecast.already
    assert abs(forecast.breach_at - expected_breach(20, 1)) < timedelta(hours=1)
    assert fit.confidence == HIGH and fit.samples == 16
    assert abs(fit.slope_seconds_per_byte * BYTES_PER_GIB - 10.0) < 1e-6
    # and it warns within a 30-day horizon, not within a week
    assert warns(fit, forecast, now, timedelta(days=30))
    assert not warns(fit, forecast, now, timedelta(days=7))


def test_flat_data_never_breaches() -> None:
    # GIVEN a store that does not grow
    samples, sizes = history(20, 30, 0)
    # WHEN forecast
    fit = fitted(samples, sizes)
    forecast = forecast_breach(fit, OBJECTIVE_SECONDS, START + 20 * DAY)
    # THEN there is no date and no warning
    assert forecast.breach_at is None and not forecast.already
    assert not warns(fit, forecast, START + 20 * DAY, timedelta(days=3650))


def test_noisy_restores_with_outliers_keep_the_date() -> None:
    # GIVEN ±5% noise on every restore, and three restores 8x slower (a busy bucket)
    samples, sizes = history(20, 20, 1, noise=0.05)
    for index in (17, 14, 11):
        samples[index] = samples[index]._replace(rto_seconds=samples[index].rto_seconds * 8)
    # WHEN fitted
    fit = fitted(samples, sizes)
    forecast = forecast_breach(fit, OBJECTIVE_SECONDS, START + 20 * DAY)
    # THEN the robust line still gives the date within a quarter of the 18 days to it, with confidence
    assert forecast.breach_at is not None
    assert abs(forecast.breach_at - expected_breach(20, 1)) < 18 * DAY / 4
    assert fit.confidence == HIGH
    # whereas a least-squares slope through the same points would be far off
    points = [(s.restored_bytes / BYTES_PER_GIB, s.rto_seconds) for s in samples[-16:]]
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    least_squares = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    assert abs(least_squares - 10.0) > 5 * abs(theil_sen(points)[1] - 10.0)


def test_mostly_noise_is_low_confidence_and_never_warns() -> None:
    # GIVEN restore times that vary ±80% around the line
    samples, sizes = history(20, 20, 1, noise=0.8, seed=3)
    now = START + 20 * DAY
    # WHEN fitted
    fit = fitted(samples, sizes)
    forecast = forecast_breach(fit, OBJECTIVE_SECONDS, now)
    # THEN the fit is marked low confidence, and whatever date it gives is not warned about
    assert fit.confidence == LOW
    assert not warns(fit, forecast, now, timedelta(days=3650))


def test_shrinking_data_never_breaches() -> None:
    # GIVEN a store losing 1 GiB a day
    samples, sizes = history(20, 50, -1)
    fit = fitted(samples, sizes)
    # WHEN forecast THEN no date
    assert fit.growth_bytes_per_second < 0
    assert forecast_breach(fit, OBJECTIVE_SECONDS, START + 20 * DAY).breach_at is None


def test_restores_that_get_faster_with_size_never_breach() -> None:
    # GIVEN a growing store whose restores got faster (a negative slope: e.g. moved to faster storage)
    samples, sizes = history(20, 20, 1, seconds_per_gib=-5, base_seconds=400)
    fit = fitted(samples, sizes)
    # WHEN forecast THEN no date
    assert fit.slope_seconds_per_byte < 0
    assert forecast_breach(fit, OBJECTIVE_SECONDS, START + 20 * DAY).breach_at is None


def test_restores_faster_with_size_on_shrinking_data_never_breach() -> None:
    # GIVEN a shrinking store whose restores look faster the bigger they are (two falling slopes, whose product
    # would be a rising rate)
    samples, sizes = history(20, 50, -1, seconds_per_gib=-5, base_seconds=400)
    fit = fitted(samples, sizes)
    assert fit.slope_seconds_per_byte < 0 and fit.growth_bytes_per_second < 0
    # WHEN forecast THEN no date, and nothing to warn about
    forecast = forecast_breach(fit, OBJECTIVE_SECONDS, START + 20 * DAY)
    assert forecast.breach_at is None
    assert not warns(fit, forecast, START + 20 * DAY, timedelta(days=3650))


def test_growth_too_slow_for_five_years_is_no_forecast() -> None:
    # GIVEN a store growing 1 MiB a day, 38 GiB below the objective
    samples, sizes = history(20, 20, 1 / 1024)
    fit = fitted(samples, sizes)
    # WHEN forecast THEN no date (it would be a century away)
    assert forecast_breach(fit, OBJECTIVE_SECONDS, START + 20 * DAY).breach_at is None


def test_fewer_than_three_samples_give_no_fit_and_few_give_low_confidence() -> None:
    # GIVEN two restores, then four
    samples, sizes = history(4, 20, 1)
    # WHEN fitted THEN two give nothing, four a low-confidence fit
    assert fit_rto(samples[:2], sizes[:2]) is None
    assert fit_rto(samples, sizes[:2]) is None  # too little size history too
    four = fit_rto(samples, sizes)
    assert four is not None and four.confidence == LOW and four.samples == 4


def test_identical_sizes_have_no_slope_and_no_breach() -> None:
    # GIVEN restores of the same size (and a size history that does grow)
    _, sizes = history(10, 20, 1)
    samples = [RtoSample(START + day * DAY, 20 * BYTES_PER_GIB, 200.0 + day % 3) for day in range(10)]
    fit = fitted(samples, sizes)
    # WHEN forecast THEN the slope is 0 and there is no date
    assert fit.slope_seconds_per_byte == 0
    assert forecast_breach(fit, OBJECTIVE_SECONDS, START + 10 * DAY).breach_at is None


def test_already_over_the_objective_is_now() -> None:
    # GIVEN a store already past 58 GiB
    samples, sizes = history(20, 70, 1)
    now = START + 20 * DAY
    fit = fitted(samples, sizes)
    # WHEN forecast THEN it is already breached, dated now, and warned about
    forecast = forecast_breach(fit, OBJECTIVE_SECONDS, now)
    assert forecast.already and forecast.breach_at == now
    assert forecast.predicted_rto_seconds > OBJECTIVE_SECONDS
    assert warns(fit, forecast, now, timedelta(days=1))


# Status, table and metrics ------------------------------------------------------------------------------------


def status_of(fit: RtoFit, now: datetime, horizon: str = "30d") -> dict[str, object]:
    policy = PolicyConfig.model_validate(
        {"name": "standard", "rpo": "1d", "rto": "10m", "rto_forecast_horizon": horizon}
    )
    outline = JobOutline("billing", "postgresql", "standard", ("primary",))
    return job_document(job_view(outline, policy, LatestRecords(rto_fits={"primary": fit}), now), now)


def growing_fit() -> tuple[RtoFit, datetime]:
    """A fit breaching 10m 18 days after `now` (on 2026-02-08)."""
    samples, sizes = history(20, 20, 1)
    fit = fitted(samples, sizes)
    return fit, START + 20 * DAY


def test_status_warns_when_the_breach_is_within_the_horizon() -> None:
    # GIVEN a job whose RTO is forecast to breach in 18 days
    fit, now = growing_fit()
    # WHEN status is built with the default 30-day horizon
    document = status_of(fit, now)
    # THEN a reason names the date, the job is at risk, and the destination carries the forecast
    forecast = document["destinations"][0]["rto_forecast"]  # type: ignore[index]
    breach_day = forecast["breach_at"][:10]
    assert any(f"forecast to exceed 10m00s on {breach_day}" in reason for reason in document["reasons"])  # type: ignore[attr-defined]
    assert "(in 18 days) at the current growth" in " ".join(document["reasons"])  # type: ignore[arg-type]
    assert document["state"] in ("at risk", "breached")  # never verified: breached wins
    assert forecast["warning"] and forecast["confidence"] == HIGH and forecast["samples"] == 16
    assert abs(forecast["slope_seconds_per_gib"] - 10.0) < 1e-6
    assert forecast_note(document) == f" (over ~{breach_day})"


def test_status_does_not_warn_when_the_breach_is_beyond_the_horizon() -> None:
    # GIVEN the same job with a 14-day horizon
    fit, now = growing_fit()
    # WHEN status is built
    document = status_of(fit, now, "14d")
    # THEN the forecast is shown but no reason
    forecast = document["destinations"][0]["rto_forecast"]  # type: ignore[index]
    assert forecast["breach_at"] is not None and not forecast["warning"]
    assert not any("forecast" in reason for reason in document["reasons"])  # type: ignore[attr-defined]
    assert document["rto_forecast_horizon_seconds"] == 14 * 86400


def test_metrics_expose_the_breach_time_and_the_warning() -> None:
    # GIVEN the status of a job warned within its horizon
    fit, now = growing_fit()
    job = status_of(fit, now)
    metrics = DaemonMetrics(clock=now.timestamp)
    # WHEN the metrics render it
    metrics.update_status({"format": 1, "generated_at": now.isoformat(), "jobs": [job], "broken_jobs": []})
    exposed = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }
    # THEN the breach time and the warning are exposed
    breach_at = datetime.fromisoformat(job["destinations"][0]["rto_forecast"]["breach_at"])  # type: ignore[index]
    labels = (("destination", "primary"), ("job", "billing"))
    assert exposed[("replica_rto_forecast_breach_timestamp_seconds", labels)] == breach_at.timestamp()
    assert exposed[("replica_rto_forecast_warning", (("job", "billing"),))] == 1.0


def test_the_data_loss_report_states_each_destination_forecast() -> None:
    # GIVEN the forecasts of two destinations: one breaching on a date, one never
    forecasts = [
        ForecastFacts("primary", datetime(2026, 2, 8, tzinfo=UTC), False, HIGH, 16),
        ForecastFacts("offsite", None, False, LOW, 4),
    ]
    # WHEN the expected recovery section is built and rendered
    lines = expected_recovery_lines(expected_recovery_document(300.0, OBJECTIVE_SECONDS, forecasts))
    # THEN it states both
    assert (
        "- The RTO of 'primary' is forecast to exceed the objective on 2026-02-08 at the current growth "
        "(high confidence, 16 measured restores)." in lines
    )
    assert any("'offsite' is not forecast to exceed the objective within 5 years" in line for line in lines)


def test_the_table_written_from_status_views_is_the_documents_table() -> None:
    # GIVEN jobs whose destinations forecast breaches: the earliest of two, a low-confidence one, one already over,
    # one beyond the horizon, one with equal breach times, and one with no fit
    growing, now = growing_fit()
    faster = fitted(*history(20, 30, 1))  # breaches earlier than `growing`
    noisy = growing._replace(confidence="low")
    over = fitted(*history(20, 80, 1))
    policy = PolicyConfig.model_validate({"name": "standard", "rpo": "1d", "rto": "10m", "rto_forecast_horizon": "14d"})
    fits = {
        "two": {"primary": growing, "offsite": faster},
        "doubtful": {"primary": noisy},
        "over": {"offsite": over, "primary": growing},
        "equal": {"primary": noisy, "offsite": growing},
        "none": {},
    }
    views = [
        job_view(
            JobOutline(name, "postgresql", "standard", ("primary", "offsite")), policy, LatestRecords(rto_fits=f), now
        )
        for name, f in fits.items()
    ]
    # WHEN the table is written straight from the views, and from their documents
    status = Collected(now, views, [("broken", ["jobs/broken.yaml: at 'store': unknown kind"])], {"leader": None})
    document = {
        "generated_at": now.isoformat(),
        "jobs": [job_document(view, now) for view in views],
        "broken_jobs": [{"job": "broken", "problems": ["jobs/broken.yaml: at 'store': unknown kind"]}],
        "scheduler": {"leader": None},
    }
    # THEN both are the same text, which names each earliest breach
    text = status_table_of(status)
    assert text == status_table(document)
    rows = {line.split()[0]: line for line in text.splitlines()[1:6]}
    assert "(over now)" in rows["over"]
    assert f"(over ~{forecast_breach(faster, 600, now).breach_at:%Y-%m-%d})" in rows["two"]
    assert "?)" in rows["doubtful"] and "(over" not in rows["none"]
