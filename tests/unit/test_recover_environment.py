"""Recovery environment files: a valid one loads with the line of each target; every problem names the file, line
and field: a job of the plan without a target, a job not in the plan, two jobs sharing a target, unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from replica.actions.recover import _live_place, _overlap, _place
from replica.config.drills import DrillPlanConfig
from replica.config.environments import load_environment
from replica.config.models import JobConfig
from replica.errors import ConfigError
from replica.stores.base import Target

PLAN = DrillPlanConfig(name="shop", jobs=["shop-db", "uploads"], rto="2h")  # type: ignore[arg-type]
VALID = """\
name: standby
description: Standby site
targets:
  shop-db:
    to: shop_standby
  uploads:
    to: /srv/standby/uploads
"""


def _load(tmp_path: Path, text: str, name: str = "standby") -> list[str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_environment(path, PLAN)
    return [problem.removeprefix(str(path)) for problem in raised.value.problems]


def test_a_valid_environment_loads_with_the_line_of_each_target(tmp_path: Path) -> None:
    # GIVEN an environment naming a target for each job of the plan
    path = tmp_path / "standby.yaml"
    path.write_text(VALID)
    # WHEN it is loaded against the plan
    environment = load_environment(path, PLAN)
    # THEN every target is there, and a later problem with a target points at its line
    assert {job: target.to for job, target in environment.config.targets.items()} == {
        "shop-db": "shop_standby",
        "uploads": "/srv/standby/uploads",
    }
    assert environment.problem("uploads", "is the live directory") == (
        f"{path}:7: at 'targets.uploads.to': is the live directory"
    )


@pytest.mark.parametrize(
    ("replace", "by", "problems"),
    [
        (
            "  uploads:\n    to: /srv/standby/uploads\n",
            "",
            [":3: at 'targets': no target for job 'uploads' of plan 'shop'"],
        ),
        (
            "  uploads:\n",
            "  sessions:\n    to: /srv/standby/sessions.rdb\n  uploads:\n",
            [":6: at 'targets.sessions': job 'sessions' is not in plan 'shop' (its jobs: shop-db, uploads)"],
        ),
        (
            "to: /srv/standby/uploads",
            "to: shop_standby",
            [
                ":5: at 'targets.shop-db.to': target 'shop_standby' is given to more than one job",
                ":7: at 'targets.uploads.to': target 'shop_standby' is given to more than one job",
            ],
        ),
        (
            "    to: shop_standby\n",
            "    to: shop_standby\n    host: standby.internal\n",
            [":6: at 'targets.shop-db.host': Extra inputs are not permitted"],
        ),
        (
            "    to: shop_standby\n",
            "    to: ''\n",
            [":5: at 'targets.shop-db.to': String should have at least 1 character"],
        ),
        ("name: standby", "name: other", [":1: at 'name': must equal the file name 'standby', got 'other'"]),
    ],
)
def test_every_problem_names_file_line_and_field(tmp_path: Path, replace: str, by: str, problems: list[str]) -> None:
    # GIVEN an environment file with one mistake
    text = VALID.replace(replace, by)
    assert text != VALID
    # WHEN it is loaded against the plan
    # THEN the load fails with exactly that problem, placed at its line
    assert _load(tmp_path, text) == problems


def _job(name: str, store: dict[str, object]) -> JobConfig:
    return JobConfig.model_validate(
        {
            "name": name,
            "store": store,
            "destinations": [{"name": "primary", "bucket": "backups"}, {"name": "copy", "bucket": "copies"}],
            "policy": "p",
        }
    )


def test_targets_that_hold_one_another_or_live_data_overlap(tmp_path: Path) -> None:
    # GIVEN a directory job, a SQLite job, two PostgreSQL jobs on two hosts (one on another port), a MariaDB job
    files = _job("files", {"kind": "directory", "path": str(tmp_path / "live-files")})
    sqlite = _job("app", {"kind": "sqlite", "path": str(tmp_path / "live.sqlite")})
    here = _job("db-here", {"kind": "postgresql", "host": "10.0.0.1", "database": "shop"})
    there = _job("db-there", {"kind": "postgresql", "host": "db2.internal", "database": "shop"})
    elsewhere = _job("db-elsewhere", {"kind": "postgresql", "host": "10.0.0.3", "port": 6432, "database": "shop"})
    maria = _job("maria", {"kind": "mariadb", "host": "10.0.0.1", "database": "Shop"})
    folder = _place(files, Target("directory", path=tmp_path / "dr"))
    file_inside = _place(sqlite, Target("sqlite file", path=tmp_path / "dr" / "app.sqlite"))
    sibling = _place(sqlite, Target("sqlite file", path=tmp_path / "dr-app.sqlite"))
    restored = Target("db", database="restored")

    # THEN a folder and a file inside it overlap, siblings do not
    assert _overlap(folder, file_inside) and _overlap(file_inside, folder) and _overlap(folder, folder)
    assert not _overlap(folder, sibling)
    # AND one database name on one port is one database, whatever the host is called (db2.internal may be 10.0.0.1),
    # on another port it is another; MariaDB's names are folded to lower case, as it stores them
    assert _overlap(_place(here, restored), _place(there, restored))
    assert not _overlap(_place(here, restored), _place(elsewhere, restored))
    assert _overlap(_place(maria, Target("db", database="SHOP")), _live_place(maria) or ())
    assert _overlap(_place(here, Target("db", database="shop")), _live_place(there) or ())
    assert not _overlap(_place(here, Target("db", database="shop")), _live_place(maria) or ())
    # AND a target inside another job's live folder overlaps that live data
    inside_live = _place(sqlite, Target("sqlite file", path=tmp_path / "live-files" / "copy.sqlite"))
    assert _overlap(inside_live, _live_place(files) or ())
