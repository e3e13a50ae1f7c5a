"""Loading the jobs and policies folders. A broken file disables only itself (and jobs that need it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from replica.config.models import JobConfig, PolicyConfig
from replica.config.notify import NOTIFIER_KIND_NAMES
from replica.config.yaml_files import read_yaml_mapping
from replica.errors import ConfigError, UsageError

Model = TypeVar("Model", bound=BaseModel)
# Union members of a discriminated union show up in error locations; users never wrote them.
_DISCRIMINATOR_TAGS = {"directory", "sqlite", "postgresql", "mariadb", "redis", *NOTIFIER_KIND_NAMES}


@dataclass
class Configuration:
    """Every valid job and policy, plus one line for each problem found (file: at 'path': message)."""

    jobs: dict[str, JobConfig] = field(default_factory=dict)
    policies: dict[str, PolicyConfig] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    broken_jobs: dict[str, list[str]] = field(default_factory=dict)

    def job(self, name: str) -> JobConfig:
        """Return the valid job `name`.

        Raises ConfigError when its file (or its policy) is broken, UsageError when there is no such job.
        """
        if name in self.broken_jobs:
            raise ConfigError(self.broken_jobs[name])
        if name not in self.jobs:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise UsageError(f"no job named '{name}' (known jobs: {known})")
        return self.jobs[name]

    def policy_of(self, job: JobConfig) -> PolicyConfig:
        """Return the policy a valid job names (always present: load_configuration checked it)."""
        return self.policies[job.policy]


def format_location(location: tuple[int | str, ...]) -> str:
    """Return a pydantic error location as a path users can find: `destinations[1].bucket`."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in _DISCRIMINATOR_TAGS:
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def validate_file(path: Path, model: type[Model]) -> tuple[Model | None, list[str]]:
    """Return the model read from `path` and no problems, or None and every problem as `file: at 'path': msg`."""
    try:
        document = read_yaml_mapping(path)
    except ValueError as error:
        return None, [f"{path}: {error}"]
    try:
        instance = model.model_validate(document)
    except ValidationError as error:
        return None, [
            f"{path}: at '{format_location(problem['loc'])}': {problem['msg'].removeprefix('Value error, ')}"
            for problem in error.errors()
        ]
    name = getattr(instance, "name", None)
    if name != path.stem:
        return None, [f"{path}: at 'name': must equal the file name '{path.stem}', got '{name}'"]
    return instance, []


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def load_configuration(jobs_dir: Path, policies_dir: Path) -> Configuration:
    """Return every job and policy found, with every problem listed (never raises for bad files)."""
    configuration = Configuration()
    if not jobs_dir.is_dir():
        configuration.problems.append(f"{jobs_dir}: jobs folder does not exist")
    if not policies_dir.is_dir():
        configuration.problems.append(f"{policies_dir}: policies folder does not exist")
    for path in _yaml_files(policies_dir):
        policy, problems = validate_file(path, PolicyConfig)
        configuration.problems.extend(problems)
        if policy is not None:
            configuration.policies[policy.name] = policy
    for path in _yaml_files(jobs_dir):
        job, problems = validate_file(path, JobConfig)
        if job is not None and job.policy not in configuration.policies:
            problems = [f"{path}: at 'policy': no valid policy named '{job.policy}' in {policies_dir}"]
        if problems:
            configuration.problems.extend(problems)
            configuration.broken_jobs[path.stem] = problems
        elif job is not None:
            configuration.jobs[job.name] = job
    return configuration


def raise_if_problems(configuration: Configuration) -> None:
    """Raise ConfigError listing every problem, if there is any."""
    if configuration.problems:
        raise ConfigError(configuration.problems)
