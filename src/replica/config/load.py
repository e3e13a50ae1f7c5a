"""Loading the jobs and policies folders. A broken file disables only itself (and jobs that need it).

With thousands of job files, reading and validating every one costs seconds, while `replica status` needs only an
outline of each job (name, store kind, policy, destinations). Given a cache file, the outcome of each job file
(its outline, or its problems) is kept keyed by the file's identity and change times (`stat`: device, inode, size,
modification and change times in nanoseconds): a file written since gets a new change time, which no one can set
back, and is read again. A file changed less than `RACY_SECONDS` before it was read is not cached (two writes in
one tick of the file system's clock would look alike). The full model of a job is then read when first looked up.
The cache holds no job file content (a job file may hold a dead-man URL, a secret), and is keyed by the code that
validates, so a new release never trusts an older one's verdicts.

Every problem names its file and line (`jobs/billing.yaml:12: at 'store.port': ...`): pydantic's error location is
walked down the file's YAML node tree. What a job must agree on with its policy (the policy exists; the job's own
backup schedule leaves no gap longer than the policy's RPO) is checked at every load, cached or not, from the few
facts of the job file that the cache keeps with its outline (`PolicyUse`): a policy can change on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from replica.config.durations import spell_duration
from replica.config.models import DestinationConfig, JobConfig, PolicyConfig
from replica.config.notify import NOTIFIER_KIND_NAMES
from replica.config.yaml_files import UnreadableFile, YamlDocument, YamlProblem, read_yaml_document, yaml_version
from replica.errors import ConfigError, NotFound
from replica.files import write_atomically
from replica.schedule.specs import longest_gap, parse_schedule

Model = TypeVar("Model", bound=BaseModel)
# Union members of a discriminated union show up in error locations; users never wrote them.
_DISCRIMINATOR_TAGS = {"directory", "sqlite", "postgresql", "mariadb", "redis", *NOTIFIER_KIND_NAMES}


CACHE_FORMAT = 2
RACY_SECONDS = 2.0
# The modules whose code decides whether a file is valid and what it means: a change to any of them drops the cache.
_VALIDATING_MODULES = (
    "replica.config.models",
    "replica.config.notify",
    "replica.config.durations",
    "replica.schedule.specs",
    "replica.config.load",
    "replica.config.yaml_files",
)


@dataclass(frozen=True)
class JobOutline:
    """What `replica status` shows of a valid job: its name, store kind, policy and destinations (primary first)."""

    name: str
    store_kind: str
    policy: str
    destinations: tuple[str, ...]
    # `repository_key` of each destination, in the same order: what finds two jobs sharing a repository.
    repositories: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, job: JobConfig) -> JobOutline:
        """Return the outline of a job."""
        return cls(
            job.name,
            job.store.kind,
            job.policy,
            tuple(destination.name for destination in job.destinations),
            tuple(repository_key(destination) for destination in job.destinations),
        )


def repository_key(destination: DestinationConfig) -> str:
    """Return a digest naming a destination's restic repository: its endpoint (none: the settings' one), bucket and
    prefix as restic joins them (`a//b/` and `a/b` are one repository). A digest, since the cache holds no file
    content."""
    prefix = posixpath.normpath(destination.prefix) if destination.prefix else ""
    location = f"{(destination.endpoint_url or '').lower()}\n{destination.bucket}\n{'' if prefix == '.' else prefix}"
    return hashlib.sha256(location.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PolicySource:
    """Where a valid policy was read: its file and the line of its `rpo` (named by problems of its jobs)."""

    path: str
    rpo_line: int


@dataclass(frozen=True)
class PolicyUse:
    """What a valid job file must agree on with its policy, checked at every load: the policy it names (and the
    line that names it) and the job's own backup schedule with its line and longest gap between backups in seconds
    (`backup` None: the policy's schedule applies, or `off`; `gap_seconds` None: it fires less than twice in four
    years). The gap is worked out once, when the file is read: a cached load compares numbers, and never pays for
    parsing a cron line (APScheduler's import alone is ~60 ms)."""

    policy: str
    policy_line: int
    backup: str | None = None
    backup_line: int = 0
    gap_seconds: float | None = None

    @classmethod
    def of(cls, job: JobConfig, document: YamlDocument) -> PolicyUse:
        """Return what `job`, read from `document`, must agree on with its policy."""
        policy_line = document.line_of(("policy",))
        text = job.schedule.backup
        schedule = parse_schedule(text, None) if text is not None else None
        if schedule is None:  # unset, or `off`: backups by hand or by another scheduler are not checked
            return cls(job.policy, policy_line)
        gap = longest_gap(schedule)
        return cls(
            job.policy,
            policy_line,
            text,
            document.line_of(("schedule", "backup")),
            gap.total_seconds() if gap is not None else None,
        )

    def to_json(self) -> list[Any]:
        """Return the form kept in the cache."""
        return [self.policy_line, self.backup, self.backup_line, self.gap_seconds]

    @classmethod
    def from_json(cls, value: object, policy: str) -> PolicyUse | None:
        """Return the use kept in the cache, or None when the entry is not one."""
        if not isinstance(value, list) or len(value) != 4:
            return None
        policy_line, backup, backup_line, gap_seconds = value
        if not isinstance(policy_line, int) or not isinstance(backup_line, int):
            return None
        if backup is not None and not isinstance(backup, str):
            return None
        if gap_seconds is not None and not isinstance(gap_seconds, int | float):
            return None
        return cls(policy, policy_line, backup, backup_line, gap_seconds)


def policy_problems(
    path: str,
    use: PolicyUse,
    policies: Mapping[str, PolicyConfig],
    sources: Mapping[str, PolicySource],
    policies_dir: Path,
) -> list[str]:
    """Return the problems of a valid job file with its policy: a policy that is missing or broken, or a backup
    schedule of the job's own whose longest gap is longer than the policy's RPO (which it could then never meet)."""
    policy = policies.get(use.policy)
    if policy is None:
        return [f"{path}:{use.policy_line}: at 'policy': no valid policy named '{use.policy}' in {policies_dir}"]
    if use.backup is None:
        return []
    gap = timedelta(seconds=use.gap_seconds) if use.gap_seconds is not None else None
    if gap is not None and gap <= policy.rpo:
        return []
    source = sources.get(use.policy)
    where = f" ({source.path}:{source.rpo_line})" if source is not None else ""
    return [
        f"{path}:{use.backup_line}: at 'schedule.backup': {_too_far_apart(use.backup, gap)}, longer than the rpo "
        f"{spell_duration(policy.rpo)} of policy '{policy.name}'{where}"
    ]


def _too_far_apart(text: str, gap: timedelta | None) -> str:
    if gap is None:
        return f"backups on '{text}' happen less than twice in four years (or never)"
    return f"backups on '{text}' can be {spell_duration(gap)} apart"


def _own_schedule_problems(path: Path, policy: PolicyConfig, document: YamlDocument) -> list[str]:
    """Return the problem of a policy whose own backup schedule leaves gaps longer than its RPO."""
    text = policy.schedule.backup
    schedule = parse_schedule(text, None) if text is not None else None
    if text is None or schedule is None:
        return []
    gap = longest_gap(schedule)
    if gap is not None and gap <= policy.rpo:
        return []
    return [
        f"{path}:{document.line_of(('rpo',))}: at 'rpo': the rpo {spell_duration(policy.rpo)} is shorter than the "
        f"schedule of this policy allows: {_too_far_apart(text, gap)} (schedule.backup, line "
        f"{document.line_of(('schedule', 'backup'))})"
    ]


class ValidJobs(Mapping[str, JobConfig]):
    """The valid jobs by name, in file order. A job whose file the cache vouched for is read when first looked up.

    Looking one up raises ConfigError when its file was changed into a broken one since it was found valid.
    """

    def __init__(
        self, policies: Mapping[str, PolicyConfig], policies_dir: Path, sources: Mapping[str, PolicySource]
    ) -> None:
        self._paths: dict[str, str] = {}
        self._models: dict[str, JobConfig] = {}
        self._policies = policies
        self._policies_dir = policies_dir
        self._sources = sources

    def add(self, name: str, path: str, job: JobConfig | None) -> None:
        """Add a valid job (its model when already read)."""
        self._paths[name] = path
        if job is not None:
            self._models[name] = job

    def __getitem__(self, name: str) -> JobConfig:
        job = self._models.get(name)
        if job is None:
            job, problems = validate_job_file(
                Path(self._paths[name]), self._policies, self._policies_dir, self._sources
            )
            if job is None:
                raise ConfigError(problems)
            self._models[name] = job
        return job

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, name: object) -> bool:
        return name in self._paths


