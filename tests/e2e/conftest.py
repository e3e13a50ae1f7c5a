"""e2e fixtures: moto's S3 server on 127.0.0.1, a deployment folder per module, the real `replica` CLI.

Every deployment is also a trap for leaked secrets: its credentials are unique canaries (the repository password,
the S3 secret key, a PostgreSQL password that PostgreSQL jobs take from `E2E_PGPASSWORD`), every program replica
starts with credentials at hand runs through a PATH shim that records its command line, and at teardown no canary
may be found in a command line, in anything the CLI printed, in a daemon's log or in any file under the deployment
(the catalog, reports, exports), nor in a dump of the catalog.

The catalog is a SQLite file in the deployment's state folder, or with `--catalog=postgresql` (or
REPLICA_TEST_CATALOG=postgresql) a fresh database of its own on the local PostgreSQL. A test module that sets
`CATALOG = "postgresql"` (a PostgreSQL variant of another module, run by CI) uses that kind whatever was chosen.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.e2e.sources import PG_PASSWORD_VARIABLE
from tests.support.argv_recorders import ArgvRecorders
from tests.support.catalogs import DeploymentCatalog, deployment_catalog, selected_catalog_kind
from tests.support.cheap_init import install_init_hook
from tests.support.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server, start_s3_server

if TYPE_CHECKING:
    from tests.e2e.daemons import DaemonProcess

CLI_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
def catalog_kind(request: pytest.FixtureRequest) -> str:
    """The kind of catalog of the module's deployments: the module's own `CATALOG`, else the one chosen."""
    return getattr(request.module, "CATALOG", None) or selected_catalog_kind(request.config)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server for the whole e2e session."""
    yield from start_s3_server()


