"""The auditor's evidence pack rendered as a standalone HTML page and as two CSV files."""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from replica.audit.chain import ChainedEvent, canonical_figures, event_hash
from replica.report.evidence import (
    EVENT_COLUMNS,
    SUMMARY_COLUMNS,
    compact_figures,
    render_evidence_html,
    write_evidence_csv,
)

HOSTILE = "<script>alert('x')</script>"
GENESIS = "0" * 64
# The columns the page's recipe reads as None when empty; every other column is text as written.
NULLABLE_COLUMNS = ("job", "destination", "snapshot", "run_id", "key_id", "signature")


def event(seq: int, previous_hash: str, outcome: str = "passed", **changes: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "recorded_at": f"2026-11-26T14:{seq % 60:02d}:00+00:00",
        "kind": "verify",
        "job": "billing",
        "destination": "primary",
        "snapshot": "a1b2c3d4",
        "run_id": 100 + seq,
        "actor": "replica@backup-1",
        "outcome": outcome,
        "figures": {"rto_seconds": 754.25, "bytes": 30_001_366, "checks": {"passed": 5, "failed": 0}},
        "detail": "row count of public.orders: expected 120000, restored 120000",
        "previous_hash": previous_hash,
        "hash": f"{seq:02x}" * 32,
        "signature": "5e" * 64,
        **changes,
    }


def job_summary(name: str = "billing") -> dict[str, Any]:
    return {
        "job": name,
        "policy": "gold",
        "rpo_objective_seconds": 3600.0,
        "rto_objective_seconds": 900.0,
        "backups": {"performed": 24, "succeeded": 23},
        "copies": {"performed": 23, "succeeded": 23},
        "verifications": {"performed": 8, "passed": 7, "failed": 1, "pass_rate": 0.875},
        "rto": {
            "measured": 7,
            "within_objective": 6,
            "worst_seconds": 1000.0,
            "median_seconds": 700.0,
            "compliance": 6 / 7,
        },
        "rpo": {
            "period_seconds": 86400.0,
            "seconds_within_objective": 80000.0,
            "compliance": 0.9259,
            "worst_seconds": 7200.0,
        },
        "restores": {"performed": 1, "succeeded": 1},
        "breaches_opened": 1,
        "reports": 2,
    }


