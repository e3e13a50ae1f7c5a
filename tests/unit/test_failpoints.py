"""Failpoints: every one placed in the code is documented, and only the environment variable arms them."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from pathlib import Path

import replica
from replica import failpoints

SOURCE = Path(replica.__file__).parent
README = Path(__file__).resolve().parents[2] / "README.md"
PROBE = "from replica.failpoints import failpoint; failpoint('prune-after-forget'); print('alive')"


def _placed_failpoints() -> list[str]:
    names = []
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "failpoint":
                assert isinstance(node.args[0], ast.Constant), f"{path}: a failpoint's name must be a literal"
                names.append(str(node.args[0].value))
    return names


def test_every_failpoint_in_the_code_is_known_documented_and_every_known_one_is_placed() -> None:
    placed = _placed_failpoints()
    assert set(placed) == set(failpoints.FAILPOINTS)
    readme = README.read_text()
    for name in failpoints.FAILPOINTS:
        assert f"`{name}`" in (failpoints.__doc__ or ""), name
        assert f"`{name}`" in readme, name


def _probe(environment_value: str | None) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin"}
    if environment_value is not None:
        environment[failpoints.ENVIRONMENT_VARIABLE] = environment_value
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, timeout=30, check=False
    )


def test_an_armed_failpoint_kills_the_process_with_sigkill() -> None:
    # GIVEN/WHEN a process reaches a failpoint named (among others, with spaces) in REPLICA_FAILPOINTS
    result = _probe("backup-after-snapshot, prune-after-forget")

    # THEN it died of SIGKILL there, printing nothing after it
    assert result.returncode == -signal.SIGKILL
    assert "alive" not in result.stdout


def test_an_unarmed_failpoint_does_nothing() -> None:
    # GIVEN/WHEN the variable is missing, or names other failpoints only
    for value in (None, "", "backup-after-snapshot"):
        result = _probe(value)

        # THEN the process goes on
        assert (result.returncode, result.stdout.strip()) == (0, "alive"), value
