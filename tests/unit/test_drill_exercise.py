"""Pure pieces of drills: cross-store set comparison, `extract`, the exercise report and its review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from replica.actions.drill import DrillOutcome, StoreOutcome
from replica.catalog.records import CheckOutcome
from replica.config.drills import DrillPlanConfig, load_drill_plans
from replica.policy.cross_store import MISSING_LISTED, compare_values, extract_values
from replica.report.exercise import add_review, build_exercise, render_html, render_markdown

CUT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_every_value_must_exist_and_the_missing_ones_are_sorted_and_capped() -> None:
    # GIVEN values of which 150 are missing from the other store
    values = {f"file-{n:03d}" for n in range(200)}
    exist_in = {f"file-{n:03d}" for n in range(50)} | {"unrelated"}
    # WHEN compared
    result = compare_values("attachments", True, "db", values, "files", exist_in)
    # THEN it fails, listing the first MISSING_LISTED missing names in order and counting all
    assert not result.passed
    assert result.missing_count == 150 and len(result.missing) == MISSING_LISTED
    assert result.missing[0] == "file-050" and result.missing == sorted(result.missing)
    assert "150 missing of 200 values of 'db' against 51 of 'files'" in result.detail
    assert "(and 50 more)" in result.detail
    # AND a subset passes; extra values in the other store do not matter
    assert compare_values("attachments", True, "db", {"file-001"}, "files", exist_in).passed


def test_extract_keeps_the_group_and_drops_values_it_does_not_match() -> None:
    keys = ["e2e:session:12", "e2e:session:7", "e2e:session:abc", "e2e:cart:3"]
    assert extract_values(keys, r"session:([0-9]+)$") == {"12", "7"}
    assert extract_values(keys, None) == set(keys)


def _outcome(missing: bool) -> DrillOutcome:
    checks = [CheckOutcome("restore", True, True, "restored in 1.2s"), CheckOutcome("fingerprint", True, True, "ok")]
    outcome = DrillOutcome("shop", 42, CUT, CUT + timedelta(minutes=1), 600.0, service_seconds=12.5)
    outcome.stores = [
        StoreOutcome("shop-db", "postgresql database 'shop'", "primary", "abc123", CUT, True, 300.0, checks, 4.0),
        StoreOutcome("uploads", "directory /srv/uploads", "primary", "def456", CUT, False, 300.0, checks, 2.0),
    ]
    values = {"a.pdf", "b.pdf"}
    outcome.cross_checks = [
        compare_values("attachments", True, "shop-db", values, "uploads", {"a.pdf"} if missing else values)
    ]
    return outcome


def test_the_exercise_report_names_timings_checks_and_missing_values_and_keeps_reviews() -> None:
    plan = DrillPlanConfig.model_validate({"name": "shop", "jobs": ["shop-db", "uploads"], "rto": "10m"})
    # GIVEN a drill whose cross-store check found b.pdf missing
    body = build_exercise(plan, _outcome(missing=True), CUT)
    # THEN the body says it failed and why
    assert body["passed"] is False and body["cross_checks"][0]["missing"] == ["b.pdf"]
    assert body["service"] == {"seconds": 12.5, "objective_seconds": 600.0, "met": True}
    markdown, html = render_markdown(body), render_html(body)
    for text in (markdown, html):
        assert "b.pdf" in text and "abc123" in text and "Not reviewed yet" in text
    assert "| shop-db | primary | abc123 |" in markdown and "4.0s" in markdown
    # WHEN reviewed twice
    reviewed = add_review(body, "ada@host", "fix the <uploads> sync", CUT)
    reviewed = add_review(reviewed, "bob@host", "done", CUT + timedelta(days=1))
    # THEN both notes are kept in order, escaped in HTML
    assert [entry["reviewer"] for entry in reviewed["review"]] == ["ada@host", "bob@host"]
    assert "fix the &lt;uploads&gt; sync" in render_html(reviewed)
    assert "Not reviewed yet" not in render_markdown(reviewed)
    # AND a drill with nothing missing passes
    assert build_exercise(plan, _outcome(missing=False), CUT)["passed"] is True


def test_a_plan_may_not_take_a_job_s_name_or_a_subcommand_s(tmp_path: Path) -> None:
    for name in ("uploads", "list"):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\njobs: [uploads]\nrto: 1h\n")
    plans = load_drill_plans(tmp_path, {"uploads": "directory"})
    assert plans.plans == {}
    assert any("'uploads' is a job's name" in problem for problem in plans.problems)
    assert any("'list' is a subcommand of 'replica drill'" in problem for problem in plans.problems)
