"""The `postgresql` store in `mode: physical`: base backups of the whole cluster plus its archived WAL.

A base backup is `pg_basebackup -D - -Ft -X fetch --checkpoint=fast --verbose` streamed into `restic backup
--stdin`: one tar of the data directory with the few WAL segments written during the backup (from its start to its
stop LSN). The later WAL comes from the archive the server fills with `archive_command = 'replica wal-push ...'`.
Why `-X fetch` and not `-X none`: pg_basebackup 15 prints the backup's start and stop LSN only when it includes WAL
(`-X none` prints neither, and reading them from backup_label inside the stream would put Python in the data path),
and a base backup that holds its own consistency WAL restores even if one of those segments were lost from the
archive. Its fingerprint records the cluster (system identifier, segment size, server version) before the backup,
and, once pg_basebackup has ended, the start and stop LSN and timeline it printed and when it ended (`end_time`): a
point-in-time restore picks the newest base backup that ended before its target.

A restore unpacks the tar as the job's `server_user` into a data directory of that user (mode 0700), writes
`recovery.signal` and the recovery settings (`restore_command` = `replica wal-fetch` of the job and destination),
and recovers with a scratch server (`postgresql_server`). A verification recovers to the end of the archive: every
segment from the backup on must be there and replay, then every table of the job's database must be readable.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from replica.catalog.records import CheckOutcome, utc_now
from replica.config.models import DestinationConfig, PostgresqlStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError, last_meaningful_line
from replica.execute import Command, Completed, as_user
from replica.stores import postgresql_server
from replica.stores.base import (
    CANARY_NAME,
    BackupSource,
    Canary,
    Fingerprint,
    PreparedBackup,
    RestoreMethod,
    Target,
    source_error,
)
from replica.stores.postgresql import PostgresqlStore
from replica.stores.postgresql_server import ScratchServer, free_port, give_to, server_bin_dir, user_can_enter
from replica.wal.segments import format_lsn, parse_lsn

START_POINT = re.compile(r"write-ahead log start point: ([0-9A-Fa-f]+/[0-9A-Fa-f]+) on timeline (\d+)")
END_POINT = re.compile(r"write-ahead log end point: ([0-9A-Fa-f]+/[0-9A-Fa-f]+)")
RECOVERY_BEGIN = "# replica recovery settings (removed once recovery finished)"
RECOVERY_END = "# end of replica recovery settings"
# What ends a restored data directory's postgresql.auto.conf: a restored cluster never archives into its source's
# WAL archive, whatever the source's own settings said.
ARCHIVING_OFF = (
    "# replica: a restored cluster does not archive into its source's WAL archive",
    "archive_mode = 'off'",
    "archive_command = ''",
)
# A verification or restore replays WAL for at most this long before it is called stuck.
RECOVERY_TIMEOUT_SECONDS = 3600.0
# What a scratch server's restore_command (`replica wal-fetch`) needs from replica's environment, and nothing else
# (the postmaster and every backend inherit it: no notifier's secret, catalog URL or source password): where the
# settings and job files are, the S3 endpoint and credentials. The repository passwords are added per job.
FORWARDED_NAMES = (
    "REPLICA_CONFIG_FILE",
    "REPLICA_JOBS_DIR",
    "REPLICA_POLICIES_DIR",
    "REPLICA_STATE_DIR",
    "XDG_STATE_HOME",
)
FORWARDED_PREFIXES = ("REPLICA_S3_", "AWS_")
# The settings' default repository password, needed only by a destination that names no password of its own.
DEFAULT_PASSWORD_NAMES = ("REPLICA_RESTIC_PASSWORD", "REPLICA_RESTIC_PASSWORD_FILE")


def conf_string(value: str) -> str:
    """Return `value` as a quoted string of postgresql.conf."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def wal_fetch_command(job: str, destination: str | None, *, only: bool = False) -> str:
    """Return the `restore_command` that fetches WAL of `job` with this very replica: from `destination` first
    (None: the primary first), the others as fallback; with `only`, from `destination` alone, its answer final."""
    argv = [sys.executable, "-m", "replica", "wal-fetch", "--job", job]
    if destination is not None:
        argv += ["--only" if only else "--destination", destination]
    return f"{shlex.join(argv)} %f %p"


