"""An HTTP reverse proxy on 127.0.0.1 in front of an S3 endpoint (moto) that injects faults on command.

restic and boto3 talk to `proxy.endpoint_url` as they would to the endpoint itself: every request is forwarded
as it came (method, path, query, all headers including Host and the signature, its body read whole first: restic's
packs are a few MiB, and a whole body can be sent again on a fresh upstream connection), and every answer comes
back as it was, streamed, until a test injects a `Fault`. Faults are switched at runtime, from the test's
thread, while processes keep running through the proxy:

    proxy.inject(Fault.slow_down())                       # 503 SlowDown to every request
    proxy.inject(Fault.slow_down(first=3))                # ... to the next 3 requests only (a transient burst)
    proxy.inject(Fault.hang(methods={"GET"}))             # accept, read the request, never answer
    proxy.inject(Fault.truncate(key_contains="/data/"))   # full Content-Length, half the body, then close
    proxy.inject(Fault.flip(key_contains="/data/"))       # one byte of each matching GET body inverted
    proxy.clear()                                         # back to transparent; hung requests are released

Each fault counts the requests it served (`fault.served`); `proxy.faults_served` totals every fault since start.
moto itself has no fault injection, and a proxy keeps the faults out of the server whose data the test checks.
"""

from __future__ import annotations

import email.utils
import http.client
import itertools
import threading
import time
import urllib.parse
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

FaultKind = Literal["status", "hang", "truncate", "flip"]
# Headers that describe one connection, not the message: never forwarded (RFC 9110 7.6.1). Transfer-Encoding is
# re-done by each side; Expect is answered by the proxy's own server (100 Continue) before the body is read.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}
)
PIECE_BYTES = 64 * 1024
# How long a hung request is held at most when nobody clears the fault (the proxy's stop releases it earlier).
HANG_LIMIT_SECONDS = 120.0
UPSTREAM_TIMEOUT_SECONDS = 60.0


@dataclass
class Fault:
    """One fault and which requests it applies to; `served` counts the requests it answered so far.

    kind: `status` answers `status` with an S3 XML error body (`code`, `message`) and a Date header
    `clock_offset_seconds` away from this host's clock; `hang` never answers; `truncate` forwards the request and
    sends the answer's headers with only `keep_fraction` of its body, then closes the connection; `flip` forwards
    and inverts one byte in the middle of each answer body (a transit bit flip; GET answers with a body only).
    methods / key_contains / first: apply only to these methods, to paths holding this substring (decoded, without
    the query), to the first N matching requests (then the fault is spent and requests pass again).
    """

    kind: FaultKind
    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    methods: Collection[str] | None = None
    key_contains: str | None = None
    first: int | None = None
    clock_offset_seconds: float = 0.0
    keep_fraction: float = 0.5
    served: int = field(default=0, init=False)
    _released: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    @classmethod
    def slow_down(cls, **scope: Any) -> Fault:
        """Return a 503 SlowDown fault (S3 throttling)."""
        return cls("status", **scope)

    @classmethod
    def internal_error(cls, **scope: Any) -> Fault:
        """Return a 500 InternalError fault."""
        return cls("status", status=500, code="InternalError", message="We encountered an internal error.", **scope)

    @classmethod
    def access_denied(cls, **scope: Any) -> Fault:
        """Return a 403 AccessDenied fault (credentials refused, a bucket policy that denies)."""
        return cls("status", status=403, code="AccessDenied", message="Access Denied", **scope)

    @classmethod
    def clock_skew(cls, offset_seconds: float = 3600.0, **scope: Any) -> Fault:
        """Return a 403 RequestTimeTooSkewed fault from a server whose clock is `offset_seconds` from ours."""
        return cls(
            "status",
            status=403,
            code="RequestTimeTooSkewed",
            message="The difference between the request time and the current time is too large.",
            clock_offset_seconds=offset_seconds,
            **scope,
        )

    @classmethod
    def hang(cls, **scope: Any) -> Fault:
        """Return a fault that accepts each request and never answers it (until cleared)."""
        return cls("hang", **scope)

    @classmethod
    def truncate(cls, keep_fraction: float = 0.5, **scope: Any) -> Fault:
        """Return a fault that cuts answer bodies to `keep_fraction` of their announced length."""
        return cls("truncate", keep_fraction=keep_fraction, **scope)

    @classmethod
    def flip(cls, **scope: Any) -> Fault:
        """Return a fault that inverts one byte in the middle of each GET answer body."""
        return cls("flip", methods=frozenset({"GET"}), **scope)

    def __post_init__(self) -> None:
        if self.methods is not None:
            self.methods = frozenset(method.upper() for method in self.methods)

    def matches(self, method: str, key: str) -> bool:
        """Return True when this fault applies to a request (ignoring whether it is spent)."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.key_contains is None or self.key_contains in key

    @property
    def spent(self) -> bool:
        """Return True once a fault limited to the first N requests served all N."""
        return self.first is not None and self.served >= self.first


@dataclass(frozen=True)
class SeenRequest:
    """One request the proxy received, and the kind of fault that answered it (None: forwarded untouched)."""

    method: str
    key: str
    fault: FaultKind | None


class FaultProxy:
    """A threaded reverse proxy to `upstream_url` (http://host:port) on a free port of 127.0.0.1."""

    def __init__(self, upstream_url: str) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme != "http" or parsed.hostname is None or parsed.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream_url!r}")
        self.upstream = (parsed.hostname, parsed.port)
        self.requests: list[SeenRequest] = []
        self._faults: list[Fault] = []
        self._all_faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint_url(self) -> str:
        """Return the URL clients use instead of the upstream's, `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def faults_served(self) -> int:
        """Return how many requests any fault answered since the proxy started (cleared faults included)."""
        with self._lock:
            return sum(fault.served for fault in self._all_faults)

    def inject(self, fault: Fault) -> Fault:
        """Activate a fault (after those already active: the first one that matches a request answers it) and
        return it, so the test can read its `served` count."""
        with self._lock:
            self._faults.append(fault)
            self._all_faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault: the proxy is transparent again, and requests held by a hang are let go (their
        connection is closed without an answer)."""
        with self._lock:
            cleared, self._faults = self._faults, []
        for fault in cleared:
            fault._released.set()

    def start(self) -> None:
        """Start serving in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Release hung requests and stop serving."""
        self.clear()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _take_fault(self, method: str, key: str) -> Fault | None:
        """Return the fault that answers this request (counted as served), or None to forward it untouched."""
        with self._lock:
            fault = next((f for f in self._faults if not f.spent and f.matches(method, key)), None)
            if fault is not None:
                fault.served += 1
            self.requests.append(SeenRequest(method, key, fault.kind if fault else None))
            return fault

    def _next_request_id(self) -> str:
        return f"FAULTPROXY{next(self._ids):08d}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(ProxyHandler):
            owner = proxy

        return Handler