@dataclass
class Deployment:
    """A folder with jobs/, policies/, a state dir and a password file, plus the environment to run replica."""

    root: Path
    s3: S3Server
    # The catalog every replica process of the deployment uses (see `deployed`).
    catalog: DeploymentCatalog
    buckets: list[str] = field(default_factory=list)
    # Everything the CLI printed, scanned for secrets at teardown with every file the deployment holds.
    outputs: list[str] = field(default_factory=list)
    # Secrets a test adds (an SMTP password...) and files that hold a secret on purpose (never scanned).
    extra_secrets: list[str] = field(default_factory=list)
    secret_files: set[Path] = field(default_factory=set)
    # Variables every replica process of this deployment gets (a signing key, an SMTP password variable).
    environment_extra: dict[str, str] = field(default_factory=dict)
    # Logs written outside the deployment folder (a daemon's), swept for secrets too.
    log_files: list[Path] = field(default_factory=list)
    # The password of every PostgreSQL job (the local server trusts loopback: any password works, none may show).
    pg_password: str = field(default_factory=lambda: f"canary-pgpass-{secrets.token_hex(8)}")
    # The shims every replica process finds first on PATH (in the folder: the file sweep reads their log too).
    recorders: ArgvRecorders = field(init=False)

    def __post_init__(self) -> None:
        folder = self.root / "argv-shims"
        if folder.is_dir():
            self.recorders = ArgvRecorders(folder)
            return
        self.recorders = ArgvRecorders.install(folder)
        # Every repository a replica process creates gets a cheap key file: each later restic command then opens it
        # in milliseconds instead of ~0.5 s of scrypt (tests/support/cheap_keys.py).
        install_init_hook(folder)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def password_file(self) -> Path:
        return self.root / "restic-password"

    def environment(self, **extra: str) -> dict[str, str]:
        """Return the environment of a replica process for this deployment (nothing inherited but PATH/HOME).

        The argv shims come first on PATH, even on a PATH a test gives (its fakes then run behind a shim).
        """
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "REPLICA_STATE_DIR": str(self.state_dir),
            "REPLICA_JOBS_DIR": str(self.root / "jobs"),
            "REPLICA_POLICIES_DIR": str(self.root / "policies"),
            "REPLICA_S3_ENDPOINT_URL": self.s3.endpoint_url,
            "REPLICA_RESTIC_PASSWORD_FILE": str(self.password_file),
            "REPLICA_S3_PROBE_TIMEOUT_SECONDS": "3",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            PG_PASSWORD_VARIABLE: self.pg_password,
            **self.catalog.environment(),
        }
        environment.update(self.environment_extra)
        environment.update(extra)
        environment["PATH"] = self.recorders.path(environment["PATH"])
        return environment

    def replica(
        self, *arguments: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI (`python -m replica`) and return its outcome."""
        result = subprocess.run(
            [sys.executable, "-m", "replica", *arguments],
            env=env or self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )
        self.outputs.append(f"$ replica {' '.join(arguments)}\n{result.stdout}\n{result.stderr}")
        return result

    def secrets(self) -> list[str]:
        """Return every secret this deployment uses: repository password, S3 secret key, PostgreSQL password, what
        tests added."""
        return [self.password_file.read_text().strip(), SECRET_ACCESS_KEY, self.pg_password, *self.extra_secrets]

    def leaked_secrets(self) -> list[str]:
        """Return where a secret appears: a command line replica started, the CLI's output, a daemon's log, any
        file under the deployment (catalog, reports, exports, logs) except the files meant to hold one, or a dump of
        the catalog (a PostgreSQL catalog is no file here)."""
        needles = [secret.encode() for secret in self.secrets() if secret]
        found = []
        for line in self.recorders.lines():
            found += [f"command line: {line}" for needle in needles if needle in line.encode()]
        for index, output in enumerate(self.outputs):
            found += [f"CLI output #{index}" for needle in needles if needle in output.encode()]
        for path in [*sorted(self.root.rglob("*")), *self.log_files]:
            if path.is_file() and path not in self.secret_files | {self.password_file}:
                data = path.read_bytes()
                found += [f"{path} holds secret #{n}" for n, needle in enumerate(needles) if needle in data]
        dump = self.catalog.dump().encode()
        found += [
            f"catalog {self.catalog.name} holds secret #{n}" for n, needle in enumerate(needles) if needle in dump
        ]
        return found

    def replica_json(self, *arguments: str) -> Any:
        """Run a `--json` command that must succeed and return its parsed output."""
        result = self.replica(*arguments, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def new_bucket(self, label: str) -> str:
        """Create a uniquely named bucket, deleted at teardown."""
        name = f"e2e-{label}-{secrets.token_hex(4)}"
        self.s3.create_bucket(name)
        self.buckets.append(name)
        return name

    def write_policy(self, name: str = "e2e", **fields: Any) -> None:
        document = {"name": name, "rpo": "1h", "rto": "10m", "verification": {"read_data_subset": "100%"}}
        document.update(fields)
        (self.root / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(document))

    def write_job(
        self, name: str, store: dict[str, Any], destinations: list[dict[str, Any]], policy: str = "e2e", **fields: Any
    ) -> None:
        document = {
            "name": name,
            "store": store,
            "destinations": destinations,
            "policy": policy,
            "owners": ["oncall@example.com"],
            "clients": ["Client A", "Client B"],
        }
        document.update(fields)
        (self.root / "jobs" / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def two_destinations(self, label: str) -> list[dict[str, Any]]:
        """Return a primary and an offsite destination in two new buckets."""
        return [
            {"name": "primary", "bucket": self.new_bucket(f"{label}-p"), "prefix": f"restic/{label}"},
            {"name": "offsite", "bucket": self.new_bucket(f"{label}-o"), "prefix": f"restic/{label}"},
        ]


@contextlib.contextmanager
def deployed(root: Path, s3: S3Server, catalog_kind: str) -> Iterator[Deployment]:
    """Yield a deployment of the folder `root` with a new catalog of `catalog_kind`. At the end, fail if a secret
    leaked anywhere; its buckets and its catalog are deleted whatever happened."""
    with deployment_catalog(catalog_kind, root / "state") as catalog:
        deployment = Deployment(root, s3, catalog)
        try:
            yield deployment
            # No secret ever lands in a log line, the catalog (runs, events), a report or an export.
            assert deployment.leaked_secrets() == []
        finally:
            for bucket in deployment.buckets:
                deployment.s3.delete_bucket(bucket)


@pytest.fixture(scope="module")
def deployment(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory, catalog_kind: str
) -> Iterator[Deployment]:
    """A deployment shared by the tests of one module (repositories are expensive to create)."""
    root = tmp_path_factory.mktemp("deployment")
    (root / "jobs").mkdir()
    (root / "policies").mkdir()
    (root / "restic-password").write_text(f"canary-restic-{secrets.token_hex(12)}")
    with deployed(root, s3_server, catalog_kind) as deployment:
        deployment.write_policy()
        yield deployment


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """The `replica daemon` processes a test started (tests.e2e.daemons), killed at teardown if still running."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    """Fail with the CLI's output when it did not exit 0."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def catalog_rows(deployment: Deployment, query: str, **parameters: Any) -> list[tuple[Any, ...]]:
    """Return the rows of a SQL query (`:name` parameters) on the deployment's catalog, SQLite or PostgreSQL, each
    value as SQLite shows it (timestamps and JSON as text, booleans as 0 or 1)."""
    return deployment.catalog.rows(query, **parameters)


def damage_largest_pack(deployment: Deployment, destination: dict[str, Any]) -> str:
    """Flip 16 bytes in the middle of the largest pack of a destination's repository (damage at rest, as a failing
    disk would); return the pack's key."""
    client = deployment.s3.client()
    bucket, prefix = destination["bucket"], destination["prefix"]
    packs = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/data/")["Contents"]
    largest = max(packs, key=lambda item: item["Size"])
    body = bytearray(client.get_object(Bucket=bucket, Key=largest["Key"])["Body"].read())
    middle = len(body) // 2
    body[middle : middle + 16] = bytes(byte ^ 0xFF for byte in body[middle : middle + 16])
    client.put_object(Bucket=bucket, Key=largest["Key"], Body=bytes(body))
    return str(largest["Key"])
