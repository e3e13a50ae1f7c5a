"""The auditor's evidence pack rendered for people and for spreadsheets: a standalone HTML page
(`templates/evidence.html.j2`) and two CSV files.

The pack is the JSON document `{"format": 1, "kind": "replica-evidence", ...}` built from the verification log:
the period, the hash chain of the log (verified or not), one summary per job and every event of the period. These
functions only render it; they never recompute the chain.

CSV layout (UTF-8, header row, `csv` module's default dialect):
- events file: one row per event, columns `EVENT_COLUMNS`; `figures` is the canonical JSON text that was hashed
  (sorted keys, no spaces, UTF-8 as is), so that an auditor can recompute every hash from this file alone;
  `key_id` is empty when the pack's events do not carry one (the pack's chain block names the key).
- summary file `<stem>-summary.csv` beside it: columns `SUMMARY_COLUMNS`. The first column, `record`, says what a
  row is: `job` rows carry the per-job columns (nested counts flattened as `verifications_passed`, ...); one final
  `chain` row carries the period and chain columns, so that the chain head is there even for a pack of no jobs.
Empty cells mean none (null); booleans are `true`/`false`; the chain's problems are joined by `; `.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from replica.audit.chain import CHAIN_FORMAT, SIGNATURE_CONTEXT, canonical_figures
from replica.report.html import template_environment

PACK_FORMAT = 1
PACK_KIND = "replica-evidence"
EVENT_COLUMNS = (
    "seq",
    "recorded_at",
    "kind",
    "job",
    "destination",
    "snapshot",
    "run_id",
    "actor",
    "outcome",
    "figures",
    "detail",
    "previous_hash",
    "hash",
    "key_id",
    "signature",
)
# The nested counts of a job summary, flattened `<group>_<count>` in the summary CSV.
JOB_GROUPS = {
    "backups": ("performed", "succeeded"),
    "copies": ("performed", "succeeded"),
    "verifications": ("performed", "passed", "failed", "pass_rate"),
    "rto": ("measured", "within_objective", "worst_seconds", "median_seconds", "compliance"),
    "rpo": ("period_seconds", "seconds_within_objective", "compliance", "worst_seconds"),
    "restores": ("performed", "succeeded"),
}
JOB_COLUMNS = (
    "job",
    "policy",
    "rpo_objective_seconds",
    "rto_objective_seconds",
    *(f"{group}_{count}" for group, counts in JOB_GROUPS.items() for count in counts),
    "breaches_opened",
    "reports",
)
CHAIN_KEYS = (
    "hash_algorithm",
    "signature_algorithm",
    "public_key",
    "key_id",
    "first_seq",
    "previous_hash",
    "head_seq",
    "head_hash",
    "log_head_seq",
    "log_head_hash",
    "verified",
    "problems",
)
CHAIN_COLUMNS = (
    "generated_at",
    "generated_by",
    "period_since",
    "period_until",
    *(f"chain_{key}" for key in CHAIN_KEYS),
    "chain_previous_signature",  # optional in a pack: empty when it does not carry one
)
SUMMARY_COLUMNS = ("record", *JOB_COLUMNS, *CHAIN_COLUMNS)
# Outcomes an auditor must not miss; the report layer is pure, so it names them rather than import the catalog's.
# `opened` is a breach of an objective opened by the watchdog.
FAILED_OUTCOMES = frozenset({"failed", "interrupted", "abandoned", "opened"})


def render_evidence_html(pack: dict[str, Any]) -> str:
    """Return the evidence pack as a standalone HTML page an auditor can read without replica.

    Raises ValueError when `pack` is not an evidence pack of a known format, and jinja2.UndefinedError when it
    lacks one of the pack's keys.
    """
    _check_pack(pack)
    return (
        template_environment()
        .get_template("evidence.html.j2")
        .render(
            pack=pack,
            chain=pack["chain"],
            # Optional: the signature of the event before the first, needed to recompute the first hash.
            previous_signature=pack["chain"].get("previous_signature"),
            chain_format=CHAIN_FORMAT,
            signature_context=SIGNATURE_CONTEXT.decode("ascii"),
            jobs=[{**job, "failed": _job_failed(job)} for job in pack["jobs"]],
            # Prepared in Python, read by subscript in the template: ten thousand rows through Jinja filters and
            # attribute lookups (which try getattr on a dict first) would cost several times as much.
            events=[_event_view(event) for event in pack["events"]],
        )
    )


def write_evidence_csv(pack: dict[str, Any], events_path: Path) -> Path:
    """Write the pack's events to `events_path` and its per-job summary, with the chain head in a final `chain`
    row, to `<stem>-summary.csv` beside it (layout in the module docstring); return the summary's path.

    Raises ValueError when `pack` is not an evidence pack of a known format, KeyError when it lacks one of the
    pack's keys, OSError when a file cannot be written (the folder must exist).
    """
    _check_pack(pack)
    summary_path = events_path.with_name(f"{events_path.stem}-summary.csv")
    with events_path.open("w", encoding="utf-8", newline="") as events_file:
        writer = csv.DictWriter(events_file, fieldnames=EVENT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for event in pack["events"]:
            writer.writerow(_event_row(event))
    with summary_path.open("w", encoding="utf-8", newline="") as summary_file:
        writer = csv.DictWriter(summary_file, fieldnames=SUMMARY_COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        for job in pack["jobs"]:
            writer.writerow({"record": "job", **{k: _csv_value(v) for k, v in _flatten_job(job).items()}})
        writer.writerow({"record": "chain", **{k: _csv_value(v) for k, v in _flatten_chain(pack).items()}})
    return summary_path


def _event_row(event: dict[str, Any]) -> dict[str, str | int | float]:
    row = {column: _csv_value(event[column]) for column in EVENT_COLUMNS if column not in ("figures", "key_id")}
    # The text that was hashed when the pack carries it, else the same canonical encoding of the parsed figures.
    row["figures"] = event.get("figures_text") or canonical_figures(event["figures"])
    row["key_id"] = _csv_value(event.get("key_id"))
    return row


def compact_figures(figures: dict[str, Any]) -> str:
    """Return an event's figures as `name=value` pairs in key order (`bytes=1024; files=3`), or an empty string."""
    return "; ".join(f"{name}={_figure(value)}" for name, value in sorted(figures.items()))


