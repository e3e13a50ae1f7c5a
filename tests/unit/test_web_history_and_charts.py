"""The job page's RTO and RPO series (pure functions over catalog rows) and their inline SVG charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

from replica.catalog.models import Run, Snapshot
from replica.web.charts import time_series_chart
from replica.web.history import HistoryPoint, job_history, rpo_history, rto_history

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def run(run_id: int, kind: str, status: str, minutes: float, snapshot: str | None = None, **details: Any) -> Run:
    """Return a run of the primary that finished `minutes` after START."""
    finished = START + timedelta(minutes=minutes)
    return Run(
        id=run_id,
        job="billing",
        kind=kind,
        destination="primary",
        status=status,
        started_at=finished - timedelta(seconds=30),
        finished_at=finished,
        snapshot_id=snapshot,
        details=details,
    )


def snapshot(snapshot_id: str, minutes: float, pruned_minutes: float | None = None) -> Snapshot:
    pruned = START + timedelta(minutes=pruned_minutes) if pruned_minutes is not None else None
    return Snapshot(
        job="billing",
        destination="primary",
        snapshot_id=snapshot_id,
        taken_at=START + timedelta(minutes=minutes),
        pruned_at=pruned,
    )


def test_rto_history_is_each_measured_verification_oldest_first() -> None:
    # GIVEN verifications newest first (as the catalog returns them), one that never measured an RTO
    runs = [
        run(3, "verify", "failed", 90, "aa", rto_seconds=700.0),
        run(2, "verify", "failed", 60, "aa"),
        run(1, "verify", "succeeded", 30, "aa", rto_seconds=42.5),
    ]
    # WHEN the RTO series is built
    points = rto_history(runs)
    # THEN it holds the two measurements, oldest first, the failed one marked so
    assert [(point.run_id, point.seconds, point.passed) for point in points] == [(1, 42.5, True), (3, 700.0, False)]
    assert points[0].at == START + timedelta(minutes=30)


def test_rpo_history_ages_the_newest_verified_point_and_a_failed_verification_withdraws_it() -> None:
    # GIVEN a backup (point aa at 0), its verification at 10, a backup at 60 (point bb), bb verified at 70, then a
    # verification of bb that fails at 100 (bb is no longer a verified point: aa is again the newest), and a
    # backup before any verification, which has no RPO to show
    snapshots = [snapshot("aa", 0), snapshot("bb", 60)]
    runs = [
        run(0, "backup", "succeeded", -5, "zz"),
        run(1, "backup", "succeeded", 1, "aa"),
        run(2, "verify", "succeeded", 10, "aa"),
        run(3, "backup", "succeeded", 61, "bb"),
        run(4, "verify", "succeeded", 70, "bb"),
        run(5, "verify", "failed", 100, "bb"),
        run(6, "backup", "running", 120, None),
    ]
    # WHEN the RPO series is built
    points = rpo_history(runs, snapshots)
    # THEN each completed run after the first verification gives the age of the newest verified point then
    assert [(point.run_id, point.seconds / 60, point.passed) for point in points] == [
        (2, 10, True),
        (3, 61, True),
        (4, 10, True),
        (5, 100, False),
    ]


def test_rpo_history_forgets_a_pruned_point_and_prefers_the_canary_time() -> None:
    # GIVEN aa verified (its canary written at 2), then pruned at 50; bb verified at 40
    snapshots = [snapshot("aa", 0, pruned_minutes=50), snapshot("bb", 30)]
    canary = (START + timedelta(minutes=2)).isoformat()
    runs = [run(1, "verify", "succeeded", 10, "aa", canary_at=canary), run(2, "verify", "failed", 35, "cc")]
    runs += [run(3, "verify", "succeeded", 40, "bb"), run(4, "backup", "succeeded", 60, "dd")]
    # WHEN the RPO series is built
    points = rpo_history(runs, snapshots)
    # THEN the canary's time is the recovery point of aa, and bb the newest once verified
    assert [point.seconds / 60 for point in points] == [8, 33, 10, 30]


def test_job_history_document_carries_the_objectives_and_both_series() -> None:
    # GIVEN one verified backup
    runs = [run(1, "backup", "succeeded", 1, "aa"), run(2, "verify", "succeeded", 10, "aa", rto_seconds=12.0)]
    # WHEN the history is built and shown as JSON
    document = job_history(
        "billing", runs, [snapshot("aa", 0)], rto_objective_seconds=600, rpo_objective_seconds=3600
    ).document()
    # THEN it holds one RTO point and one RPO point with the objectives
    assert document["rto_objective_seconds"] == 600 and document["rpo_objective_seconds"] == 3600
    assert document["rto"] == [
        {
            "at": "2026-11-26T12:10:00+00:00",
            "seconds": 12.0,
            "run_id": 2,
            "kind": "verify",
            "destination": "primary",
            "passed": True,
        }
    ]
    assert [point["seconds"] for point in document["rpo"]] == [600.0]


def test_empty_history_has_no_points() -> None:
    history = job_history("billing", [], [], rto_objective_seconds=600, rpo_objective_seconds=3600)
    assert history.rto == [] and history.rpo == []


def point(minutes: float, seconds: float, passed: bool = True) -> HistoryPoint:
    return HistoryPoint(START + timedelta(minutes=minutes), seconds, int(minutes), "verify", "primary", passed)


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def test_chart_draws_each_point_a_line_through_them_and_the_objective() -> None:
    # GIVEN three measurements, one over the objective and one of a failed run
    points = [point(0, 100), point(30, 900), point(60, 50, passed=False)]
    # WHEN they are charted against an objective of 600 s
    svg = parse(time_series_chart(points, 600, title="RTO of <billing>"))
    # THEN it is valid SVG with a dot per point, left to right, the over and failed ones marked
    circles = svg.findall(f"{SVG}circle")
    assert [circle.get("class") for circle in circles] == ["point within", "point over", "point over"]
    xs = [float(circle.get("cx") or 0) for circle in circles]
    assert xs == sorted(xs) and xs[0] < xs[1] < xs[2]
    ys = [float(circle.get("cy") or 0) for circle in circles]
    # (SVG's y grows downwards: the 900 s point is highest)
    assert ys[1] < ys[0] < ys[2]
    assert svg.find(f"{SVG}polyline") is not None
    # AND the objective is a horizontal line between the 100 s and 900 s points, labelled
    objective = next(line for line in svg.findall(f"{SVG}line") if line.get("class") == "objective")
    objective_y = float(objective.get("y1") or 0)
    assert objective.get("y1") == objective.get("y2") and ys[1] < objective_y < ys[0]
    assert objective.get("data-seconds") == "600"
    labels = [text.text for text in svg.findall(f"{SVG}text")]
    assert "objective 10m00s" in labels
    # AND the title is escaped
    assert svg.findtext(f"{SVG}title") == "RTO of <billing>"


def test_chart_of_one_point_centres_it_without_a_line() -> None:
    svg = parse(time_series_chart([point(0, 30)], 600, title="RTO"))
    (circle,) = svg.findall(f"{SVG}circle")
    assert svg.find(f"{SVG}polyline") is None
    assert float(circle.get("cx") or 0) == (64 + 640 - 16) / 2
    assert svg.get("data-points") == "1"


def test_empty_chart_says_so_and_still_draws_the_objective() -> None:
    svg = parse(time_series_chart([], 3600, title="RPO"))
    assert svg.findall(f"{SVG}circle") == [] and svg.get("data-points") == "0"
    assert any(line.get("class") == "objective" for line in svg.findall(f"{SVG}line"))
    assert "no measurements yet" in [text.text for text in svg.findall(f"{SVG}text")]
