"""Drill plans (`drills/NAME.yaml`): the jobs that together make one service, restored together in an order to one
moment, with checks across their stores and the service's RTO objective.

Plans live in a folder of their own, not in `policies/`: a policy is the objectives and rules that many jobs
share, one job at a time; a plan names particular jobs and how they depend on each other, and is owned by the
service (its owners review each exercise). Keeping them apart keeps a policy change from touching a drill and the
other way round.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, model_validator

from replica.config.durations import Duration
from replica.config.models import NAME_PATTERN, ScheduleText, StrictModel
from replica.config.yaml_files import YamlDocument

RESERVED_PLAN_NAMES = ("list", "review")
# What each store kind can answer about its restored data (see StoreQueryConfig).
QUERY_FIELDS = {"sql": ("postgresql", "mariadb", "sqlite"), "keys": ("redis",), "files": ("directory",)}


_SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def select_problem(text: str) -> str | None:
    """Return what keeps `text` from being one plain query (a single SELECT or WITH statement), or None.

    A plan's SQL runs on a scratch copy in a read-only session, but a session's guard is not enough everywhere: a
    MariaDB DDL statement commits the read-only transaction and runs anyway. Only one statement that reads is taken.
    """
    if "/*!" in text or "/*M!" in text:
        # MariaDB and MySQL run these "comments" as SQL: `/*!CREATE TABLE ...*/ SELECT 1` would pass for a SELECT.
        return "must not hold /*! ... */ comments (MariaDB runs them)"
    bare = _SQL_COMMENTS.sub(" ", text).strip().rstrip(";").strip()
    if ";" in bare:
        return "must be one statement (no ';' between statements; a ';' inside a string is refused too)"
    first = bare.split(None, 1)[0].lower() if bare else ""
    if first not in ("select", "with"):
        return f"must be a SELECT (or WITH ... SELECT) query, not '{first or 'nothing'}'"
    return None


class StoreQueryConfig(StrictModel):
    """A set of values read from one job's restored data: exactly one of `sql` (database jobs: the first column of
    every row), `keys` (Redis jobs: the keys matching a pattern) or `files` (directory jobs: the paths, relative to
    the restored directory, of the files matching a glob). `extract`, a regular expression with one group, keeps
    that group of each value (values it does not match are dropped)."""

    job: str = Field(pattern=NAME_PATTERN, description="A job of the plan.", examples=["shop-db"])
    sql: str | None = Field(default=None, min_length=1, examples=["SELECT path FROM attachments"])
    keys: str | None = Field(default=None, min_length=1, examples=["session:*"])
    files: str | None = Field(default=None, min_length=1, examples=["**/*"])
    extract: str | None = Field(default=None, min_length=1, examples=["^session:([0-9]+)$"])

    @model_validator(mode="after")
    def _one_query(self) -> StoreQueryConfig:
        given = [name for name in QUERY_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of sql, keys, files (got {', '.join(given) or 'none'})")
        if self.sql is not None:
            problem = select_problem(self.sql)
            if problem is not None:
                raise ValueError(f"sql {problem}")
        if self.extract is not None:
            try:
                groups = re.compile(self.extract).groups
            except re.error as error:
                raise ValueError(f"extract is not a regular expression: {error}") from None
            if groups != 1:
                raise ValueError(f"extract must have exactly one group (it has {groups})")
        return self

    @property
    def kind(self) -> str:
        """Return which query this is: `sql`, `keys` or `files`."""
        return next(name for name in QUERY_FIELDS if getattr(self, name) is not None)

    @property
    def text(self) -> str:
        """Return the query itself (the SQL, the key pattern or the glob)."""
        value = getattr(self, self.kind)
        assert isinstance(value, str)
        return value


class CrossStoreCheckConfig(StrictModel):
    """Every value of `values` must be among the values of `exist_in` (every attachment path names a restored file,
    every session key names a restored user); the missing ones are listed in the exercise report."""

    name: str = Field(min_length=1, max_length=120, examples=["attachments exist"])
    values: StoreQueryConfig
    exist_in: StoreQueryConfig
    critical: bool = Field(default=True, description="A failed critical check fails the drill.")


class DrillPlanConfig(StrictModel):
    """A service's drill plan."""

    name: str = Field(pattern=NAME_PATTERN, description="Plan name; equals the file name without .yaml.")
    description: str = Field(default="", max_length=2000)
    jobs: list[str] = Field(
        min_length=1, description="The service's jobs, in the order they are restored.", examples=[["db", "uploads"]]
    )
    destination: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Drill from this destination of every job (default: each job's primary).",
    )
    checks: list[CrossStoreCheckConfig] = Field(default_factory=list)
    rto: Duration = Field(description="Service RTO objective: all stores restored and checked.", examples=["2h"])
    schedule: ScheduleText | None = Field(default=None, description="When the daemon drills.", examples=["@monthly"])
    owners: list[str] = Field(default_factory=list, description="Who reviews each exercise.")

    @model_validator(mode="after")
    def _jobs_once(self) -> DrillPlanConfig:
        repeated = sorted({job for job in self.jobs if self.jobs.count(job) > 1})
        if repeated:
            raise ValueError(f"jobs listed more than once: {', '.join(repeated)}")
        return self


