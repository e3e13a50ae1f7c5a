"""What every benchmark shares: a bench (S3 endpoint, folders, environments), timed runs, medians, the table.

A bench starts the embedded SeaweedFS (the endpoint `replica demo` uses) on loopback, writes a restic password
file and a `restic` wrapper that counts the processes replica starts, and gives two environments over the same
repository: one for replica (through `replica_probe.py`, which reports replica's own peak RSS) and one for the raw
tools. A comparison alternates replica and the raw pipeline run by run and reports medians, so a slow moment of
the machine hits both sides alike.

Not part of the test suite: run the scenario scripts by hand (`python benchmarks/run.py` lists them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from replica.storage.seaweedfs import S3Credentials, SeaweedServer, start_seaweedfs

BENCHMARKS = Path(__file__).resolve().parent
PROBE = BENCHMARKS / "replica_probe.py"
RUN_TIMEOUT_SECONDS = 3600
POLICY_NAME = "bench"


class BenchFailed(RuntimeError):
    """A measured command failed: the figures would be meaningless."""


@dataclass(frozen=True)
class Sample:
    """One timed run: wall seconds, replica's own peak RSS in MiB (None for raw tools), restic processes started."""

    seconds: float
    rss_mib: float | None = None
    restic_processes: int | None = None
    restic_commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    """One line of a table: medians of replica and of the raw pipeline, and their ratio."""

    scenario: str
    replica_seconds: float
    raw_seconds: float | None
    rss_mib: float | None
    restic_processes: int | None
    runs: int
    note: str = ""
    target: float | None = None
    # An absolute target on replica's median, for scenarios without a raw pipeline (e.g. catalog reads).
    target_seconds: float | None = None

    @property
    def ratio(self) -> float | None:
        """Return replica's median over the raw pipeline's (None without a raw pipeline)."""
        return self.replica_seconds / self.raw_seconds if self.raw_seconds else None

    @property
    def verdict(self) -> str:
        """Return `ok`, `MISSED` or '' against the target ratio (or the absolute target in seconds, when set)."""
        if self.target_seconds is not None:
            return "ok" if self.replica_seconds < self.target_seconds else "MISSED"
        if self.target is None or self.ratio is None:
            return ""
        return "ok" if self.ratio <= self.target else "MISSED"


@dataclass(frozen=True)
class ClosedEndpoint:
    """Stands in for the S3 server on a catalog-only bench: a loopback port nothing listens on, so that a command
    that must not reach S3 fails at once (connection refused) instead of being timed with S3 calls in it."""

    endpoint_url: str

    def stop(self) -> None:
        """Nothing runs: nothing to stop."""