@dataclass
class Configuration:
    """Every valid job and policy, plus one line for each problem found (file:line: at 'path': message)."""

    jobs: Mapping[str, JobConfig] = field(default_factory=dict)
    outlines: dict[str, JobOutline] = field(default_factory=dict)
    policies: dict[str, PolicyConfig] = field(default_factory=dict)
    policy_sources: dict[str, PolicySource] = field(default_factory=dict)
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
            raise NotFound(f"no job named '{name}' (known jobs: {known})")
        return self.jobs[name]

    def policy_of(self, job: JobConfig) -> PolicyConfig:
        """Return the policy a valid job names (always present: load_configuration checked it)."""
        return self.policies[job.policy]

    def sharing_repositories(self, name: str) -> list[str]:
        """Return the other valid jobs that have a destination in one of the repositories of job `name`, sorted
        (from the outlines: no job file is read)."""
        outline = self.outlines.get(name)
        if outline is None:
            return []
        mine = set(outline.repositories)
        return sorted(
            other for other, theirs in self.outlines.items() if other != name and mine.intersection(theirs.repositories)
        )


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
    """Return the model read from `path` and no problems, or None and every problem as `file:line: at 'path': msg`."""
    instance, problems, _, _ = _validate_file_content(path, model)
    return instance, problems


