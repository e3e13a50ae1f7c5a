"""Recovery environments (`replica recover PLAN --to FILE`): where each job of a drill plan is restored for real
when the backup environment is activated.

An environment file names one target per job of the plan, in the form `replica restore --to` takes for the job's
store kind: a directory path, an SQLite file, a Redis RDB file, a database name. Database targets are created on
the job's own server: no store restores to another server (`restore --to` never could), so an environment has no
host or port to give; a `host:` key is an error, not silently ignored.

An environment file belongs to a service's recovery runbook, not to the configuration folders: it is passed by
path and read when `recover` runs, checked against the plan it is used with.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from replica.config.drills import DrillPlanConfig
from replica.config.models import NAME_PATTERN, StrictModel
from replica.errors import ConfigError


class JobTargetConfig(StrictModel):
    """Where one job's data is restored."""

    to: str = Field(
        min_length=1,
        description="The restore target, as `replica restore --to` takes it for the job's store kind: a directory "
        "path, an SQLite file, a Redis RDB file or a database name on the job's own server.",
        examples=["/srv/dr/uploads", "shop_dr"],
    )


class EnvironmentConfig(StrictModel):
    """A recovery environment: a target for every job of a plan."""

    name: str = Field(pattern=NAME_PATTERN, description="Environment name; equals the file name without .yaml.")
    description: str = Field(default="", max_length=2000, examples=["Standby site in Frankfurt"])
    targets: dict[str, JobTargetConfig] = Field(
        min_length=1,
        description="Job name → its target; exactly the jobs of the plan the environment is used with.",
        examples=[{"shop-db": {"to": "shop_dr"}, "shop-uploads": {"to": "/srv/dr/uploads"}}],
    )


@dataclass(frozen=True)
class EnvironmentFile:
    """A valid environment, the file it was read from and the line of each job's target (for later problems)."""

    path: Path
    config: EnvironmentConfig
    target_lines: dict[str, int]

    def problem(self, job: str, message: str) -> str:
        """Return a problem with `job`'s target as `file:line: at 'targets.JOB.to': message`."""
        return f"{self.path}:{self.target_lines[job]}: at 'targets.{job}.to': {message}"


def load_environment(path: Path, plan: DrillPlanConfig) -> EnvironmentFile:
    """Return the environment in `path`, checked against `plan`: every job of the plan has a target, the file names
    no other job, and no two jobs share a target.

    Raises ConfigError with every problem as `file:line: at 'field': ...`.
    """
    from replica.config.load import read_model_file

    environment, problems, document = read_model_file(path, EnvironmentConfig)
    if environment is None or document is None:
        raise ConfigError(problems)
    problems = [
        f"{path}:{document.line_of(('targets',))}: at 'targets': no target for job '{job}' of plan '{plan.name}'"
        for job in plan.jobs
        if job not in environment.targets
    ]
    problems += [
        f"{path}:{document.line_of(('targets', job))}: at 'targets.{job}': job '{job}' is not in plan '{plan.name}' "
        f"(its jobs: {', '.join(plan.jobs)})"
        for job in environment.targets
        if job not in plan.jobs
    ]
    shared = Counter(target.to for target in environment.targets.values())
    problems += [
        f"{path}:{document.line_of(('targets', job, 'to'))}: at 'targets.{job}.to': target '{target.to}' is "
        "given to more than one job"
        for job, target in environment.targets.items()
        if shared[target.to] > 1
    ]
    if problems:
        raise ConfigError(problems)
    lines = {job: document.line_of(("targets", job, "to")) for job in environment.targets}
    return EnvironmentFile(path, environment, lines)