@dataclass
class Bench:
    """A working folder with an S3 endpoint, a password, job/policy folders and the environments to use them."""

    root: Path
    server: SeaweedServer | ClosedEndpoint
    credentials: S3Credentials
    password_file: Path
    restic_log: Path
    extra_environment: dict[str, str] = field(default_factory=dict)

    @property
    def jobs_dir(self) -> Path:
        """Return the folder of job files."""
        return self.root / "jobs"

    def replica_environment(self) -> dict[str, str]:
        """Return the environment of a replica process on this bench (nothing inherited but PATH/HOME/TMPDIR)."""
        environment = {name: os.environ[name] for name in ("PATH", "HOME", "TMPDIR", "LANG") if name in os.environ}
        environment.update(
            REPLICA_STATE_DIR=str(self.root / "state"),
            REPLICA_JOBS_DIR=str(self.jobs_dir),
            REPLICA_POLICIES_DIR=str(self.root / "policies"),
            REPLICA_S3_ENDPOINT_URL=self.server.endpoint_url,
            REPLICA_S3_ACCESS_KEY_ID=self.credentials.access_key_id,
            REPLICA_S3_SECRET_ACCESS_KEY=self.credentials.secret_access_key,
            REPLICA_RESTIC_PASSWORD_FILE=str(self.password_file),
            REPLICA_RESTIC_BINARY=str(self.root / "bin" / "restic"),
        )
        environment.update(self.extra_environment)
        return environment

    def restic_environment(self, bucket: str, prefix: str) -> dict[str, str]:
        """Return the environment of the raw `restic` on the repository replica uses for `bucket`/`prefix`."""
        environment = {name: os.environ[name] for name in ("PATH", "HOME", "TMPDIR", "LANG") if name in os.environ}
        environment.update(
            RESTIC_REPOSITORY=f"s3:{self.server.endpoint_url}/{bucket}/{prefix}",
            RESTIC_PASSWORD_FILE=str(self.password_file),
            AWS_ACCESS_KEY_ID=self.credentials.access_key_id,
            AWS_SECRET_ACCESS_KEY=self.credentials.secret_access_key,
            AWS_DEFAULT_REGION="us-east-1",
        )
        return environment

    def write_policy(self, **fields: Any) -> None:
        """Write the policy every bench job uses (generous objectives; `fields` override)."""
        document = {"name": POLICY_NAME, "rpo": "24h", "rto": "1h", **fields}
        (self.root / "policies" / f"{POLICY_NAME}.yaml").write_text(yaml.safe_dump(document))

    def write_job(
        self,
        name: str,
        store: dict[str, Any],
        destinations: Sequence[tuple[str, str]],
        *,
        prefix: str | None = None,
        **fields: Any,
    ) -> None:
        """Write a job file: `destinations` are (destination name, bucket); the prefix is `prefix` (jobs that share
        their repositories name the same one) or else the job's name."""
        document = {
            "name": name,
            "store": store,
            "destinations": [
                {"name": destination, "bucket": bucket, "prefix": prefix or name}
                for destination, bucket in destinations
            ],
            "policy": POLICY_NAME,
            **fields,
        }
        (self.jobs_dir / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def replica(self, *arguments: str) -> Sample:
        """Run `replica ARGUMENTS` through the probe; return its wall time, own peak RSS and restic processes.

        Raises BenchFailed (with replica's last output lines) when it exits non-zero.
        """
        rss_file = self.root / "replica-rss"
        rss_file.unlink(missing_ok=True)
        self.restic_log.write_text("")
        environment = {**self.replica_environment(), "REPLICA_BENCH_RSS_FILE": str(rss_file)}
        seconds, completed = _timed_run([sys.executable, str(PROBE), *arguments], environment)
        if completed.returncode != 0:
            tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-8:])
            raise BenchFailed(f"replica {' '.join(arguments)} exited {completed.returncode}:\n{tail}")
        commands = tuple(line for line in self.restic_log.read_text().splitlines() if line.strip())
        return Sample(
            seconds=seconds,
            rss_mib=int(rss_file.read_text()) / 1024,
            restic_processes=len(commands),
            restic_commands=commands,
        )

    def shell(self, script: str, environment: dict[str, str]) -> Sample:
        """Run `script` with bash (pipefail: a failed producer fails the run); return its wall time.

        Raises BenchFailed when it exits non-zero.
        """
        seconds, completed = _timed_run(["bash", "-o", "pipefail", "-c", script], environment)
        if completed.returncode != 0:
            tail = "\n".join(completed.stderr.strip().splitlines()[-8:])
            raise BenchFailed(f"raw pipeline exited {completed.returncode}: {script}\n{tail}")
        return Sample(seconds=seconds)


