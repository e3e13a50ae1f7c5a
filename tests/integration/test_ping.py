"""Dead-man pings against a real HTTP server on 127.0.0.1: Healthchecks.io's URL conventions, retries on server
errors, failing soft when nobody answers, and the check's secret path never logged."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from replica.notify.ping import MESSAGE_LIMIT_BYTES, event_url, send_ping

CHECK = "/5f1c0f6e-8d1e-4f4e-9a53-2b8c7c2f1e11"


@dataclass
class PingServer:
    """A stand-in for Healthchecks.io: records every request, answers with `statuses` in turn (then 200)."""

    url: str
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours proxy variables; the pings must reach the local server directly.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ping_server() -> Iterator[PingServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            recorder.requests.append(("POST", self.path, body))
            status = recorder.statuses.pop(0) if recorder.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder = PingServer(url=f"http://127.0.0.1:{server.server_address[1]}{CHECK}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()
    thread.join(5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("event", "path"),
    [("start", f"{CHECK}/start"), ("success", CHECK), ("failure", f"{CHECK}/fail")],
)
def test_each_event_posts_its_message_to_the_healthchecks_path(ping_server: PingServer, event: str, path: str) -> None:
    assert send_ping(ping_server.url, event, message=f"backup of billing: {event}") is True
    assert ping_server.requests == [("POST", path, f"backup of billing: {event}".encode())]


def test_server_errors_are_retried_until_accepted(ping_server: PingServer) -> None:
    ping_server.statuses = [500, 500]
    assert send_ping(ping_server.url, "success", attempts=3) is True
    assert [path for _, path, _ in ping_server.requests] == [CHECK, CHECK, CHECK]


def test_attempts_are_bounded(ping_server: PingServer, caplog: pytest.LogCaptureFixture) -> None:
    ping_server.statuses = [503, 503, 503, 503]
    with caplog.at_level(logging.WARNING, logger="replica.notify"):
        assert send_ping(ping_server.url, "failure", attempts=2) is False
    assert len(ping_server.requests) == 2
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "HTTP 503" in caplog.records[0].getMessage()


def test_a_client_error_is_not_retried(ping_server: PingServer) -> None:
    ping_server.statuses = [404]
    assert send_ping(ping_server.url, "success") is False
    assert len(ping_server.requests) == 1


def test_an_unreachable_service_fails_soft_and_quickly(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}{CHECK}"
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="replica.notify"):
        assert send_ping(url, "start", timeout_seconds=2.0) is False
    assert time.monotonic() - started < 5.0
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "127.0.0.1" in warnings[0].getMessage()


def test_the_secret_path_never_reaches_the_log(ping_server: PingServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = CHECK.strip("/")
    ping_server.statuses = [500, 500, 500]
    unreachable = f"http://127.0.0.1:{free_port()}{CHECK}?create=1"
    with caplog.at_level(logging.DEBUG):
        send_ping(ping_server.url, "success", message="done")
        send_ping(ping_server.url, "failure", message="broken")
        send_ping(unreachable, "start")
        send_ping(f"http://127.0.0.1:not-a-port{CHECK}", "start")
        send_ping(ping_server.url, "finished")
    assert caplog.records, "failures must be logged"
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(record.args)


def test_an_unknown_event_sends_nothing(ping_server: PingServer) -> None:
    assert send_ping(ping_server.url, "finished") is False
    assert ping_server.requests == []


def test_the_body_is_cut_to_the_first_ten_kilobytes_at_a_character_boundary(ping_server: PingServer) -> None:
    assert send_ping(ping_server.url, "failure", message="é" * MESSAGE_LIMIT_BYTES) is True
    body = ping_server.requests[0][2]
    assert MESSAGE_LIMIT_BYTES - 1 <= len(body) <= MESSAGE_LIMIT_BYTES
    assert body.decode("utf-8") == "é" * (len(body) // 2)


def test_event_urls_keep_a_query_string_and_drop_a_trailing_slash() -> None:
    assert event_url("https://hc-ping.com/abc/?create=1", "start") == "https://hc-ping.com/abc/start?create=1"
    assert event_url("https://hc-ping.com/abc", "failure") == "https://hc-ping.com/abc/fail"
    assert event_url("https://hc-ping.com/abc/", "success") == "https://hc-ping.com/abc"