def server_environment(destinations: Sequence[DestinationConfig], environ: Mapping[str, str]) -> dict[str, str]:
    """Return what a scratch server inherits from `environ` (replica's environment) for its restore_command to
    fetch WAL from `destinations`: the allowlisted settings variables, each destination's `password_env`, and the
    settings' default password when a destination names none."""
    names = set(FORWARDED_NAMES)
    names.update(destination.password_env for destination in destinations if destination.password_env)
    if any(not (destination.password_env or destination.password_file) for destination in destinations):
        names.update(DEFAULT_PASSWORD_NAMES)
    return {name: value for name, value in environ.items() if name in names or name.startswith(FORWARDED_PREFIXES)}


def parse_backup_points(stderr: str) -> dict[str, Any]:
    """Return the start LSN, timeline and stop LSN that `pg_basebackup --verbose` printed. Raises StoreError when
    they are missing (the backup's WAL range would be unknown)."""
    start = START_POINT.search(stderr)
    end = END_POINT.search(stderr)
    if start is None or end is None:
        raise StoreError(f"pg_basebackup did not print its WAL start and end points: {last_meaningful_line(stderr)}")
    return {
        "start_lsn": format_lsn(parse_lsn(start.group(1))),
        "timeline": int(start.group(2)),
        "end_lsn": format_lsn(parse_lsn(end.group(1))),
    }


def write_recovery_settings(
    data_dir: Path, user: str, restore_command: str, target_time: datetime | None, *, inclusive: bool = False
) -> None:
    """Write `recovery.signal` and the recovery settings (in postgresql.auto.conf, between replica's markers) into
    a restored data directory; create an empty postgresql.conf when the source kept its configuration elsewhere
    (Debian's /etc/postgresql).

    Recovery stops before the first transaction committed at or after `target_time` (`recovery_target_inclusive =
    off`; None: replay every archived WAL file), then the server is promoted to a new timeline: it never archives
    (`archive_mode = 'off'` and `archive_command = ''` end postgresql.auto.conf, after the recovery block and after
    any archiving settings the source made with ALTER SYSTEM, and stay there once the block is stripped: a
    handed-over cluster never pushes into the source's archive until a DBA decides so).
    `recovery_target_timeline = 'latest'` (PostgreSQL's default) follows a failover of the source recorded in the
    archive by its timeline history file.
    """
    lines = [RECOVERY_BEGIN, f"restore_command = {conf_string(restore_command)}"]
    if target_time is not None:
        lines += [
            f"recovery_target_time = {conf_string(target_time.isoformat())}",
            f"recovery_target_inclusive = {'on' if inclusive else 'off'}",
        ]
    lines += ["recovery_target_action = 'promote'", "recovery_target_timeline = 'latest'", RECOVERY_END]
    auto = data_dir / "postgresql.auto.conf"
    text = auto.read_text() if auto.exists() else ""
    text = strip_recovery_settings(text)
    # The last line of a setting wins: archiving settings made by ALTER SYSTEM on the source (above) are overridden
    # for recovery and after the hand-over, which strips only the recovery block before these lines.
    kept = [line for line in text.splitlines() if line not in ARCHIVING_OFF]
    archiving_off = "\n".join(ARCHIVING_OFF) + "\n"
    auto.write_text("".join(f"{line}\n" for line in kept) + "\n".join(lines) + "\n" + archiving_off)
    (data_dir / "recovery.signal").write_text("")
    for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
        (data_dir / name).touch()
    uid, gid = postgresql_server.user_ids(user)
    for name in ("postgresql.auto.conf", "recovery.signal", "postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
        os.chown(data_dir / name, uid, gid)
        (data_dir / name).chmod(0o600)


def strip_recovery_settings(text: str) -> str:
    """Return postgresql.auto.conf's text without replica's recovery settings."""
    kept, inside = [], False
    for line in text.splitlines():
        if line == RECOVERY_BEGIN:
            inside = True
        elif line == RECOVERY_END:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept) + ("\n" if kept else "")


