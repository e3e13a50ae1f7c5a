"""The web console under test: the real `replica serve` as a process of a deployment, and its tokens.

Tokens are secrets: each one a test creates joins the deployment's canaries, so teardown fails if a token shows
up in a log line, the catalog, an export or a page saved to disk.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e.conftest import Deployment

START_SECONDS = 30
STOP_SECONDS = 30


def free_port() -> int:
    """Return a TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class WebServer:
    """A running `replica serve`: its base URL, process and log."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, token: str | None = None) -> httpx.Client:
        """Return an HTTP client for the API, sending `token` as a Bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> int:
        """SIGTERM the server, wait for it and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def create_token(deployment: Deployment, name: str, role: str) -> str:
    """Create an API token with the real CLI and return it (its output is not kept: it holds the token)."""
    result = subprocess.run(
        [sys.executable, "-m", "replica", "token", "create", "--name", name, "--role", role],
        env=deployment.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=deployment.root,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    deployment.extra_secrets.append(token)
    return token


@contextmanager
def running_server(deployment: Deployment, **environment: str) -> Iterator[WebServer]:
    """Start `replica serve` for a deployment on a free port, wait until /healthz answers, stop it afterwards."""
    port = free_port()
    log_path = deployment.root / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "replica", "serve", "--port", str(port)],
            env=deployment.environment(**environment),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=deployment.root,
        )
    server = WebServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert process.poll() is None, f"replica serve exited {process.returncode}:\n{server.log()}"
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"replica serve did not answer in {START_SECONDS}s:\n{server.log()}"
            time.sleep(0.1)
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"replica serve exited {code}:\n{server.log()}"
