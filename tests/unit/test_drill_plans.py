"""Drill plan files: a valid plan loads; every problem names the file, line and field, including jobs the plan
names that do not exist and checks a store kind cannot answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from replica.config.drills import load_drill_plans, select_problem
from replica.errors import ConfigError, NotFound

REPOSITORY = Path(__file__).resolve().parents[2]
KINDS = {"shop-db": "postgresql", "sessions": "redis", "uploads": "directory"}
VALID = """\
name: shop
jobs: [shop-db, sessions, uploads]
checks:
  - name: attachments exist
    values: {job: shop-db, sql: "SELECT path FROM attachments"}
    exist_in: {job: uploads, files: "**/*"}
  - name: sessions name users
    values: {job: sessions, keys: "session:*", extract: "^session:([0-9]+)$"}
    exist_in: {job: shop-db, sql: "SELECT id::text FROM users"}
rto: 2h
schedule: "@monthly"
"""


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)


def test_a_valid_plan_loads_with_its_order_checks_and_objective(tmp_path: Path) -> None:
    _write(tmp_path, "shop", VALID)
    plans = load_drill_plans(tmp_path, KINDS)
    plan = plans.plan("shop")
    assert plans.problems == []
    assert plan.jobs == ["shop-db", "sessions", "uploads"]
    assert [(c.values.kind, c.values.text, c.exist_in.kind) for c in plan.checks] == [
        ("sql", "SELECT path FROM attachments", "files"),
        ("keys", "session:*", "sql"),
    ]
    assert plan.rto.total_seconds() == 7200


@pytest.mark.parametrize(
    ("replace", "by", "problem"),
    [
        (
            "jobs: [shop-db, sessions, uploads]",
            "jobs: [shop-db, nope, uploads]",
            ":2: at 'jobs.1': no valid job named 'nope'",
        ),
        ("jobs: [shop-db, sessions, uploads]", "jobs: [shop-db, shop-db]", "jobs listed more than once: shop-db"),
        (
            'exist_in: {job: uploads, files: "**/*"}',
            'exist_in: {job: uploads, sql: "SELECT 1"}',
            ":6: at 'checks.0.exist_in': a directory job cannot answer 'sql'",
        ),
        (
            'exist_in: {job: uploads, files: "**/*"}',
            'exist_in: {job: other, files: "x"}',
            "job 'other' is not one of the plan's jobs",
        ),
        (
            'keys: "session:*", extract',
            'keys: "session:*", sql: "x", extract',
            "give exactly one of sql, keys, files (got sql, keys)",
        ),
        (
            'extract: "^session:([0-9]+)$"',
            'extract: "^session:[0-9]+$"',
            "extract must have exactly one group (it has 0)",
        ),
        ("SELECT path FROM attachments", "DROP TABLE attachments", "sql must be a SELECT (or WITH ... SELECT) query"),
        ("SELECT path FROM attachments", "SELECT path FROM attachments; DROP TABLE users", "sql must be one statement"),
        ("SELECT path FROM attachments", "/* hi */ COMMIT", "not 'commit'"),
        ("SELECT path FROM attachments", "/*!DROP TABLE attachments*/ SELECT 1", "must not hold /*! ... */ comments"),
        ("rto: 2h", "rto: soon", ":10: at 'rto'"),
        ("rto: 2h", "rto: 2h\ncolour: blue", "at 'colour': Extra inputs are not permitted"),
    ],
)
def test_every_problem_names_the_file_line_and_field(tmp_path: Path, replace: str, by: str, problem: str) -> None:
    # GIVEN a plan with one mistake
    assert replace in VALID
    _write(tmp_path, "shop", VALID.replace(replace, by))

    # WHEN the plans are loaded
    plans = load_drill_plans(tmp_path, KINDS)

    # THEN the plan is not valid, and its problem names the file (and the line and field where it has one)
    assert "shop" not in plans.plans
    assert any(line.startswith(str(tmp_path / "shop.yaml")) and problem in line for line in plans.problems), (
        plans.problems
    )
    with pytest.raises(ConfigError):
        plans.plan("shop")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT path FROM attachments;",
        "  -- the paths\n  select path from attachments",
        "WITH p AS (SELECT 1) SELECT * FROM p",
    ],
)
def test_a_single_reading_query_is_taken(query: str) -> None:
    assert select_problem(query) is None


def test_an_unknown_plan_and_a_missing_folder(tmp_path: Path) -> None:
    assert load_drill_plans(tmp_path / "none", KINDS).plans == {}
    with pytest.raises(NotFound, match="no drill plan named 'x'"):
        load_drill_plans(tmp_path, KINDS).plan("x")


def test_the_example_plan_matches_the_example_jobs() -> None:
    kinds = {"example-postgresql": "postgresql", "example-redis": "redis", "example-directory": "directory"}
    plans = load_drill_plans(REPOSITORY / "drills", kinds)
    assert plans.problems == [] and list(plans.plans) == ["example-shop"]
