"""The benchmark scripts stay runnable: each is listed by `run.py`, imports, and takes `--smoke`.

The benchmarks themselves are run by hand (benchmarks/README.md); this only catches a script broken by a change to
replica's code (an import or a renamed function) before someone needs its figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SUPPORT_MODULES = {"harness", "replica_probe", "run"}


def scenario_names() -> list[str]:
    """Return the scenario scripts in the folder (every script but the shared modules)."""
    return sorted(path.stem for path in BENCHMARKS.glob("*.py") if path.stem not in SUPPORT_MODULES)


def test_run_lists_every_scenario_script() -> None:
    # GIVEN the scripts in benchmarks/ WHEN run.py lists the scenarios THEN each one is there, and nothing else
    listed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py")], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # The listing indents each scenario by two spaces (the usage lines above it by four).
    names = [line.split()[0] for line in listed.splitlines() if line.startswith("  ") and line[2] != " "]
    assert sorted(names) == scenario_names()


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_script_imports_and_offers_a_smoke_run(name: str) -> None:
    # GIVEN a scenario script WHEN asked for its options THEN it imports replica's code and offers --smoke
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--smoke" in completed.stdout