def read_model_file(path: Path, model: type[Model]) -> tuple[Model | None, list[str], YamlDocument | None]:
    """Return what `validate_file` returns and the document read (for the lines of checks made after the model's,
    such as names that must exist elsewhere); None when the file could not be read."""
    instance, problems, _, document = _validate_file_content(path, model)
    return instance, problems, document


def _validate_file_content(path: Path, model: type[Model]) -> tuple[Model | None, list[str], bool, YamlDocument | None]:
    """Return what `validate_file` returns, whether that verdict comes from the file's content (False when the
    file could not be read: that says nothing lasting about the file, and must never be cached), and the document
    read (None when it could not be)."""
    try:
        document = read_yaml_document(path)
    except UnreadableFile as error:
        return None, [f"{path}: {error}"], False, None
    except YamlProblem as error:
        return None, [f"{path}:{error.line}: {error.reason}"], True, None
    try:
        instance = model.model_validate(document.mapping)
    except ValidationError as error:
        return (
            None,
            [
                f"{path}:{document.line_of(problem['loc'], _DISCRIMINATOR_TAGS)}: "
                f"at '{format_location(problem['loc'])}': {problem['msg'].removeprefix('Value error, ')}"
                for problem in error.errors()
            ],
            True,
            document,
        )
    name = getattr(instance, "name", None)
    if name != path.stem:
        line = document.line_of(("name",))
        return None, [f"{path}:{line}: at 'name': must equal the file name '{path.stem}', got '{name}'"], True, document
    return instance, [], True, document


def read_policy_file(path: Path) -> tuple[PolicyConfig | None, PolicySource | None, list[str]]:
    """Return the policy read from `path` and where it was read, or None, None and every problem."""
    policy, problems, _, document = _validate_file_content(path, PolicyConfig)
    if policy is None or document is None:
        return None, None, problems
    problems = _own_schedule_problems(path, policy, document)
    if problems:
        return None, None, problems
    return policy, PolicySource(str(path), document.line_of(("rpo",))), []


def validate_job_file(
    path: Path,
    policies: Mapping[str, PolicyConfig],
    policies_dir: Path,
    sources: Mapping[str, PolicySource] | None = None,
) -> tuple[JobConfig | None, list[str]]:
    """Return the job read from `path` and no problems, or None and every problem (its policy must be valid, and
    its own backup schedule must meet the policy's RPO)."""
    job, problems, _, document = _validate_file_content(path, JobConfig)
    if job is None or document is None:
        return None, problems
    problems = policy_problems(str(path), PolicyUse.of(job, document), policies, sources or {}, policies_dir)
    return (None, problems) if problems else (job, [])


