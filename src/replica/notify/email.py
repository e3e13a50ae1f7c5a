"""Email over SMTP: a text part, the HTML report as its alternative, attachments; STARTTLS or implicit TLS.

The server's certificate is always verified (system CAs, plus `ca_file` for a private CA) and its name checked
against `host`; a server that does not offer STARTTLS when it is asked for is an error, never a plain-text fallback.
The password is read from env or file and only handed to smtplib; errors name the server and the SMTP code only,
because a server's own text may repeat what it was sent.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from replica.config.notify import EmailNotifierConfig, is_email_address
from replica.notify.base import Notification, NotifyError
from replica.secrets import read_secret

SUBJECT_PREFIX = "[replica] "


def recipients_of(config: EmailNotifierConfig, notification: Notification) -> list[str]:
    """Return `to`, plus the job's owners that are email addresses when `include_owners`; no repeats."""
    candidates = list(config.to)
    if config.include_owners:
        candidates += [owner.strip() for owner in notification.recipients if is_email_address(owner.strip())]
    unique: dict[str, str] = {}
    for address in candidates:
        unique.setdefault(address.lower(), address)
    return list(unique.values())


def build_message(sender: str, recipients: list[str], notification: Notification) -> EmailMessage:
    """Return the email: text/plain body, text/html alternative when the notification has HTML, attachments."""
    message = EmailMessage()
    message["Subject"] = SUBJECT_PREFIX + notification.one_line_title
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message["X-Replica-Event"] = notification.event
    message["X-Replica-Job"] = notification.job
    body = notification.text
    if notification.fields:
        body += "\n\n" + "\n".join(f"{key}: {value}" for key, value in notification.fields.items())
    message.set_content(body + "\n")
    if notification.html is not None:
        message.add_alternative(notification.html, subtype="html")
    for attachment in notification.attachments:
        maintype, _, subtype = attachment.content_type.partition(";")[0].strip().partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message


def tls_context(config: EmailNotifierConfig) -> ssl.SSLContext:
    """Return a context that verifies the server's certificate and name, trusting `ca_file` besides system CAs.

    Raises NotifyError (not retryable) when `ca_file` cannot be loaded.
    """
    context = ssl.create_default_context()
    if config.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(config.ca_file))
        except (OSError, ssl.SSLError) as error:
            raise NotifyError(
                f"cannot load ca_file {config.ca_file}: {type(error).__name__}", retryable=False
            ) from None
    return context


class EmailNotifier:
    """Sends each notification as one email through the configured SMTP server."""

    kind = "email"

    def __init__(self, config: EmailNotifierConfig) -> None:
        """Read the password now; raises ConfigError naming the variable or file when it is missing."""
        self.name = config.name
        self._config = config
        self._password = read_secret(
            env_name=config.password_env,
            file_path=config.password_file,
            what=f"notifier '{config.name}' (email) SMTP password",
        )

    def send(self, notification: Notification, timeout_seconds: float) -> None:
        """Send the email once; raises NotifyError naming the server and the SMTP code when it is not accepted."""
        config = self._config
        recipients = recipients_of(config, notification)
        message = build_message(config.sender, recipients, notification)
        server = f"{config.host}:{config.port}"
        try:
            self._transmit(message, recipients, timeout_seconds)
        except smtplib.SMTPException as error:
            raise _smtp_error(error, server, timeout_seconds) from None
        except ssl.SSLCertVerificationError as error:
            raise NotifyError(f"{server}: certificate not trusted: {error.verify_message}", retryable=False) from None
        except ssl.SSLError as error:  # a TLS handshake that failed for another reason (protocol, cipher)
            raise NotifyError(f"{server}: TLS failed: {error.reason or 'handshake error'}", retryable=False) from None
        except TimeoutError:
            raise NotifyError(f"{server}: timed out after {timeout_seconds:g} s", retryable=True) from None
        except OSError as error:
            description = f"{type(error).__name__}: {error.strerror or 'network error'}"
            raise NotifyError(f"cannot reach {server}: {description}", retryable=True) from None

    def _transmit(self, message: EmailMessage, recipients: list[str], timeout_seconds: float) -> None:
        config = self._config
        context = tls_context(config) if config.ssl or config.starttls else None
        client: smtplib.SMTP
        if config.ssl:
            client = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=timeout_seconds)
        with client:
            client.ehlo()
            if config.starttls and not config.ssl:
                client.starttls(context=context)  # raises SMTPNotSupportedError rather than go on in clear text
                client.ehlo()
            if config.username and self._password is not None:
                client.login(config.username, self._password.get_secret_value())
            client.send_message(message, from_addr=config.sender, to_addrs=recipients)


def _smtp_error(error: smtplib.SMTPException, server: str, timeout_seconds: float) -> NotifyError:
    # A 4xx reply is temporary by definition (RFC 5321 §4.2.1); 5xx and protocol trouble are not.
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return NotifyError(f"{server}: authentication refused (SMTP {error.smtp_code})", retryable=False)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in error.recipients.values()})
        refused = ", ".join(sorted(error.recipients))
        return NotifyError(
            f"{server}: recipients refused ({refused}; SMTP {', '.join(map(str, codes))})",
            retryable=all(400 <= code < 500 for code in codes),
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):
        # smtplib's own fixed text ("STARTTLS extension not supported by server."), not the server's.
        return NotifyError(f"{server}: {error}", retryable=False)
    if isinstance(error, smtplib.SMTPServerDisconnected) and isinstance(error.__context__, TimeoutError):
        # smtplib turns a read that timed out into "Connection unexpectedly closed".
        return NotifyError(f"{server}: timed out after {timeout_seconds:g} s", retryable=True)
    if isinstance(error, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
        return NotifyError(f"{server}: connection lost or refused ({type(error).__name__})", retryable=True)
    if isinstance(error, smtplib.SMTPResponseException):
        return NotifyError(
            f"{server}: {type(error).__name__} (SMTP {error.smtp_code})", retryable=400 <= error.smtp_code < 500
        )
    return NotifyError(f"{server}: {type(error).__name__}", retryable=False)
