"""Comparing per-table fingerprints (row counts and content digests), shared by the database stores."""

from __future__ import annotations

from replica.catalog.records import CheckOutcome
from replica.config.models import VerificationConfig
from replica.stores.base import Fingerprint

MAX_LISTED_PROBLEMS = 5


def compare_tables(expected: Fingerprint, found: Fingerprint, verification: VerificationConfig) -> CheckOutcome:
    """Return the `fingerprint` check: every table present with its row count (within the tolerance) and digest.

    The detail carries the figures: "row count of public.orders: expected 120000, restored 119874".
    """
    if expected.get("digest") != found.get("digest"):
        # Digests of two methods never match: comparing them would report every table as changed.
        return CheckOutcome(
            "fingerprint",
            False,
            True,
            f"not compared: the backup's digest '{expected.get('digest')}' is not the restore's "
            f"'{found.get('digest')}' (a newer replica took the backup?)",
        )
    expected_tables: dict[str, dict[str, object]] = expected.get("tables", {})
    found_tables: dict[str, dict[str, object]] = found.get("tables", {})
    problems: list[str] = []
    tolerated: list[str] = []
    for name in sorted(expected_tables):
        want = expected_tables[name]
        got = found_tables.get(name)
        if got is None:
            problems.append(f"table {name}: missing from the restore")
            continue
        want_rows, got_rows = int(str(want["rows"])), int(str(got["rows"]))
        allowed = want_rows * verification.row_count_tolerance_percent / 100
        if abs(want_rows - got_rows) > allowed:
            problems.append(f"row count of {name}: expected {want_rows}, restored {got_rows}")
        elif want_rows != got_rows:
            tolerated.append(f"{name} ({want_rows} -> {got_rows})")
        elif want.get("hash") != got.get("hash"):
            # Digests of two methods never match (the restore's columns no longer allow the backup's method).
            problems.append(
                f"content of {name}: not compared: the backup digested it by '{want.get('hash')}', "
                f"the restore by '{got.get('hash')}'"
            )
        elif want["digest"] != got["digest"]:
            # The tolerance forgives missing rows, never changed ones: equal counts must mean equal content.
            problems.append(f"content of {name}: digest expected {want['digest']}, restored {got['digest']}")
    extra = sorted(set(found_tables) - set(expected_tables))
    if extra:
        problems.append(f"unexpected tables in the restore: {', '.join(extra[:MAX_LISTED_PROBLEMS])}")
    if problems:
        shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
        return CheckOutcome("fingerprint", False, True, shown + more)
    rows = sum(int(str(table["rows"])) for table in expected_tables.values())
    if tolerated:
        return CheckOutcome(
            "fingerprint",
            True,
            True,
            f"{len(expected_tables)} tables, {rows} rows; within the row count tolerance, content not compared: "
            + ", ".join(tolerated[:MAX_LISTED_PROBLEMS]),
        )
    return CheckOutcome(
        "fingerprint",
        True,
        True,
        f"{len(expected_tables)} tables, {rows} rows: counts and content digests match",
    )
