"""The metrics server on a real socket: `/metrics` in Prometheus' text format, `/healthz` healthy and unhealthy,
404 for anything else, and the port released on stop."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from replica.daemon.metrics import DaemonMetrics, MetricsServer

TIMEOUT_SECONDS = 5.0


class Health:
    def __init__(self) -> None:
        self.healthy = True

    def __call__(self) -> bool:
        return self.healthy


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def server(health: Health) -> Iterator[MetricsServer]:
    metrics = DaemonMetrics()
    metrics.observe_run("billing", "backup", "succeeded", 12.0, bytes_added=2048)
    metrics.tick()
    server = MetricsServer(metrics, "127.0.0.1", 0, health)
    server.start()
    yield server
    server.stop()


def fetch(server: MetricsServer, path: str) -> tuple[int, str, bytes]:
    """Return status, content type and body of GET `path` (error statuses included)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=TIMEOUT_SECONDS) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_metrics_are_served_in_the_text_format(server: MetricsServer) -> None:
    status, content_type, body = fetch(server, "/metrics")

    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert samples[("replica_daemon_up", ())] == 1.0
    assert samples[("replica_runs_total", (("job", "billing"), ("kind", "backup"), ("outcome", "succeeded")))] == 1
    assert samples[("replica_backup_bytes_added_total", (("job", "billing"),))] == 2048
    assert ("replica_daemon_last_tick_timestamp_seconds", ()) in samples


def test_healthz_follows_the_daemon_health(server: MetricsServer, health: Health) -> None:
    assert fetch(server, "/healthz")[::2] == (200, b"ok")
    health.healthy = False
    assert fetch(server, "/healthz")[::2] == (503, b"unhealthy")


def test_a_failing_health_check_is_unhealthy_not_a_crash(health: Health) -> None:
    def broken() -> bool:
        raise RuntimeError("scheduler gone")

    server = MetricsServer(DaemonMetrics(), "127.0.0.1", 0, broken)
    server.start()
    try:
        assert fetch(server, "/healthz")[::2] == (503, b"unhealthy")
        assert fetch(server, "/metrics")[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/", "/metrics/extra", "/health"])
def test_other_paths_are_not_found(server: MetricsServer, path: str) -> None:
    assert fetch(server, path)[0] == 404


def test_a_query_string_is_ignored(server: MetricsServer) -> None:
    assert fetch(server, "/metrics?name[]=replica_daemon_up")[0] == 200


def test_stop_releases_the_port(health: Health) -> None:
    first = MetricsServer(DaemonMetrics(), "127.0.0.1", 0, health)
    first.start()
    port = first.port
    first.stop()

    again = MetricsServer(DaemonMetrics(), "127.0.0.1", port, health)
    again.start()
    try:
        assert again.port == port
        assert fetch(again, "/healthz")[0] == 200
    finally:
        again.stop()


def test_the_port_is_unknown_before_start(health: Health) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = MetricsServer(DaemonMetrics(), "127.0.0.1", 0, health).port
