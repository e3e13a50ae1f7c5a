"""Exit codes in one table, and the command line's argument parsing (no command is run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from replica import errors
from replica.actions.point_in_time import describe_utc
from replica.cli.exit_codes import exit_code_for
from replica.cli.main import build_parser


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.ConfigError(["jobs/billing.yaml:7: at 'policy': missing"]), 2),
        (errors.UsageError("no job named 'x'"), 2),
        (errors.StorageUnreachable("connection refused"), 3),
        (errors.ResticTimeout("primary", "no result within 300s"), 3),
        (errors.RepositoryMissing("primary", ""), 4),
        (errors.BucketMissing("no bucket"), 4),
        (errors.WrongPassword("primary", ""), 5),
        (errors.StorageAccessDenied("denied"), 5),
        (errors.RepositoryLocked("primary", ""), 6),
        (errors.VerificationFailed("fingerprint failed"), 1),
        (errors.RepositoryCorrupt("primary", ""), 1),
        (KeyboardInterrupt(), 130),
        (RuntimeError("a bug"), 1),
    ],
)
def test_exit_code_for_each_error_class(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["--help"])

    assert raised.value.code == 0
    out = capsys.readouterr().out
    for command in ("init", "backup", "verify", "restore", "status", "reports", "demo", "audit"):
        assert command in out


def test_restore_requires_to(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["restore", "billing"])

    assert raised.value.code == 2
    assert "--to" in capsys.readouterr().err


def test_restore_snapshot_and_at_are_mutually_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["restore", "billing", "--to", "/srv/restore", "--snapshot", "adfb8880", "--at", "2026-11-26T14:00:00Z"]

    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(argv)

    assert raised.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_restore_at_keeps_the_zone_it_names() -> None:
    arguments = build_parser().parse_args(
        ["restore", "billing", "--to", "restored", "--at", "2026-11-26T16:00:00+02:00"]
    )

    assert arguments.at == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    assert arguments.snapshot is None
    assert (arguments.job, arguments.to, arguments.force, arguments.dry_run) == ("billing", "restored", False, False)
    zulu = build_parser().parse_args(["restore", "billing", "--to", "restored", "--at", "2026-11-26T14:00:00Z"])
    assert zulu.at == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def test_restore_at_without_zone_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # A DBA's local time read as UTC would restore to the wrong moment: the zone must be named.
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["restore", "billing", "--to", "restored", "--at", "2026-11-26T14:00:00"])

    assert raised.value.code == 2
    assert "names no time zone: add Z (UTC) or the offset" in capsys.readouterr().err


def test_other_commands_still_read_a_time_without_zone_as_utc() -> None:
    arguments = build_parser().parse_args(["audit", "log", "--since", "2026-11-26T14:00:00"])

    assert arguments.since == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def test_a_restore_plan_shows_its_point_in_time_in_utc() -> None:
    assert describe_utc(datetime(2026, 11, 26, 16, 0, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-11-26T14:00:00Z (given as 2026-11-26T16:00:00+02:00)"
    )
    assert describe_utc(datetime(2026, 11, 26, 14, 0, tzinfo=UTC)) == "2026-11-26T14:00:00Z"


def test_restore_at_rejects_a_time_that_is_not_iso_8601(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["restore", "billing", "--to", "x", "--at", "yesterday"])

    assert "'yesterday' is not an ISO 8601 time" in capsys.readouterr().err


def test_audit_commands_parse_their_options() -> None:
    arguments = build_parser().parse_args(
        ["audit", "export", "--format", "csv", "--since", "2026-11-01T00:00:00Z", "-o", "/tmp/pack.csv"]
    )
    assert (arguments.audit_action, arguments.format, arguments.since.isoformat()) == (
        "export",
        "csv",
        "2026-11-01T00:00:00+00:00",
    )
    verify = build_parser().parse_args(["audit", "verify", "--anchor", "12:" + "a" * 64, "--anchor", "13:" + "b" * 64])
    assert verify.anchor == ["12:" + "a" * 64, "13:" + "b" * 64]


def test_audit_export_refuses_an_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["audit", "export", "--format", "pdf", "-o", "x"])
    assert raised.value.code == 2
    assert "invalid choice: 'pdf'" in capsys.readouterr().err
