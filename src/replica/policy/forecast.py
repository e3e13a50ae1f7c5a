"""RTO forecast: when will the data's growth push the restore time over its objective? Pure functions.

Two robust straight lines, each a Theil–Sen fit (the median of the slopes between every pair of samples, the
intercept the median of the residuals): restore duration against restored size, per destination, and the store's
size against time. Theil–Sen rather than least squares because one restore slowed by a busy bucket or a cold cache
(an outlier of 5-10x) would tilt a least-squares line and move the forecast by months; Theil–Sen ignores up to ~29%
of such samples. It costs n² / 2 slopes, so only the newest FIT_SAMPLES samples are fitted (a few hundred slopes:
cheap enough to recompute for 10,000 jobs), which also lets the line follow a change of hardware.

The fit (`fit_rto`) depends only on the history, so it is computed when a job's status facts are and cached with
them; `forecast_breach` compares it with the objective and the current time when status is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import median
from typing import NamedTuple

# The newest samples fitted: at most FIT_SAMPLES * (FIT_SAMPLES - 1) / 2 = 120 slopes per line.
FIT_SAMPLES = 16
# Fewer samples than this: no fit at all (two points always fit a line exactly and say nothing about noise).
MINIMUM_SAMPLES = 3
# A fit is `high` confidence from this many samples with a median residual within this fraction of the median RTO;
# below either it is `low`: its date is shown but never warned about.
CONFIDENT_SAMPLES = 5
CONFIDENT_RELATIVE_RESIDUAL = 0.15
# A crossing further away than this is no forecast (a line extrapolated for decades means nothing).
FORECAST_LIMIT = timedelta(days=5 * 365)
HIGH, LOW = "high", "low"
BYTES_PER_GIB = 1024**3


class RtoSample(NamedTuple):
    """One measured restore: when it was measured, how many bytes it restored and how long it took.

    Verifications give one per run; a drill's per-store restores fit in the same shape."""

    measured_at: datetime
    restored_bytes: float
    rto_seconds: float


class SizeSample(NamedTuple):
    """The store's size when a snapshot was taken (its `bytes_processed`)."""

    taken_at: datetime
    size_bytes: float


# Named tuples rather than frozen dataclasses (as the catalog's RunFacts): status builds one per destination from
# the cached summaries, 20,000 at 10,000 jobs, and a frozen dataclass's __init__ costs a setattr per field.
class RtoFit(NamedTuple):
    """RTO ≈ intercept + slope · size, with size ≈ size_at_reference + growth · (t - reference_at)."""

    samples: int
    intercept_seconds: float
    slope_seconds_per_byte: float
    residual_seconds: float  # median absolute residual of the RTO samples
    confidence: str  # HIGH or LOW (see CONFIDENT_SAMPLES)
    reference_at: datetime  # the newest size sample
    size_at_reference_bytes: float
    growth_bytes_per_second: float  # 0 when the size history cannot tell (fewer than two distinct times)

    def predicted_rto_seconds(self, at: datetime) -> float:
        """Return the RTO the fit predicts for the size it predicts at `at`."""
        size = self.size_at_reference_bytes + self.growth_bytes_per_second * (at - self.reference_at).total_seconds()
        return self.intercept_seconds + self.slope_seconds_per_byte * size


class RtoForecast(NamedTuple):
    """When a fit's predicted RTO crosses the objective: `breach_at` None when not within FORECAST_LIMIT (flat,
    shrinking or slow growth); `already` when the prediction for now is over it (then `breach_at` is now)."""

    breach_at: datetime | None
    already: bool
    predicted_rto_seconds: float


def theil_sen(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Return (intercept, slope) of the Theil–Sen line through `points` (x, y); slope 0 when no two x differ.

    Raises ValueError when `points` is empty."""
    slopes = [
        (y2 - y1) / (x2 - x1) for index, (x1, y1) in enumerate(points) for x2, y2 in points[index + 1 :] if x2 != x1
    ]
    slope = median(slopes) if slopes else 0.0
    return median([y - slope * x for x, y in points]), slope


def fit_rto(samples: Sequence[RtoSample], sizes: Sequence[SizeSample]) -> RtoFit | None:
    """Return the fit of the newest FIT_SAMPLES RTO samples and size samples, or None when either has fewer than
    MINIMUM_SAMPLES (samples with no bytes are ignored: a size of 0 means replica did not learn it)."""
    measured = sorted([s for s in samples if s.restored_bytes > 0], key=lambda s: s.measured_at)[-FIT_SAMPLES:]
    history = sorted([s for s in sizes if s.size_bytes > 0], key=lambda s: s.taken_at)[-FIT_SAMPLES:]
    if len(measured) < MINIMUM_SAMPLES or len(history) < MINIMUM_SAMPLES:
        return None
    intercept, slope = theil_sen([(s.restored_bytes, s.rto_seconds) for s in measured])
    residual = median([abs(s.rto_seconds - intercept - slope * s.restored_bytes) for s in measured])
    reference_at = history[-1].taken_at
    # Seconds relative to the newest sample: small numbers, and the intercept is the size at the reference time.
    size_at_reference, growth = theil_sen(
        [((s.taken_at - reference_at).total_seconds(), s.size_bytes) for s in history]
    )
    typical = median([s.rto_seconds for s in measured])
    confident = len(measured) >= CONFIDENT_SAMPLES and residual <= CONFIDENT_RELATIVE_RESIDUAL * typical
    return RtoFit(
        samples=len(measured),
        intercept_seconds=intercept,
        slope_seconds_per_byte=slope,
        residual_seconds=residual,
        confidence=HIGH if confident else LOW,
        reference_at=reference_at,
        size_at_reference_bytes=size_at_reference,
        growth_bytes_per_second=growth,
    )


def forecast_breach(fit: RtoFit, objective_seconds: float, now: datetime) -> RtoForecast:
    """Return when `fit` predicts the RTO will exceed `objective_seconds`, seen from `now`."""
    predicted_now = fit.predicted_rto_seconds(now)
    if predicted_now > objective_seconds:
        return RtoForecast(now, True, predicted_now)
    # Both must rise: restores that take longer with size, and data that grows. Two falling slopes (noise that makes
    # big restores look fast, and shrinking data) multiply to a rising rate that forecasts nothing real.
    if fit.slope_seconds_per_byte <= 0 or fit.growth_bytes_per_second <= 0:
        return RtoForecast(None, False, predicted_now)
    rate = fit.slope_seconds_per_byte * fit.growth_bytes_per_second  # seconds of RTO per second of time
    remaining_seconds = (objective_seconds - predicted_now) / rate
    if remaining_seconds > FORECAST_LIMIT.total_seconds():
        return RtoForecast(None, False, predicted_now)
    return RtoForecast(now + timedelta(seconds=remaining_seconds), False, predicted_now)


def warns(fit: RtoFit, forecast: RtoForecast, now: datetime, horizon: timedelta) -> bool:
    """Return True when a confident forecast's breach falls within `horizon` of `now` (or has already come)."""
    return fit.confidence == HIGH and forecast.breach_at is not None and forecast.breach_at - now <= horizon