class PhysicalPostgresqlStore(PostgresqlStore):
    """A whole PostgreSQL cluster: base backups and the job's WAL archive."""

    def __init__(
        self, config: PostgresqlStoreConfig, job_name: str, destinations: Sequence[DestinationConfig] = ()
    ) -> None:
        super().__init__(config)
        self.job_name = job_name
        # Whose passwords a scratch server's `replica wal-fetch` needs.
        self.destinations = tuple(destinations)
        self.destination: str | None = None
        self.destination_only = False
        # Where a verification's recovery stops (None: the end of the archive); set by `aim_recovery`.
        self.target_time: datetime | None = None
        self._servers: dict[Path, ScratchServer] = {}

    def describe(self) -> str:
        return f"postgresql cluster on {self.config.host}:{self.config.port} (physical)"

    def restoring_from(self, destination: str, *, only: bool = False) -> None:
        self.destination = destination
        self.destination_only = only

    def aim_recovery(self, target_time: datetime | None) -> None:
        """Make the next verification recover to `target_time` (recovery stops before the first transaction
        committed at or after it) instead of the end of the archive."""
        self.target_time = target_time

    def canaries_since(self, since: datetime) -> list[Canary]:
        """Return the canaries of the live database written at or after `since`, oldest first. Raises StoreError
        (SourceUnreachable when the server cannot be reached)."""
        try:
            with self._connect(self.config.database) as connection:
                rows = connection.execute(
                    sql.SQL("SELECT run_id, written_at FROM {} WHERE written_at >= %s ORDER BY written_at").format(
                        sql.Identifier("public", CANARY_NAME)
                    ),
                    (since,),
                ).fetchall()
        except psycopg.Error as error:
            raise StoreError(f"{self.describe()}: cannot read the canaries: {str(error).strip()}") from None
        return [Canary(int(row[0]), row[1]) for row in rows]

    def switch_wal(self) -> bool:
        """Ask the live server to close its current WAL segment, so that it is archived now rather than after
        archive_timeout; return False when the job's user may not (pg_switch_wal needs superuser or a grant)."""
        try:
            with self._connect(self.config.database, autocommit=True) as connection:
                connection.execute("SELECT pg_switch_wal()")
        except (psycopg.Error, StoreError):
            return False
        return True

    # Backup ----------------------------------------------------------------------------------------------------

    def _cluster_facts(self) -> Fingerprint:
        with self._connect(self.config.database) as connection:
            try:
                archive_mode = str(connection.execute("SHOW archive_mode").fetchone()[0])  # type: ignore[index]
                if archive_mode == "off":
                    raise StoreError(
                        f"{self.describe()}: archive_mode is off; a physical backup needs the server's WAL archived "
                        f"(archive_command = 'replica wal-push --job {self.job_name} %p')"
                    )
                row = connection.execute(
                    "SELECT system_identifier::text, current_setting('wal_segment_size'), "
                    "current_setting('server_version_num')::int FROM pg_control_system()"
                ).fetchone()
            except psycopg.Error as error:
                raise StoreError(f"{self.describe()}: cannot read the cluster's settings: {error}") from None
        assert row is not None
        return {
            "mode": "physical",
            "system_identifier": str(row[0]),
            "wal_segment_size": _bytes(str(row[1])),
            "server_version_num": int(row[2]),
            "database": self.config.database,
        }

    @contextlib.contextmanager
    def prepare_backup(self, scratch: Path, job_name: str) -> Iterator[PreparedBackup]:
        facts = self._cluster_facts()
        producer = Command(
            argv=(
                *self._server_argv("pg_basebackup"),
                "--pgdata=-",
                "--format=tar",
                "--wal-method=fetch",
                "--checkpoint=fast",
                "--verbose",
            ),
            environment=self._environment(),
            timeout_seconds=self._timeout(),
            # Waiting for the checkpoint (spread over minutes on a busy server otherwise), pg_basebackup writes nothing.
            stall_seconds=None,
        )
        yield PreparedBackup(
            source=BackupSource(stored_name=f"/{job_name}.base.tar", producer=producer),
            fingerprint=lambda: dict(facts),
            verify_producer=self._verify_basebackup,
            complete_fingerprint=self._complete,
        )

    def _verify_basebackup(self, completed: Completed) -> None:
        if not completed.succeeded:
            reason = completed.stop_reason or f"exited {completed.exit_code}"
            errors = [line for line in completed.stderr_tail.splitlines() if "error:" in line]
            detail = errors[-1].strip() if errors else last_meaningful_line(completed.stderr_tail)
            raise source_error(f"pg_basebackup of {self.describe()} {reason}: {detail}")

    def _complete(self, fingerprint: Fingerprint, completed: Completed) -> Fingerprint:
        return {**fingerprint, **parse_backup_points(completed.stderr_tail), "end_time": utc_now().isoformat()}

    # Targets: data directories ---------------------------------------------------------------------------------

    def prepare_data_dir(self, path: Path) -> None:
        """Create `path` (parents too) as an empty data directory of `server_user`, mode 0700. Raises StoreError when
        that user cannot reach it."""
        try:
            path.mkdir(parents=True, exist_ok=True)
            give_to(path, self.config.server_user)
        except OSError as error:
            raise StoreError(
                f"cannot prepare {path} as a data directory of '{self.config.server_user}': {error.strerror}"
            ) from None
        if not user_can_enter(self.config.server_user, path):
            raise StoreError(
                f"{path} cannot be reached by the operating-system user '{self.config.server_user}' that runs the "
                "restored server: every folder above it needs o+x (traverse)"
            )

    @contextlib.contextmanager
    def scratch_target(self, scratch: Path, label: str) -> Iterator[Target]:
        scratch.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"pgdata-{label}-", dir=scratch))
        try:
            self.prepare_data_dir(path)
            yield Target(description=f"scratch data directory {path}", path=path)
        finally:
            try:
                self.stop_server(path)
            finally:
                shutil.rmtree(path, ignore_errors=True)

    def named_target(self, to: str) -> Target:
        path = Path(to)
        if not path.is_absolute():
            raise UsageError(f"restore target '{to}' must be an absolute path of a data directory")
        return Target(description=f"data directory {path}", path=path)

    def target_has_data(self, target: Target) -> bool:
        assert target.path is not None
        return target.path.exists() and (not target.path.is_dir() or any(target.path.iterdir()))

    @contextlib.contextmanager
    def staging_target(self, final: Target, label: str) -> Iterator[Target]:
        raise UsageError("a physical PostgreSQL job restores with `replica restore JOB --at TIME --to DIRECTORY`")
        yield final  # pragma: no cover

    def restore_method(self, target: Target, stored_name: str) -> RestoreMethod:
        assert target.path is not None
        consumer = Command(
            argv=as_user(("tar", "--extract", "--file=-", f"--directory={target.path}"), self.config.server_user),
            timeout_seconds=self._timeout(),
            stall_seconds=None,
        )
        return RestoreMethod(kind="command", consumer=consumer)

    def restored_location(self, target: Target, stored_name: str) -> Target:
        return target

    def promote(self, staged: Target, final: Target, replaced_suffix: str) -> str | None:
        raise UsageError("a physical PostgreSQL job restores with `replica restore JOB --at TIME --to DIRECTORY`")

    # Recovery --------------------------------------------------------------------------------------------------

    def recover(
        self, data_dir: Path, fingerprint: Fingerprint, target_time: datetime | None, *, removable: bool = False
    ) -> ScratchServer:
        """Configure recovery of a restored data directory, start a scratch server on it and wait until recovery
        finished (target reached and promoted, or every archived WAL file replayed); return the running server.
        `removable`: the directory is a scratch copy of replica's own, which a sweep may delete should replica die.

        Raises StoreError with the server's words when recovery fails (the archive ends before the target).
        """
        write_recovery_settings(
            data_dir,
            self.config.server_user,
            wal_fetch_command(self.job_name, self.destination, only=self.destination_only),
            target_time,
        )
        bin_dir = server_bin_dir(self.config.bin_dir, fingerprint.get("server_version_num"))
        server = ScratchServer(
            data_dir,
            self.config.server_user,
            bin_dir,
            free_port(),
            self.config.user,
            environment=server_environment(self.destinations, os.environ),
            removable=removable,
        )
        self._servers[data_dir] = server
        server.start()
        server.wait_recovered(RECOVERY_TIMEOUT_SECONDS)
        return server

    def replayed_lsn(self, data_dir: Path) -> int:
        """Return the end of the last WAL record the scratch server of `data_dir` replayed during its recovery.
        Raises StoreError when no server runs there or it cannot be asked."""
        server = self._servers.get(data_dir)
        if server is None:
            raise StoreError(f"no scratch server runs on {data_dir}")
        try:
            with server.connect() as connection:
                row = connection.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        except psycopg.Error as error:
            raise StoreError(f"cannot ask the scratch server on {data_dir} how far it replayed: {error}") from None
        if row is None or row[0] is None:
            raise StoreError(f"the scratch server on {data_dir} replayed no WAL")
        return parse_lsn(str(row[0]))

    def stop_server(self, data_dir: Path, *, strict: bool = False) -> None:
        """Stop the scratch server of `data_dir` when one runs and remove its private folder. Raises StoreError
        when it did not stop cleanly only when `strict` (a hand-over); else never raises."""
        server = self._servers.pop(data_dir, None)
        if server is None:
            return
        try:
            server.stop()
        except StoreError:
            if strict:
                raise
        finally:
            server.remove()

    def check_restored(
        self, target: Target, expected: Fingerprint, verification: VerificationConfig
    ) -> list[CheckOutcome]:
        assert target.path is not None
        try:
            server = self.recover(target.path, expected, self.target_time, removable=True)
            with server.connect(self.config.database) as connection:
                found = self._restored_fingerprint(connection, None)
                row = connection.execute(
                    "SELECT system_identifier::text, pg_current_wal_lsn()::text, pg_last_xact_replay_timestamp() "
                    "FROM pg_control_system()"
                ).fetchone()
        except (StoreError, psycopg.Error) as error:
            return [
                CheckOutcome("integrity", False, True, f"recovery of the base backup failed: {error}"),
                CheckOutcome("fingerprint", False, True, "not compared: the cluster could not be recovered"),
            ]
        assert row is not None
        tables = found["tables"]
        rows = sum(int(table["rows"]) for table in tables.values())
        integrity = CheckOutcome(
            "integrity",
            True,
            True,
            f"recovered with every archived WAL file up to {row[1]}; {len(tables)} tables of database "
            f"'{self.config.database}' readable in full ({rows} rows)",
        )
        same_cluster = str(row[0]) == str(expected.get("system_identifier"))
        end_lsn = expected.get("end_lsn")
        reached = end_lsn is None or parse_lsn(str(row[1])) >= parse_lsn(str(end_lsn))
        fingerprint = CheckOutcome(
            "fingerprint",
            same_cluster and reached,
            True,
            f"system identifier {row[0]} "
            + ("matches" if same_cluster else f"differs from the backup's {expected.get('system_identifier')}")
            + f"; replayed to {row[1]}"
            + (f", past the backup's end {end_lsn}" if reached else f", NOT to the backup's end {end_lsn}"),
        )
        return [integrity, fingerprint, self._point_in_time_check(row[2])]

    def _point_in_time_check(self, last_replayed: datetime | None) -> CheckOutcome:
        """Return the `point-in-time` check: recovery stopped at the target and replayed nothing committed after it.

        PostgreSQL (13 and later) refuses to finish a recovery whose WAL ended before its recovery_target_time: a
        server that came up did reach the target. The newest transaction it replayed must be older than the target;
        the canary check then says whether the newest canary before the target is there.
        """
        replayed = last_replayed.isoformat() if last_replayed else "none"
        if self.target_time is None:
            return CheckOutcome(
                "point-in-time",
                True,
                False,
                f"recovered to the end of the archive (newest transaction replayed at {replayed}); no point in time "
                "was chosen (the job writes no canary, or its backup ended moments ago)",
            )
        beyond = last_replayed is not None and last_replayed >= self.target_time
        return CheckOutcome(
            "point-in-time",
            not beyond,
            True,
            f"recovered to {self.target_time.isoformat()}: newest transaction replayed at {replayed}"
            + (" — AFTER the target" if beyond else ", before the target"),
        )

    def read_canary(self, location: Target) -> Canary | None:
        assert location.path is not None
        server = self._servers.get(location.path)
        if server is None:
            return None
        try:
            with server.connect(self.config.database) as connection:
                row = connection.execute(
                    sql.SQL("SELECT run_id, written_at FROM {} ORDER BY written_at DESC LIMIT 1").format(
                        sql.Identifier("public", CANARY_NAME)
                    )
                ).fetchone()
        except psycopg.Error:
            return None
        return Canary(int(row[0]), row[1]) if row else None


def _bytes(setting: str) -> int:
    """Return a size setting as PostgreSQL shows it (`16MB`, `1MB`, or bytes) in bytes."""
    match = re.fullmatch(r"(\d+)\s*(kB|MB|GB)?", setting.strip())
    if match is None:
        raise StoreError(f"unexpected wal_segment_size '{setting}'")
    unit = {"kB": 1024, "MB": 1024**2, "GB": 1024**3}.get(match.group(2) or "", 1)
    return int(match.group(1)) * unit
