"""Everything an action needs, built once per command from the settings."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from replica.config.load import Configuration, load_configuration
from replica.config.models import DestinationConfig, JobConfig, PolicyConfig
from replica.errors import ConfigError, NotFound
from replica.secrets import read_secret
from replica.settings import Settings

if TYPE_CHECKING:
    from replica.catalog.records import Catalog
    from replica.config.drills import DrillPlans

    # Imported by the methods that use them: the commands that only read the catalog (`status`, `runs`) skip them.
    from replica.restic.command import Repository, Restic
    from replica.storage.s3 import S3Storage
    from replica.stores.base import Store

Progress = Callable[[str], None]
# In the state directory: what each job file held when last read (see replica.config.load).
CONFIGURATION_CACHE_NAME = "configuration-cache.json"
_STORAGES_LOCK = threading.Lock()


def _silent(message: str) -> None:
    """Discard progress messages."""


@dataclass
class Context:
    """Settings, configuration, catalog and the ways to reach restic and S3, for one command."""

    settings: Settings
    progress: Progress = field(default=_silent)
    _storages: dict[str | None, S3Storage] = field(default_factory=dict, repr=False)

    @cached_property
    def configuration(self) -> Configuration:
        """Return every job and policy (broken files listed as problems, not raised)."""
        cache_file = self.settings.state_dir / CONFIGURATION_CACHE_NAME
        return load_configuration(self.settings.jobs_dir, self.settings.policies_dir, cache_file)

    @cached_property
    def drill_plans(self) -> DrillPlans:
        """Return every drill plan (broken files listed as problems, not raised), checked against the valid jobs."""
        from replica.config.drills import load_drill_plans

        kinds = {name: outline.store_kind for name, outline in self.configuration.outlines.items()}
        return load_drill_plans(self.settings.drills_dir, kinds)

    @cached_property
    def catalog(self) -> Catalog:
        """Return the catalog, migrated to the current schema."""
        # Imported here: SQLAlchemy costs ~0.15 s of start-up that `wal-push` (once per WAL segment) never needs.
        from replica.catalog.database import open_catalog
        from replica.catalog.records import Catalog

        key_file = self.settings.audit_signing_key_file
        if key_file is None:
            return Catalog(open_catalog(self.settings.catalog_url))
        from replica.audit.keys import load_signer  # deferred: cryptography costs ~30 ms that most commands skip

        return Catalog(open_catalog(self.settings.catalog_url), load_signer(key_file))

    @cached_property
    def restic(self) -> Restic:
        """Return the restic binary with the configured deadlines."""
        from replica.restic.command import Restic

        return Restic(
            binary=self.settings.restic_binary,
            timeout_seconds=self.settings.restic_timeout_seconds,
            metadata_timeout_seconds=self.settings.restic_metadata_timeout_seconds,
            stall_seconds=self.settings.stall_limit_seconds,
        )

    def reloaded(self) -> Context:
        """Return a context that reads the job and policy files afresh and shares this one's catalog, restic and
        S3 clients (what a daemon reload needs: running work keeps the configuration it started with)."""
        fresh = Context(self.settings, self.progress, self._storages)
        fresh.__dict__["catalog"] = self.catalog
        fresh.__dict__["restic"] = self.restic
        return fresh

    def with_progress(self, progress: Progress) -> Context:
        """Return a context that reports progress to `progress` and shares everything else with this one (the web
        server's tasks: one configuration, catalog and set of clients, a progress stream per task)."""
        other = self.reloaded()
        other.progress = progress
        for shared in ("configuration", "drill_plans"):
            if shared in self.__dict__:
                other.__dict__[shared] = self.__dict__[shared]
        return other

    @property
    def host(self) -> str:
        """Return this machine's name, recorded as the snapshot host."""
        return socket.gethostname()

    def job(self, name: str) -> tuple[JobConfig, PolicyConfig]:
        """Return a valid job and its policy. Raises ConfigError or UsageError."""
        job = self.configuration.job(name)
        return job, self.configuration.policy_of(job)

    def store(self, job: JobConfig, policy: PolicyConfig) -> Store:
        """Return the store a job protects, its dump and restore processes under the settings' stall limit."""
        from replica.stores import build_store

        return build_store(job, policy, stall_seconds=self.settings.stall_limit_seconds)

    def destination(self, job: JobConfig, name: str | None) -> DestinationConfig:
        """Return the named destination (the primary when None). Raises UsageError for unknown names."""
        if name is None:
            return job.primary
        destination = job.destination(name)
        if destination is None:
            known = ", ".join(d.name for d in job.destinations)
            raise NotFound(f"job '{job.name}' has no destination '{name}' (destinations: {known})")
        return destination

    def endpoint_url(self, destination: DestinationConfig) -> str | None:
        """Return the S3 endpoint of a destination: its own, or the settings' (None means AWS)."""
        return destination.endpoint_url or self.settings.s3_endpoint_url

    def storage(self, destination: DestinationConfig) -> S3Storage:
        """Return the S3 client for a destination's endpoint (one per endpoint and command: a boto3 client costs
        tens of milliseconds to build, and a backup needs one per probe and per sidecar)."""
        endpoint = self.endpoint_url(destination)
        with _STORAGES_LOCK:  # the daemon's workers share one context
            return self._storage_for(endpoint)

    def _storage_for(self, endpoint: str | None) -> S3Storage:
        from replica.storage.s3 import S3Storage  # deferred: boto3 costs ~0.3 s that `status` does not need

        if endpoint not in self._storages:
            key_id = self.settings.s3_access_key_id
            secret = self.settings.s3_secret_access_key
            self._storages[endpoint] = S3Storage(
                endpoint_url=endpoint,
                region=self.settings.s3_region,
                access_key_id=key_id.get_secret_value() if key_id else None,
                secret_access_key=secret.get_secret_value() if secret else None,
                timeout_seconds=self.settings.s3_probe_timeout_seconds,
            )
        return self._storages[endpoint]

    def repository(self, job: JobConfig, destination: DestinationConfig) -> Repository:
        """Return the restic repository of a destination. Raises ConfigError when no password is configured."""

        what = f"job '{job.name}' destination '{destination.name}'"
        password = read_secret(env_name=destination.password_env, file_path=destination.password_file, what=what)
        if password is None:
            password = self.settings.restic_password or read_secret(
                env_name=None,
                file_path=self.settings.restic_password_file,
                what="settings restic_password_file",
            )
        if password is None:
            raise ConfigError(
                [
                    f"{what}: no repository password (set password_env or password_file on the destination, "
                    "or REPLICA_RESTIC_PASSWORD_FILE)"
                ]
            )
        return self.repository_with_password(destination, password)

    def repository_with_password(self, destination: DestinationConfig, password: SecretStr) -> Repository:
        """Return the restic repository of a destination opened with `password` (the clean-room drill's, given
        explicitly), and the S3 credentials of the settings."""
        from replica.restic.command import Repository

        endpoint = self.endpoint_url(destination) or "https://s3.amazonaws.com"
        location = "/".join(part for part in (destination.bucket, destination.prefix) if part)
        s3_environment = {"AWS_DEFAULT_REGION": self.settings.s3_region}
        if self.settings.s3_access_key_id and self.settings.s3_secret_access_key:
            s3_environment["AWS_ACCESS_KEY_ID"] = self.settings.s3_access_key_id.get_secret_value()
            s3_environment["AWS_SECRET_ACCESS_KEY"] = self.settings.s3_secret_access_key.get_secret_value()
        return Repository(
            name=destination.name,
            url=f"s3:{endpoint}/{location}",
            password=password,
            s3_environment=s3_environment,
        )

    def probe(self, destination: DestinationConfig) -> None:
        """Return when the destination's bucket answers; a silent endpoint fails fast instead of hanging restic.

        Raises StorageUnreachable, BucketMissing or StorageAccessDenied naming the bucket and endpoint.
        """
        self.storage(destination).probe_bucket(destination.bucket)

    def object_lock(self, destination: DestinationConfig) -> dict[str, Any]:
        """Return the destination bucket's Object Lock state (see S3Storage.object_lock); never raises."""
        return self.storage(destination).object_lock(destination.bucket)


def sidecar_key(destination: DestinationConfig, snapshot_id: str) -> str:
    """Return the object key of a snapshot's fingerprint sidecar, beside the repository's own files."""
    prefix = f"{destination.prefix}/" if destination.prefix else ""
    return f"{prefix}replica/fingerprints/{snapshot_id}.json"