def _yaml_names(folder: Path) -> list[str]:
    """Return the names of the *.yaml and *.yml entries of `folder`, sorted (one read of the folder)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if entry.name.endswith((".yaml", ".yml")))
    except OSError:
        return []  # a missing folder is reported by the caller; an unreadable one finds nothing, as glob did


def load_configuration(jobs_dir: Path, policies_dir: Path, cache_file: Path | None = None) -> Configuration:
    """Return every job and policy found, with every problem listed (never raises for bad files).

    With `cache_file`, job files unchanged since an earlier load are not read again (see the module docstring).
    """
    configuration = Configuration()
    if not jobs_dir.is_dir():
        configuration.problems.append(f"{jobs_dir}: jobs folder does not exist")
    if not policies_dir.is_dir():
        configuration.problems.append(f"{policies_dir}: policies folder does not exist")
    for path in (policies_dir / name for name in _yaml_names(policies_dir)):
        policy, source, problems = read_policy_file(path)
        configuration.problems.extend(problems)
        if policy is not None and source is not None:
            configuration.policies[policy.name] = policy
            configuration.policy_sources[policy.name] = source
    jobs = ValidJobs(configuration.policies, policies_dir, configuration.policy_sources)
    configuration.jobs = jobs
    cache = _OutcomeCache.read(cache_file)
    folder = str(jobs_dir)
    for name in _yaml_names(jobs_dir):
        # Paths as text: building 10,000 Path objects would cost more than the rest of a cached load.
        outline, problems = cache.outcome(
            os.path.join(folder, name), configuration.policies, configuration.policy_sources, policies_dir, jobs
        )
        if problems:
            configuration.problems.extend(problems)
            configuration.broken_jobs[name.rpartition(".")[0]] = problems
        elif outline is not None:
            configuration.outlines[outline.name] = outline
    cache.write(cache_file)
    return configuration


class _OutcomeCache:
    """The outcome of each job file (outline or problems) keyed by its `stat` identity; see the module docstring."""

    def __init__(self, entries: dict[str, Any], code: str) -> None:
        self._old = entries
        self._new: dict[str, Any] = {}
        self._code = code

    @classmethod
    def read(cls, cache_file: Path | None) -> _OutcomeCache:
        code = _validating_code()
        if cache_file is None:
            return cls({}, code)
        try:
            document = json.loads(cache_file.read_bytes())
        except (OSError, ValueError):
            return cls({}, code)
        if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT or document.get("code") != code:
            return cls({}, code)
        files = document.get("files")
        return cls(files if isinstance(files, dict) else {}, code)

    def outcome(
        self,
        key: str,
        policies: Mapping[str, PolicyConfig],
        sources: Mapping[str, PolicySource],
        policies_dir: Path,
        jobs: ValidJobs,
    ) -> tuple[JobOutline | None, list[str]]:
        """Return the outline of the valid job file at path `key` (adding it to `jobs`) or the problems of a broken
        one."""
        identity = _identity(key)
        entry = self._old.get(key)
        if identity is not None and isinstance(entry, dict) and entry.get("stat") == identity:
            outline = _outline_from(entry.get("outline"))
            use = PolicyUse.from_json(entry.get("use"), outline.policy) if outline is not None else None
            problems = entry.get("problems")
            if outline is not None and use is not None and outline.name == os.path.basename(key).rpartition(".")[0]:
                self._new[key] = entry
                # The policy may have changed since: checked every time, as a fresh load would.
                problems = policy_problems(key, use, policies, sources, policies_dir)
                if problems:
                    return None, problems
                jobs.add(outline.name, key, None)
                return outline, []
            if isinstance(problems, list) and problems and all(isinstance(p, str) for p in problems):
                self._new[key] = entry
                return None, problems
        path = Path(key)
        job, problems, from_content, document = _validate_file_content(path, JobConfig)
        read_at = time.time()
        outline = JobOutline.of(job) if job is not None else None
        use = PolicyUse.of(job, document) if job is not None and document is not None else None
        if from_content and identity is not None and identity[4] < (read_at - RACY_SECONDS) * 1e9:
            self._new[key] = (
                {
                    "stat": identity,
                    "outline": [
                        outline.name,
                        outline.store_kind,
                        outline.policy,
                        [*outline.destinations],
                        [*outline.repositories],
                    ],
                    "use": use.to_json(),
                }
                if outline is not None and use is not None
                else {"stat": identity, "problems": problems}
            )
        if job is None or outline is None or use is None:
            return None, problems
        problems = policy_problems(key, use, policies, sources, policies_dir)
        if problems:
            return None, problems
        jobs.add(job.name, key, job)
        return outline, []

    def write(self, cache_file: Path | None) -> None:
        """Write the entries of this load, when they differ from what was read (best effort: a cache)."""
        if cache_file is None or self._new == self._old:
            return
        document = {"format": CACHE_FORMAT, "code": self._code, "files": self._new}
        with contextlib.suppress(OSError):
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(cache_file, json.dumps(document, separators=(",", ":")).encode())


def _identity(path: str) -> list[int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]


def _outline_from(value: object) -> JobOutline | None:
    if not isinstance(value, list) or len(value) != 5:
        return None
    name, store_kind, policy, destinations, repositories = value
    if not all(isinstance(item, str) for item in (name, store_kind, policy)):
        return None
    if not isinstance(destinations, list) or not isinstance(repositories, list):
        return None
    return JobOutline(
        name,
        store_kind,
        policy,
        tuple(str(destination) for destination in destinations),
        tuple(str(key) for key in repositories),
    )


def _validating_code() -> str:
    """Return a digest of the code that validates files (and of the libraries it relies on)."""
    import pydantic

    digest = hashlib.sha256(f"{pydantic.VERSION} {yaml_version()}".encode())
    for name in _VALIDATING_MODULES:
        module_file = getattr(sys.modules.get(name), "__file__", None)
        if module_file:
            with contextlib.suppress(OSError):
                digest.update(Path(module_file).read_bytes())
    return digest.hexdigest()


def raise_if_problems(configuration: Configuration) -> None:
    """Raise ConfigError listing every problem, if there is any."""
    if configuration.problems:
        raise ConfigError(configuration.problems)