def _timed_run(argv: list[str], environment: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `argv` to completion with its output captured; return its wall seconds and outcome (never raises on
    its exit code)."""
    started = time.perf_counter()
    completed = subprocess.run(
        argv, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    return time.perf_counter() - started, completed


@contextlib.contextmanager
def bench(prefix: str = "replica-bench-", parent: Path | None = None) -> Iterator[Bench]:
    """Yield a fresh bench with SeaweedFS running; stop it and remove every file on exit."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    server = None
    try:
        for folder in ("jobs", "policies", "state", "bin"):
            (root / folder).mkdir()
        credentials = S3Credentials(f"bench{secrets.token_hex(4)}", secrets.token_urlsafe(24))
        password_file = root / "restic-password"
        password_file.write_text(secrets.token_urlsafe(32))
        password_file.chmod(0o600)
        restic_log = root / "restic-calls"
        real_restic = shutil.which("restic")
        if real_restic is None:
            raise BenchFailed("restic is not installed (run scripts/setup.sh)")
        wrapper = root / "bin" / "restic"
        # Counts every restic process replica starts (subcommand only: arguments carry no secrets, but stay out).
        wrapper.write_text(f'#!/bin/sh\necho "$2" >> {restic_log}\nexec {real_restic} "$@"\n')
        wrapper.chmod(0o755)
        server = start_seaweedfs(root / "seaweedfs", credentials)
        instance = Bench(root, server, credentials, password_file, restic_log)
        instance.write_policy()
        yield instance
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def catalog_bench(
    prefix: str = "replica-catalog-bench-", parent: Path | None = None, keep: Path | None = None
) -> Iterator[Bench]:
    """Yield a fresh bench without an S3 server, for commands that read only the catalog and the job files.

    The S3 endpoint is a closed loopback port and `restic` is the counting wrapper, so a measured command that
    reached S3 would fail and one that started restic would show it in the restic-processes column. With `keep`,
    the bench lives in that folder (created when missing; what an earlier run left there is kept) and is not
    removed on exit.
    """
    root = keep if keep is not None else Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        for folder in ("jobs", "policies", "state", "bin"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        password_file = root / "restic-password"
        password_file.write_text(secrets.token_urlsafe(32))
        password_file.chmod(0o600)
        restic_log = root / "restic-calls"
        wrapper = root / "bin" / "restic"
        wrapper.write_text(f'#!/bin/sh\necho "$2" >> {restic_log}\nexec {shutil.which("restic") or "false"} "$@"\n')
        wrapper.chmod(0o755)
        with socket.socket() as probe:  # a free port, closed again: nothing listens there
            probe.bind(("127.0.0.1", 0))
            endpoint = ClosedEndpoint(f"http://127.0.0.1:{probe.getsockname()[1]}")
        credentials = S3Credentials(f"bench{secrets.token_hex(4)}", secrets.token_urlsafe(24))
        instance = Bench(root, endpoint, credentials, password_file, restic_log)
        instance.write_policy()
        yield instance
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def newest_runs(instance: Bench, job: str) -> dict[str, dict[str, Any]]:
    """Return the newest finished run of each kind of `job` (backup, copy, verify...) as `replica runs --json`
    prints it. Untimed: call it after a measured run. Raises BenchFailed when one of them did not succeed."""
    completed = subprocess.run(
        [sys.executable, "-m", "replica", "runs", "--json", "--job", job, "--limit", "10"],
        env=instance.replica_environment(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=True,
    )
    newest: dict[str, dict[str, Any]] = {}
    for run in json.loads(completed.stdout):
        if run["kind"] in newest or run["finished_at"] is None:
            continue
        if run["status"] != "succeeded":
            raise BenchFailed(f"{run['kind']} run {run['id']} of {job} is {run['status']}: {run['error']}")
        newest[run["kind"]] = run
    return newest


def run_seconds(run: dict[str, Any]) -> float:
    """Return a recorded run's duration, from its start to its finish in the catalog."""
    return (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()


def compare(
    scenario: str,
    replica_run: Callable[[], Sample],
    raw_run: Callable[[], Sample] | None,
    *,
    runs: int,
    before_each: Callable[[], None] | None = None,
    target: float | None = None,
    note: str = "",
) -> Row:
    """Run replica and the raw pipeline alternately `runs` times each (which goes first alternates too) and
    return the medians. `before_each` runs before every measured run, untimed (e.g. to reset a target)."""
    replica_samples: list[Sample] = []
    raw_samples: list[Sample] = []
    for index in range(runs):
        order: list[tuple[Callable[[], Sample], list[Sample]]] = [(replica_run, replica_samples)]
        if raw_run is not None:
            order.append((raw_run, raw_samples))
        if index % 2:
            order.reverse()
        for run, samples in order:
            if before_each is not None:
                before_each()
            samples.append(run())
        print(f"  {scenario}: run {index + 1}/{runs} " + _describe_last(replica_samples, raw_samples), file=sys.stderr)
    rss = [sample.rss_mib for sample in replica_samples if sample.rss_mib is not None]
    processes = [sample.restic_processes for sample in replica_samples if sample.restic_processes is not None]
    return Row(
        scenario=scenario,
        replica_seconds=statistics.median(sample.seconds for sample in replica_samples),
        raw_seconds=statistics.median(sample.seconds for sample in raw_samples) if raw_samples else None,
        rss_mib=max(rss) if rss else None,
        restic_processes=max(processes) if processes else None,
        runs=runs,
        note=note,
        target=target,
    )


def _describe_last(replica_samples: list[Sample], raw_samples: list[Sample]) -> str:
    parts = [f"replica {replica_samples[-1].seconds:.2f}s"]
    if raw_samples:
        parts.append(f"raw {raw_samples[-1].seconds:.2f}s")
    return ", ".join(parts)


def format_table(title: str, rows: Sequence[Row]) -> str:
    """Return the rows as a Markdown table headed by `title` (ready to paste into a note)."""
    lines = [
        f"### {title}",
        "",
        "| scenario | replica s | raw s | ratio | target | replica peak RSS MiB | restic processes | runs | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    row.scenario,
                    f"{row.replica_seconds:.2f}",
                    f"{row.raw_seconds:.2f}" if row.raw_seconds is not None else "–",
                    f"{row.ratio:.3f}" if row.ratio is not None else "–",
                    _target_cell(row),
                    f"{row.rss_mib:.0f}" if row.rss_mib is not None else "–",
                    str(row.restic_processes) if row.restic_processes is not None else "–",
                    str(row.runs),
                    row.note,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def _target_cell(row: Row) -> str:
    if row.target_seconds is not None:
        return f"< {row.target_seconds:.2f} s {row.verdict}"
    return f"≤ {row.target:.2f} {row.verdict}" if row.target is not None else "–"


def standard_arguments(description: str) -> argparse.ArgumentParser:
    """Return a parser with the options every scenario takes: --runs and --smoke (tiny data, one run)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each side (median reported)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny data and one run: only proves the script still works"
    )
    return parser


def write_random_file(path: Path, size_bytes: int, chunk_bytes: int = 8 << 20) -> None:
    """Write `size_bytes` of incompressible data to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        remaining = size_bytes
        while remaining > 0:
            piece = min(chunk_bytes, remaining)
            file.write(os.urandom(piece))
            remaining -= piece
