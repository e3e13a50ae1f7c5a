"""The process chokepoint's pure parts: loggable descriptions and the explicit child environment."""

from __future__ import annotations

import pytest

from replica.execute import Command, build_environment, describe


def test_describe_shows_environment_by_name_only() -> None:
    command = Command(
        argv=("restic", "--json", "snapshots"),
        environment={"RESTIC_PASSWORD": "hunter2", "AWS_SECRET_ACCESS_KEY": "s3cr3t-key"},
    )

    line = describe(command)

    assert line == "AWS_SECRET_ACCESS_KEY=*** RESTIC_PASSWORD=*** restic --json snapshots"
    assert "hunter2" not in line
    assert "s3cr3t-key" not in line


def test_build_environment_does_not_leak_the_parents_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_TEST_LEAK", "parent-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-aws-secret")
    monkeypatch.setenv("HOME", "/home/replica")

    environment = build_environment({"RESTIC_PASSWORD": "child-only"})

    assert "REPLICA_TEST_LEAK" not in environment
    assert "AWS_SECRET_ACCESS_KEY" not in environment
    assert environment["HOME"] == "/home/replica"
    assert environment["RESTIC_PASSWORD"] == "child-only"


def test_build_environment_supplies_path_and_lang_when_the_parent_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATH", raising=False)
    monkeypatch.delenv("LANG", raising=False)

    environment = build_environment({})

    assert environment["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert environment["LANG"] == "C.UTF-8"