def _check_pack(pack: dict[str, Any]) -> None:
    if pack.get("kind") != PACK_KIND or pack.get("format") != PACK_FORMAT:
        raise ValueError(
            f"not an evidence pack of format {PACK_FORMAT}: kind {pack.get('kind')!r}, format {pack.get('format')!r}"
        )


def _event_view(event: dict[str, Any]) -> dict[str, Any]:
    """Return the cells of an event's table row, with `-` for none and the figures shown compactly."""
    return {
        **{key: "-" if event[key] is None else event[key] for key in ("job", "destination", "snapshot")},
        **{key: event[key] for key in ("seq", "recorded_at", "kind", "actor", "outcome", "detail", "hash")},
        "figures": compact_figures(event["figures"]),
        "short_hash": event["hash"][:12],
        "failed": event["outcome"] in FAILED_OUTCOMES,
    }


def _job_failed(job: dict[str, Any]) -> bool:
    return bool(job["verifications"]["failed"] or job["breaches_opened"])


def _flatten_job(job: dict[str, Any]) -> dict[str, Any]:
    flat = {key: value for key, value in job.items() if key not in JOB_GROUPS}
    for group, counts in JOB_GROUPS.items():
        flat.update({f"{group}_{count}": job[group].get(count) for count in counts})
    return flat


def _flatten_chain(pack: dict[str, Any]) -> dict[str, Any]:
    chain = pack["chain"]
    return {
        "generated_at": pack["generated_at"],
        "generated_by": pack["generated_by"],
        "period_since": pack["period"]["since"],
        "period_until": pack["period"]["until"],
        **{f"chain_{key}": chain[key] for key in CHAIN_KEYS if key != "problems"},
        "chain_previous_signature": chain.get("previous_signature"),
        "chain_problems": "; ".join(chain["problems"]),
    }


def _csv_value(value: Any) -> str | int | float:
    """Return a cell: empty for None, `true`/`false` for booleans (not Python's `True`), compact JSON for nested."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, int | float | str):
        return value
    return str(value)


def _figure(value: Any) -> str:
    if isinstance(value, float):
        # Four significant digits suit seconds and ratios; large values (bytes) stay whole, never `3e+07`.
        return str(round(value)) if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)