@dataclass
class DrillPlans:
    """The valid plans, and every problem of the others (by plan name), as `file:line: ...` lines."""

    plans: dict[str, DrillPlanConfig] = field(default_factory=dict)
    broken: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def plan(self, name: str) -> DrillPlanConfig:
        """Return the valid plan `name`. Raises ConfigError when its file is broken, NotFound when there is none."""
        from replica.errors import ConfigError, NotFound

        if name in self.broken:
            raise ConfigError(self.broken[name])
        if name not in self.plans:
            raise NotFound(f"no drill plan named '{name}' (plans: {', '.join(sorted(self.plans)) or 'none'})")
        return self.plans[name]


def load_drill_plans(folder: Path, store_kinds: dict[str, str]) -> DrillPlans:
    """Return the plans in `folder` (a missing folder holds none), checked against the valid jobs (`store_kinds`:
    job name → store kind): every job a plan names exists, and every check queries a job of its plan with a query
    its store kind answers. Never raises for a bad file."""
    from replica.config.load import read_model_file

    plans = DrillPlans()
    if not folder.is_dir():
        return plans
    for name in sorted(entry for entry in os.listdir(folder) if entry.endswith((".yaml", ".yml"))):
        path = folder / name
        plan, problems, document = read_model_file(path, DrillPlanConfig)
        if plan is not None and document is not None:
            problems = _plan_problems(path, plan, store_kinds, document)
        if problems:
            plans.broken[path.stem] = problems
            plans.problems.extend(problems)
        elif plan is not None:
            plans.plans[plan.name] = plan
    return plans


def _plan_problems(path: Path, plan: DrillPlanConfig, store_kinds: dict[str, str], document: YamlDocument) -> list[str]:
    problems = []
    # A drill's runs and lock go by the plan's name (replica.actions.drill): a job of that name would share them,
    # and `replica drill list|review` would shadow the plan.
    if plan.name in store_kinds or plan.name in RESERVED_PLAN_NAMES:
        what = "a job's name" if plan.name in store_kinds else "a subcommand of 'replica drill'"
        problems.append(f"{path}:{document.line_of(('name',))}: at 'name': '{plan.name}' is {what}; choose another")
    problems += [
        f"{path}:{document.line_of(('jobs', index))}: at 'jobs.{index}': no valid job named '{job}'"
        for index, job in enumerate(plan.jobs)
        if job not in store_kinds
    ]
    for index, check in enumerate(plan.checks):
        for side in ("values", "exist_in"):
            query: StoreQueryConfig = getattr(check, side)
            where = f"{path}:{document.line_of(('checks', index, side, 'job'))}: at 'checks.{index}.{side}'"
            if query.job not in plan.jobs:
                problems.append(f"{where}: job '{query.job}' is not one of the plan's jobs")
            elif query.job in store_kinds and store_kinds[query.job] not in QUERY_FIELDS[query.kind]:
                problems.append(
                    f"{where}: a {store_kinds[query.job]} job cannot answer '{query.kind}' "
                    f"({query.kind} is for {', '.join(QUERY_FIELDS[query.kind])} jobs)"
                )
    return problems
