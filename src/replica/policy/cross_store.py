"""Cross-store checks of a drill, as a pure function: the values one restored store yields must all be among the
values another yields (every attachment path names a restored file, every session names a restored user)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MISSING_LISTED = 100  # the report names this many missing values (sorted) and counts the rest


@dataclass(frozen=True)
class CrossStoreResult:
    """The outcome of one cross-store check: how many values were compared and which were missing.

    `error` says why the check could not compare at all (a store not restored, a query that failed); such a check
    failed."""

    name: str
    critical: bool
    values_job: str
    exist_in_job: str
    values_count: int = 0
    exist_in_count: int = 0
    missing: list[str] = field(default_factory=list)  # the first MISSING_LISTED, sorted
    missing_count: int = 0
    error: str | None = None
    duration_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Return True when every value was found (and the check could run)."""
        return self.error is None and self.missing_count == 0

    @property
    def detail(self) -> str:
        """Return one line with the numbers: what was compared and what is missing."""
        if self.error is not None:
            return f"not compared: {self.error}"
        compared = (
            f"{self.values_count} values of '{self.values_job}' against {self.exist_in_count} of '{self.exist_in_job}'"
        )
        if not self.missing_count:
            return f"all {compared} found"
        more = f" (and {self.missing_count - len(self.missing)} more)" if self.missing_count > len(self.missing) else ""
        return f"{self.missing_count} missing of {compared}: {', '.join(self.missing)}{more}"


def extract_values(values: Iterable[str], pattern: str | None) -> set[str]:
    """Return `values` as a set; with `pattern` (one group), the group of each value it matches (searched, so
    anchor it with ^...$ to match whole values), values it does not match left out."""
    if pattern is None:
        return set(values)
    compiled = re.compile(pattern)
    kept = set()
    for value in values:
        match = compiled.search(value)
        if match is not None and match.group(1) is not None:
            kept.add(match.group(1))
    return kept


def compare_values(
    name: str,
    critical: bool,
    values_job: str,
    values: set[str],
    exist_in_job: str,
    exist_in: set[str],
    *,
    duration_seconds: float = 0.0,
) -> CrossStoreResult:
    """Return the check that every value of `values` is in `exist_in`, the missing ones sorted and capped at
    MISSING_LISTED."""
    missing = sorted(values - exist_in)
    return CrossStoreResult(
        name=name,
        critical=critical,
        values_job=values_job,
        exist_in_job=exist_in_job,
        values_count=len(values),
        exist_in_count=len(exist_in),
        missing=missing[:MISSING_LISTED],
        missing_count=len(missing),
        duration_seconds=duration_seconds,
    )