def make_pack(event_count: int = 3, jobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    events, previous = [], GENESIS
    for seq in range(1, event_count + 1):
        events.append(event(seq, previous, outcome="failed" if seq == 2 else "passed"))
        previous = events[-1]["hash"]
    head = events[-1] if events else None
    return {
        "format": 1,
        "kind": "replica-evidence",
        "generated_at": "2026-11-27T00:00:00+00:00",
        "generated_by": "replica 0.1 on backup-1",
        "period": {"since": "2026-11-26T00:00:00+00:00", "until": "2026-11-27T00:00:00+00:00"},
        "chain": {
            "hash_algorithm": "sha256",
            "signature_algorithm": "ed25519",
            "public_key": "ab" * 32,
            "key_id": "backup-1-2026",
            "first_seq": 1 if events else None,
            "previous_hash": GENESIS if events else None,
            "head_seq": head["seq"] if head else None,
            "head_hash": head["hash"] if head else None,
            "log_head_seq": head["seq"] if head else None,
            "log_head_hash": head["hash"] if head else None,
            "verified": True,
            "problems": [],
        },
        "jobs": [job_summary()] if jobs is None else jobs,
        "events": events,
    }


def test_html_contains_every_event_seq_and_the_head_hash() -> None:
    pack = make_pack(event_count=5)

    html = render_evidence_html(pack)

    assert (
        "<h1>Evidence pack: backup verification from 2026-11-26T00:00:00+00:00 to 2026-11-27T00:00:00+00:00</h1>"
        in html
    )
    assert html.count('<td class="number">', html.index('id="events"')) == 5
    for item in pack["events"]:
        assert f'<td class="number">{item["seq"]}</td>' in html
        assert f'<td class="hash" title="{item["hash"]}">{item["hash"][:12]}</td>' in html
    assert f"<code>{pack['chain']['head_hash']}</code> (event #5)" in html
    assert "SHA-256 digest of the event" in html  # how to check the chain
    assert '<span class="verdict-ok">yes</span>' in html


def test_failed_outcomes_are_highlighted() -> None:
    html = render_evidence_html(make_pack(event_count=3))
    events_table = html[html.index('id="events"') :]

    assert events_table.count('<tr class="failed">') == 1
    assert '<tr class="failed"><td class="number">2</td>' in events_table


def test_per_job_table_shows_rates_as_percentages_and_objectives_as_durations() -> None:
    html = render_evidence_html(make_pack())
    jobs_table = html[html.index('id="jobs"') : html.index('id="events"')]

    assert "<td>1h00m</td><td>15m00s</td>" in jobs_table  # objectives
    assert '<td class="number">87.5%</td>' in jobs_table  # verification pass rate
    assert '<td class="number">92.5%</td><td class="number">2h00m</td>' in jobs_table  # RPO compliance and worst
    assert '<td class="number">16m40s</td><td class="number">11m40s</td>' in jobs_table  # RTO worst and median
    assert '<tr class="failed"><td>billing</td>' in jobs_table  # a failed verification and a breach


def test_free_text_is_escaped() -> None:
    pack = make_pack(event_count=1, jobs=[job_summary(HOSTILE)])
    pack["events"][0].update(detail=HOSTILE, job=HOSTILE, figures={"note": HOSTILE})
    pack["chain"].update(verified=False, problems=[HOSTILE])

    html = render_evidence_html(pack)

    assert "<script" not in html
    assert html.count("&lt;script&gt;") == 5
    assert '<span class="verdict-bad">NO</span>' in html


def test_a_pack_without_jobs_or_events_renders() -> None:
    pack = make_pack(event_count=0, jobs=[])
    pack["chain"]["signature_algorithm"] = pack["chain"]["public_key"] = pack["chain"]["key_id"] = None

    html = render_evidence_html(pack)

    assert "No job is summarised in this period." in html
    assert "No event was recorded in this period." in html
    assert "none: events are not signed" in html
    assert "<script" not in html.lower()


def test_ten_thousand_events_render_every_row() -> None:
    # How fast is a benchmark's question (benchmarks/audit_log.py), not a test's: a timed assertion fails on a
    # loaded machine. What a test can hold: every event is a row, the last one included.
    pack = make_pack(event_count=10_000)

    html = render_evidence_html(pack)

    assert '<td class="number">10000</td>' in html
    assert html.count("<tr") >= 10_000


def test_csv_round_trips_every_event_and_the_summary(tmp_path: Path) -> None:
    pack = make_pack(event_count=4, jobs=[job_summary("billing"), job_summary("uploads")])
    pack["events"][0].update(job=None, destination=None, snapshot=None, run_id=None, signature=None)
    pack["events"][1]["detail"] = 'a "quoted", multi-line\ndetail'
    events_path = tmp_path / "evidence.csv"

    summary_path = write_evidence_csv(pack, events_path)

    assert summary_path == tmp_path / "evidence-summary.csv"
    with events_path.open(encoding="utf-8", newline="") as events_file:
        reader = csv.DictReader(events_file)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == EVENT_COLUMNS
    assert [int(row["seq"]) for row in rows] == [1, 2, 3, 4]
    for row, original in zip(rows, pack["events"], strict=True):
        assert json.loads(row["figures"]) == original["figures"]
        assert " " not in row["figures"]  # compact JSON
        assert (row["hash"], row["previous_hash"], row["detail"]) == (
            original["hash"],
            original["previous_hash"],
            original["detail"],
        )
    assert (rows[0]["job"], rows[0]["run_id"], rows[0]["signature"]) == ("", "", "")
    assert rows[1]["outcome"] == "failed"

    with summary_path.open(encoding="utf-8", newline="") as summary_file:
        reader = csv.DictReader(summary_file)
        summary = list(reader)
    assert tuple(reader.fieldnames or ()) == SUMMARY_COLUMNS
    assert [(row["record"], row["job"]) for row in summary] == [("job", "billing"), ("job", "uploads"), ("chain", "")]
    billing = summary[0]
    assert (billing["verifications_performed"], billing["verifications_passed"], billing["verifications_failed"]) == (
        "8",
        "7",
        "1",
    )
    assert float(billing["verifications_pass_rate"]) == 0.875
    assert (billing["backups_succeeded"], billing["rto_within_objective"], billing["breaches_opened"]) == (
        "23",
        "6",
        "1",
    )
    assert billing["chain_head_hash"] == ""  # chain columns only on the chain row
    chain = summary[-1]
    assert (chain["chain_head_seq"], chain["chain_head_hash"]) == ("4", pack["chain"]["head_hash"])
    assert (chain["chain_verified"], chain["chain_problems"], chain["period_until"]) == (
        "true",
        "",
        "2026-11-27T00:00:00+00:00",
    )


def test_csv_of_an_empty_pack_still_carries_the_chain_row(tmp_path: Path) -> None:
    pack = make_pack(event_count=0, jobs=[])
    pack["chain"].update(verified=False, problems=["event 7: hash mismatch", "event 9 missing"])

    summary_path = write_evidence_csv(pack, tmp_path / "events.csv")

    assert (tmp_path / "events.csv").read_text(encoding="utf-8").strip() == ",".join(EVENT_COLUMNS)
    with summary_path.open(encoding="utf-8", newline="") as summary_file:
        [chain] = list(csv.DictReader(summary_file))
    assert (chain["record"], chain["chain_head_hash"], chain["chain_verified"]) == ("chain", "", "false")
    assert chain["chain_problems"] == "event 7: hash mismatch; event 9 missing"


@pytest.mark.parametrize("change", [{"kind": "replica-report"}, {"format": 2}])
def test_an_unknown_pack_is_refused(change: dict[str, Any], tmp_path: Path) -> None:
    pack = {**copy.deepcopy(make_pack()), **change}

    with pytest.raises(ValueError, match="not an evidence pack of format 1"):
        render_evidence_html(pack)
    with pytest.raises(ValueError, match="not an evidence pack of format 1"):
        write_evidence_csv(pack, tmp_path / "events.csv")
    assert not (tmp_path / "events.csv").exists()


def test_figures_are_shown_compactly() -> None:
    figures = {"rto_seconds": 754.25, "bytes": 30_001_366.0, "checks": {"failed": 0, "passed": 5}, "level": "full"}

    assert compact_figures(figures) == 'bytes=30001366; checks={"failed":0,"passed":5}; level=full; rto_seconds=754.2'
    assert compact_figures({}) == ""


def test_the_recipe_on_the_page_recomputes_the_logs_hashes_from_the_csv(tmp_path: Path) -> None:
    # Events hashed by the verification log's own code: non-ASCII figures, an empty detail, a signed tail.
    events: list[dict[str, Any]] = []
    previous_hash, previous_signature = GENESIS, None
    for seq, signature in ((1, None), (2, "5e" * 64), (3, "6f" * 64)):
        document = event(seq, previous_hash, detail="", figures={"note": "Zürich ✓", "bytes": 10 * seq})
        document.update(key_id="k1" if signature else None, signature=signature)
        stored = {field.name: document[field.name] for field in dataclasses.fields(ChainedEvent)}
        stored["figures"] = canonical_figures(document["figures"])
        document["hash"] = event_hash(ChainedEvent(**stored), previous_signature)
        events.append(document)
        previous_hash, previous_signature = document["hash"], signature
    pack = make_pack(event_count=0)
    pack["events"] = events
    html = render_evidence_html(pack)
    write_evidence_csv(pack, tmp_path / "events.csv")

    assert 'separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()' in html.replace("&#34;", '"')
    with (tmp_path / "events.csv").open(encoding="utf-8", newline="") as events_file:
        rows = list(csv.DictReader(events_file))
    previous_signature = None
    for row in rows:
        value = {key: (cell or None) if key in NULLABLE_COLUMNS else cell for key, cell in row.items()}
        fields = [1, int(row["seq"]), *(value[k] for k in ("recorded_at", "kind", "job", "destination", "snapshot"))]
        fields += [
            int(row["run_id"]) if row["run_id"] else None,
            *(value[k] for k in ("actor", "outcome", "figures", "detail", "previous_hash")),
        ]
        fields += [previous_signature, value["key_id"]]
        encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        assert hashlib.sha256(encoded).hexdigest() == row["hash"]
        previous_signature = value["signature"]