class ProxyHandler(BaseHTTPRequestHandler):
    """One client connection: each request is answered by a fault or forwarded over one upstream connection."""

    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect; also answers Expect: 100-continue
    owner: FaultProxy
    _upstream: http.client.HTTPConnection | None = None

    def handle_one_request(self) -> None:
        """Handle one request; on the way out of a closed connection, close the upstream connection too."""
        try:
            super().handle_one_request()
        finally:
            if self.close_connection and self._upstream is not None:
                self._upstream.close()
                self._upstream = None

    def _handle(self) -> None:
        key = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        fault = self.owner._take_fault(self.command, key)
        if fault is not None and fault.kind == "hang":
            fault._released.wait(HANG_LIMIT_SECONDS)
            self.close_connection = True
            return
        body = self._read_request_body()
        if fault is not None and fault.kind == "status":
            self._answer_error(fault)
            return
        try:
            response = self._forward(body)
        except (OSError, http.client.HTTPException) as error:
            self._send_plain(502, f"fault proxy: upstream failed: {error}".encode())
            return
        try:
            self._relay(response, fault)
        finally:
            response.close()
            if self._upstream is not None and (response.will_close or self.close_connection):
                self._upstream.close()
                self._upstream = None

    def _relay(self, response: http.client.HTTPResponse, fault: Fault | None) -> None:
        """Send the upstream's answer on, streamed, with the fault's damage to the body if any."""
        length = response.getheader("Content-Length")
        chunked = length is None and self.command != "HEAD" and response.status not in (204, 304)
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        total = int(length) if length is not None else None
        # Truncation needs a known length to promise and break; an answer without one is sent whole.
        cut_at = int(total * fault.keep_fraction) if fault and fault.kind == "truncate" and total else None
        flip_at = (total // 2 if total else 0) if fault and fault.kind == "flip" else None
        sent = 0
        while piece := response.read(PIECE_BYTES):
            if flip_at is not None and sent <= flip_at < sent + len(piece):
                index = flip_at - sent
                piece = piece[:index] + bytes([piece[index] ^ 0xFF]) + piece[index + 1 :]
            if cut_at is not None and sent + len(piece) >= cut_at:
                self.wfile.write(piece[: cut_at - sent])
                self.wfile.flush()
                self.close_connection = True  # the rest of the announced body never comes
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 (http.server's names)

    def _read_request_body(self) -> bytes:
        """Return the request body (de-chunked: it is forwarded with a Content-Length)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"".join(self._read_chunks())
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _forward(self, body: bytes) -> http.client.HTTPResponse:
        """Send the request upstream as it came and return the answer (its body not read yet). Retries once on a
        fresh connection when the kept-alive one turned out closed."""
        for attempt in (1, 2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=UPSTREAM_TIMEOUT_SECONDS)
            try:
                return self._exchange(self._upstream, body)
            except (ConnectionError, http.client.RemoteDisconnected):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _exchange(self, upstream: http.client.HTTPConnection, body: bytes) -> http.client.HTTPResponse:
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                upstream.putheader(name, value)
        if body or self.command in ("PUT", "POST"):
            upstream.putheader("Content-Length", str(len(body)))
        upstream.endheaders(body if body else None)
        return upstream.getresponse()

    def _answer_error(self, fault: Fault) -> None:
        now = time.time() + fault.clock_offset_seconds
        request_id = self.owner._next_request_id()
        extra = ""
        if fault.code == "RequestTimeTooSkewed":
            extra = (
                f"<RequestTime>{email.utils.formatdate(time.time(), usegmt=True)}</RequestTime>"
                f"<ServerTime>{email.utils.formatdate(now, usegmt=True)}</ServerTime>"
                "<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>"
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>{extra}"
            f"<RequestId>{request_id}</RequestId><HostId>faultproxy</HostId></Error>"
        ).encode()
        self.send_response_only(fault.status)
        self.send_header("Date", email.utils.formatdate(now, usegmt=True))
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_plain(self, status: int, text: bytes) -> None:
        self.send_response_only(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test output is no place for an access log
