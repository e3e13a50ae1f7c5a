"""Checking a large verification log on every core: contiguous ranges of events, one process each.

Each event's hash depends only on the stored row before it (its hash and signature), so ranges can be checked
independently: a range starts from the stored event before it, and a problem is local to the event it names. The
first problem of the whole log is the lowest one any range finds; the newest signature is checked once, at the
end, by the caller. Only SQLite catalogs (the default) are split this way: each worker opens the file read-only,
which WAL mode allows beside a running writer. Below PARALLEL_MINIMUM_EVENTS starting processes costs more than it
saves.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from replica.audit.chain import EVENT_FIELDS, GENESIS_HASH, ChainProblem, ChainSummary, check_chain

PARALLEL_MINIMUM_EVENTS = 200_000
MAXIMUM_WORKERS = 8
FETCH_ROWS = 20_000
COLUMNS = ", ".join(EVENT_FIELDS)


def worker_count(events: int) -> int:
    """Return how many processes to check `events` events with (1: do it in this process)."""
    if events < PARALLEL_MINIMUM_EVENTS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAXIMUM_WORKERS))


def check_ranges(database: Path, head_seq: int, workers: int, require_signatures: bool) -> ChainSummary:
    """Check events 1..head_seq of the SQLite catalog at `database` in `workers` processes; return the merged
    summary (without the newest-signature check, which the caller makes)."""
    size = -(-head_seq // workers)
    ranges = [(first, min(first + size - 1, head_seq)) for first in range(1, head_seq + 1, size)]
    # spawn, not fork: the daemon has threads, and a forked copy of a locked mutex never unlocks.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(ranges), mp_context=context) as pool:
        futures = [pool.submit(check_range, str(database), first, last, require_signatures) for first, last in ranges]
        parts = [future.result() for future in futures]
    return merge(parts)


def check_range(database: str, first: int, last: int, require_signatures: bool) -> ChainSummary:
    """Check events first..last of the catalog file (in a worker process); return the range's summary."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        previous: tuple[Any, ...] = (GENESIS_HASH, None, None)
        if first > 1:
            found = connection.execute("SELECT hash, signature, key_id FROM events WHERE seq = ?", (first - 1,))
            row = found.fetchone()
            if row is None:  # the range before ends with the same finding; reported here too
                return ChainSummary(problem=ChainProblem(first - 1, "is missing (deleted?)"))
            previous = tuple(row)
        cursor = connection.execute(
            f"SELECT {COLUMNS} FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)
        )

        def rows() -> Any:
            while batch := cursor.fetchmany(FETCH_ROWS):
                yield from batch

        summary = check_chain(
            rows(),
            previous_hash=previous[0],
            previous_signature=previous[1],
            previous_key_id=previous[2],
            first_seq=first,
            require_signatures=require_signatures,
        )
    finally:
        connection.close()
    if summary.problem is None and summary.head_seq != last:
        missing = (summary.head_seq or first - 1) + 1
        summary.problem = ChainProblem(missing, "is missing (deleted?)")
    return summary


def merge(parts: list[ChainSummary]) -> ChainSummary:
    """Return one summary of consecutive ranges' summaries: the lowest problem, the totals, the newest head."""
    problems = [part.problem for part in parts if part.problem is not None]
    merged = ChainSummary(key_ids=set())
    if problems:
        merged.problem = min(problems, key=lambda problem: problem.seq)
        return merged
    for part in parts:
        merged.events += part.events
        merged.first_seq = merged.first_seq or part.first_seq
        merged.head_seq, merged.head_hash = part.head_seq, part.head_hash
        if merged.first_signed_seq is None:
            merged.first_signed_seq = part.first_signed_seq
        merged.key_ids |= part.key_ids or set()  # type: ignore[operator]
        merged.last_signed = part.last_signed or merged.last_signed
    return merged
