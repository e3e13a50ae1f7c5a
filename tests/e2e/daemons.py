"""`replica daemon` as a real process of its own, for the e2e tests of the daemon."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Deployment

DAEMON_STOP_SECONDS = 30


def wait_for(condition: Callable[[], Any], timeout: float, what: str, details: Callable[[], str] = lambda: "") -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` (and `details()`) after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{details()}")


class DaemonProcess:
    """`replica daemon` in its own process, with its log in a file."""

    def __init__(self, deployment: Deployment, log: Path, *arguments: str, env: dict[str, str] | None = None):
        self.log = log
        deployment.log_files.append(log)  # swept for secrets at teardown
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "replica", "daemon", *arguments],
                env=env or deployment.environment(),
                stdout=output,
                stderr=output,
                cwd=deployment.root,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = DAEMON_STOP_SECONDS) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
