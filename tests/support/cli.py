"""The real command line, run as a user runs it: `python -m replica` in a folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TIMEOUT_SECONDS = 60


def run_replica(root: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Return the finished `replica ARGUMENTS` run in `root`, its home, state, jobs and policies folders there, with
    only PATH and `environment` besides (a non-zero exit is returned, not raised). Raises subprocess.TimeoutExpired
    past TIMEOUT_SECONDS."""
    return subprocess.run(
        [sys.executable, "-m", "replica", *arguments],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "REPLICA_STATE_DIR": str(root / "state"),
            "REPLICA_JOBS_DIR": str(root / "jobs"),
            "REPLICA_POLICIES_DIR": str(root / "policies"),
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
        cwd=root,
    )
