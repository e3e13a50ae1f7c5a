"""`restic check`'s outcome read from a restic that prints what 0.14 prints (a fake: a network retry and real damage
in one run cannot be arranged on demand with the real one)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from replica.restic.check import check_repository
from replica.restic.command import Repository, Restic

PACK = "94f0ed6e06f6c8f1a4e5b0f0b2a7b6fd0b4bbf8d5b0cf0f7d3a5bb5f7c9f2e1a"


def test_damage_found_after_a_retried_network_error_is_damage_not_an_unreachable_endpoint(tmp_path: Path) -> None:
    # GIVEN a check that logged a retried "connection reset" on its way, then found a pack that does not match
    script = tmp_path / "restic"
    script.write_text(
        "#!/bin/sh\n"
        "echo 'Load(<data/94f0ed6e06>, 0, 0) returned error, retrying after 552ms: "
        "read: connection reset by peer' >&2\n"
        f"echo 'Pack ID does not match, want {PACK[:8]}, got 0badc0de' >&2\n"
        "echo 'Fatal: repository contains errors' >&2\n"
        "exit 1\n"
    )
    script.chmod(0o755)
    repository = Repository("primary", "s3:http://127.0.0.1:1/bucket/prefix", SecretStr("unused"))

    # WHEN it runs
    report = check_repository(Restic(binary=str(script)), repository, read_data_subset="100%")

    # THEN it is a failed check naming the damage and its pack (for the at-rest confirmation), not an exception
    # calling the endpoint unreachable (which would skip the confirmation and the report)
    assert not report.passed
    assert "repository contains errors" in report.detail or "does not match" in report.detail
    assert any(PACK[:8] in suspect for suspect in report.suspects), report.suspects
