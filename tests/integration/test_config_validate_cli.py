"""`replica config validate` through the real command line: an unsafe configuration is one line with file:line, and
exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.cli import run_replica


def validate(root: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    return run_replica(root, "config", "validate", **environment)


def test_an_rpo_shorter_than_the_backup_schedule_is_one_line_with_file_and_line_and_exit_2(tmp_path: Path) -> None:
    # GIVEN a job backed up every 6 hours under a policy promising at most 1 hour of loss
    (tmp_path / "jobs").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "tier1.yaml").write_text("name: tier1\nrpo: 1h\nrto: 15m\n")
    job = tmp_path / "jobs" / "billing.yaml"
    job.write_text(
        "name: billing\n"
        f"store: {{kind: directory, path: {tmp_path}}}\n"
        "destinations:\n"
        "  - {name: a, bucket: bucket-a}\n"
        "  - {name: b, bucket: bucket-b}\n"
        "policy: tier1\n"
        "schedule:\n"
        "  backup: 0 */6 * * *\n"
    )
    # WHEN the configuration is validated
    result = validate(tmp_path)
    # THEN one line says where and why, and the exit code is 2 (configuration)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr == (
        f"replica: error: {job}:8: at 'schedule.backup': backups on '0 */6 * * *' can be 6h apart, longer than "
        f"the rpo 1h of policy 'tier1' ({tmp_path / 'policies' / 'tier1.yaml'}:2)\n"
    )


def test_a_plain_http_endpoint_in_the_environment_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = validate(tmp_path, REPLICA_S3_ENDPOINT_URL="http://minio.internal:9000")

    assert result.returncode == 2, result
    assert result.stderr == (
        "replica: error: environment variable REPLICA_S3_ENDPOINT_URL: at 's3_endpoint_url': plain http:// to "
        "'minio.internal' would cross the network unencrypted; use https:// (plain http:// is allowed only to "
        "localhost, 127.0.0.0/8 and ::1)\n"
    )
