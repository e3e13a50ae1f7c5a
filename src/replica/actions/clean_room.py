"""The clean-room drill's recovery points: read from one secondary destination only, with credentials given
explicitly (its restic password, and S3 keys of its own when the copy lives with another provider), never from the
catalog or the primary. If the primary's site and the catalog were lost, this is all that would be left; a drill
from here proves the copy and its keys are enough on their own, and measures the cold RTO.

The snapshot is found by its `replica-job=NAME` tag in the repository itself, and what it must restore to by the
fingerprint sidecar replica writes beside every copy.
"""

from __future__ import annotations

import configparser
import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import SecretStr

from replica.actions.context import Context
from replica.actions.drill_points import ChosenPoint
from replica.actions.proving import ExpectedData, read_sidecar
from replica.config.drills import DrillPlanConfig
from replica.errors import ConfigError, NotFound, UsageError
from replica.restic.snapshots import list_snapshots
from replica.secrets import read_secret

S3_PROFILE = "default"


@dataclass(frozen=True)
class CleanRoomCredentials:
    """What the clean room is given: the repository password file, and optionally an AWS shared-credentials file
    (profile `default`) whose keys replace the settings' S3 keys."""

    password_file: Path
    s3_credentials_file: Path | None = None


def clean_room_context(context: Context, credentials: CleanRoomCredentials) -> Context:
    """Return a context that reaches S3 with the given keys (the settings' when no file is given) and shares the
    catalog, where the drill records its own run. Raises ConfigError naming the file when it cannot be used."""
    settings = context.settings
    if credentials.s3_credentials_file is not None:
        key_id, secret = _s3_keys(credentials.s3_credentials_file)
        settings = settings.model_copy(update={"s3_access_key_id": key_id, "s3_secret_access_key": secret})
    clean = Context(settings, context.progress)
    for shared in ("catalog", "restic", "configuration", "drill_plans"):
        if shared in context.__dict__:
            clean.__dict__[shared] = context.__dict__[shared]
    return clean


def _s3_keys(path: Path) -> tuple[SecretStr, SecretStr]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as file:
            parser.read_file(file)
    except (OSError, configparser.Error) as error:
        raise ConfigError([f"{path}: cannot read the S3 credentials file: {type(error).__name__}"]) from None
    section = parser[S3_PROFILE] if parser.has_section(S3_PROFILE) else None
    key_id = section.get("aws_access_key_id", "").strip() if section else ""
    secret = section.get("aws_secret_access_key", "").strip() if section else ""
    if not key_id or not secret:
        raise ConfigError([f"{path}: needs aws_access_key_id and aws_secret_access_key in a [{S3_PROFILE}] section"])
    return SecretStr(key_id), SecretStr(secret)


def clean_room_points(
    context: Context,
    plan: DrillPlanConfig,
    cut: datetime,
    destination_name: str,
    credentials: CleanRoomCredentials,
    cache_dir: Path,
) -> list[ChosenPoint]:
    """Return, in the plan's restore order, each job's newest snapshot taken at or before `cut` in the secondary
    destination `destination_name`, read from the repository and its sidecars with the given credentials.

    `context` is a `clean_room_context`. restic keeps its cache in `cache_dir` (empty, the caller's to remove): the
    index and trees cached by earlier work here would make the restore warmer than it would be on a fresh host.

    Raises UsageError when the destination is a job's primary, NotFound when a job has no snapshot (or no
    fingerprint sidecar) there at or before `cut`, ConfigError for an unreadable password file, and restic's errors
    (WrongPassword for a wrong password, RepositoryMissing...) as they come.
    """
    password = read_secret(env_name=None, file_path=credentials.password_file, what="clean room")
    assert password is not None  # a file was named: read_secret returns it or raises
    points = []
    for name in plan.jobs:
        job, policy = context.job(name)
        destination = context.destination(job, destination_name)
        if destination.name == job.primary.name:
            raise UsageError(
                f"destination '{destination.name}' is the primary of job '{job.name}': a clean-room drill uses a "
                "secondary destination only"
            )
        opened = context.repository_with_password(destination, password)
        environment = {**opened.s3_environment, "RESTIC_CACHE_DIR": str(cache_dir)}
        repository = dataclasses.replace(opened, s3_environment=environment)
        context.progress(f"clean room: listing snapshots of '{job.name}' in '{destination.name}'")
        snapshots = [
            snapshot
            for snapshot in list_snapshots(context.restic, repository, tags=[f"replica-job={job.name}"])
            if snapshot.time <= cut
        ]
        if not snapshots:
            raise NotFound(
                f"job '{job.name}' has no snapshot taken at or before {cut.isoformat(timespec='seconds')} in "
                f"destination '{destination.name}'"
            )
        newest = max(snapshots, key=lambda snapshot: snapshot.time)
        sidecar = read_sidecar(context, job.name, destination, [newest.short_id, newest.id])
        if sidecar is None:
            raise NotFound(
                f"snapshot {newest.short_id} of job '{job.name}' in '{destination.name}' has no fingerprint sidecar: "
                "nothing says what it must restore to"
            )
        expected = ExpectedData.of_sidecar(newest.short_id, sidecar)
        points.append(ChosenPoint(job, policy, destination, repository, expected, taken_at=newest.time, verified=False))
    return points
