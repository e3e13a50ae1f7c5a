"""Real receivers of notifications on 127.0.0.1: an HTTP server for webhooks, Slack and PagerDuty, and an SMTP
server (aiosmtpd) with STARTTLS or implicit TLS behind a private CA, and AUTH LOGIN/PLAIN.

Both are context managers recording what they received, so integration and e2e tests assert on what really
crossed the wire rather than on what replica meant to send.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# How long a "hanging" receiver keeps a request unanswered at most (it is released earlier when it stops).
HANG_SECONDS = 30.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)


class WebhookReceiver:
    """An HTTP server recording every POST. It answers `status`/`answer`, or first the statuses queued with
    `respond_with`; with `hang` set it keeps every request unanswered (until it stops), to test timeouts."""

    def __init__(self, status: int = 200, answer: bytes = b"ok") -> None:
        self.status = status
        self.answer = answer
        self.hang = False
        self.requests: list[ReceivedRequest] = []
        self._queued: list[int] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """Return the base URL, `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url_for(self, path: str) -> str:
        """Return the URL of `path` (starting with /) on this receiver."""
        return self.url + path

    def respond_with(self, *statuses: int) -> None:
        """Answer the next requests with `statuses`, in order, then with the default status again."""
        with self._lock:
            self._queued.extend(statuses)

    def _next_status(self) -> int:
        with self._lock:
            return self._queued.pop(0) if self._queued else self.status

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._record(ReceivedRequest("POST", self.path, dict(self.headers.items()), body))
                if receiver.hang:
                    receiver._release.wait(HANG_SECONDS)
                    self.close_connection = True
                    return
                status = receiver._next_status()
                answer = receiver.answer if 200 <= status < 300 else b"server_said_no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test output is no place for an access log

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class PrivateCertificates:
    """A private CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files in `folder`."""

    folder: Path
    ca_file: Path = field(init=False)
    certificate_file: Path = field(init=False)
    key_file: Path = field(init=False)

    def __post_init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "replica test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = self.folder / "ca.pem"
        self.certificate_file = self.folder / "server.pem"
        self.key_file = self.folder / "server.key"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def server_context(self) -> ssl.SSLContext:
        """Return a server-side TLS context presenting the server certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificate_file, self.key_file)
        return context


@dataclass(frozen=True)
class ReceivedMail:
    """One message accepted by the SMTP receiver, with who authenticated and how."""

    mail_from: str
    recipients: tuple[str, ...]
    message: EmailMessage
    login: str | None
    mechanism: str | None


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 requiring STARTTLS (or speaking implicit TLS with `implicit_tls`) with a
    certificate from a private CA (`ca_file`), and AUTH LOGIN/PLAIN as `username`/`password` only over TLS."""

    def __init__(
        self,
        *,
        username: str = "replica",
        password: str = "smtp-Pa55-Xq9",
        implicit_tls: bool = False,
        mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN"),
    ) -> None:
        self.username = username
        self.password = password
        self.host = "127.0.0.1"
        self.port = free_port()
        self.mails: list[ReceivedMail] = []
        self.failed_logins = 0
        self._folder = tempfile.TemporaryDirectory(prefix="replica-smtp-")
        self.certificates = PrivateCertificates(Path(self._folder.name))
        self.ca_file = self.certificates.ca_file
        context = self.certificates.server_context()
        tls: dict[str, Any] = {"ssl_context": context} if implicit_tls else {"tls_context": context}
        self._controller = Controller(
            self,
            hostname=self.host,
            port=self.port,
            require_starttls=not implicit_tls,
            # aiosmtpd counts only STARTTLS as TLS; with implicit TLS the whole connection is encrypted anyway.
            auth_require_tls=not implicit_tls,
            authenticator=self._authenticate,
            # smtplib picks PLAIN when offered; leaving it out is how a test makes it use LOGIN.
            auth_exclude_mechanism=[name for name in ("LOGIN", "PLAIN") if name not in mechanisms],
            ready_timeout=5.0,
            **tls,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        accepted = auth_data.login.decode() == self.username and auth_data.password.decode() == self.password
        if not accepted:
            self.failed_logins += 1
        # handled=False: aiosmtpd then answers 535 itself (its default, True, leaves the client waiting).
        return AuthResult(success=accepted, handled=False, auth_data=(auth_data.login.decode(), mechanism))

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd)
        """aiosmtpd's hook: record the message and accept it."""
        login, mechanism = session.auth_data if isinstance(session.auth_data, tuple) else (None, None)
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mail = ReceivedMail(envelope.mail_from or "", tuple(envelope.rcpt_tos), message, login, mechanism)
        self.mails.append(mail)
        return "250 Message accepted for delivery"

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._controller.stop()
        self._folder.cleanup()
